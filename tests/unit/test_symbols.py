"""Symbol rules and the MARKETDATA_SYMBOLS setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketdata.errors import InputError
from marketdata.settings import Settings
from marketdata.symbols import (
    DEFAULT_SYMBOLS,
    MAX_LENGTH,
    normalize_symbol,
    normalize_symbols,
    parse_symbol_list,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("AAPL", "AAPL"),
        ("aapl", "AAPL"),
        ("Spy", "SPY"),
        (" brk.b ", "BRK.B"),
        ("BF-B", "BF-B"),
        ("X", "X"),
        ("AMpB", "AMpB"),  # Polygon's AM preferred B: a different stock from AMPB
        ("ABRpD", "ABRpD"),
        ("BACp", "BACp"),
        ("ampb", "AMPB"),  # all lower-case: typed, so upper-cased
        ("pA", "PA"),
    ],
)
def test_valid_symbols_are_normalized(given: str, expected: str) -> None:
    """Letters, digits, '.' and '-' pass; surrounding blanks do not matter; a value already in
    the vendor's case-sensitive form (Polygon's preferred ``p``) is kept, any other upper-cased."""
    assert normalize_symbol(given) == expected


@pytest.mark.parametrize(
    "given",
    ["", "   ", "AAPL$", "A B", "../etc", ".AAPL", "AAPL-", "ÄPFEL", "A" * (MAX_LENGTH + 1), "%"],
)
def test_invalid_symbols_are_refused_with_the_rule(given: str) -> None:
    """Anything else is an InputError that says what a symbol may contain."""
    with pytest.raises(InputError, match="letters, digits"):
        normalize_symbol(given)


def test_lists_drop_duplicates_and_keep_order() -> None:
    """Commas or blanks separate; the first occurrence wins."""
    assert parse_symbol_list("msft, AAPL  brk.b,aapl") == ["MSFT", "AAPL", "BRK.B"]
    assert normalize_symbols(["b", "a", "B"]) == ["B", "A"]


def test_default_watchlist_is_the_original_plans_fifteen() -> None:
    """Without MARKETDATA_SYMBOLS the watchlist is 15 large US stocks."""
    assert Settings().symbols == DEFAULT_SYMBOLS
    assert len(DEFAULT_SYMBOLS) == 15


def test_symbols_setting_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    """MARKETDATA_SYMBOLS takes a plain list, normalized."""
    monkeypatch.setenv("MARKETDATA_SYMBOLS", "nvda, BRK.B")
    assert Settings().symbols == ("NVDA", "BRK.B")


def test_bad_symbol_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed entry fails at start-up, naming the variable and the entry."""
    monkeypatch.setenv("MARKETDATA_SYMBOLS", "AAPL,$$$")
    with pytest.raises(ValidationError, match=r"MARKETDATA_SYMBOLS.*'\$\$\$'"):
        Settings()


@pytest.mark.parametrize("cron", ["0 25 * * *", "every day", "0 2 * *"])
def test_bad_backfill_cron_is_refused(monkeypatch: pytest.MonkeyPatch, cron: str) -> None:
    """MARKETDATA_BACKFILL_CRON must be a valid 5-field crontab."""
    monkeypatch.setenv("MARKETDATA_BACKFILL_CRON", cron)
    with pytest.raises(ValidationError, match="MARKETDATA_BACKFILL_CRON"):
        Settings()


def test_backfill_defaults() -> None:
    """Daily at 02:00 UTC, 5 years, a 2-session overlap, the scheduler on."""
    settings = Settings()
    assert settings.backfill_cron == "0 2 * * *"
    assert settings.backfill_years == 5
    assert settings.backfill_overlap == 2
    assert settings.scheduler is True
