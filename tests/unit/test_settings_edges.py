"""Settings at their edges: any-case levels, the symbol list's separators, and errors named by
the variable (or option) the user sets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketdata.cli._common import load_settings
from marketdata.errors import ConfigError
from marketdata.settings import Settings, env_variable


@pytest.mark.parametrize(("raw", "level"), [("debug", "DEBUG"), (" Warning ", "WARNING")])
def test_log_level_in_any_case(monkeypatch: pytest.MonkeyPatch, raw: str, level: str) -> None:
    """MARKETDATA_LOG_LEVEL=debug is DEBUG."""
    monkeypatch.setenv("MARKETDATA_LOG_LEVEL", raw)
    assert Settings().log_level == level


def test_log_format_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """MARKETDATA_LOG_FORMAT=JSON is json."""
    monkeypatch.setenv("MARKETDATA_LOG_FORMAT", "JSON")
    assert Settings().log_format == "json"


@pytest.mark.parametrize(
    ("raw", "symbols"),
    [
        ("aapl, ,msft,", ("AAPL", "MSFT")),
        ("AAPL,,BRK.B", ("AAPL", "BRK.B")),
        (" ", ()),
    ],
)
def test_symbols_skip_empty_items(
    monkeypatch: pytest.MonkeyPatch, raw: str, symbols: tuple[str, ...]
) -> None:
    """Empty items of MARKETDATA_SYMBOLS are skipped; the rest are upper-cased."""
    monkeypatch.setenv("MARKETDATA_SYMBOLS", raw)
    assert Settings().symbols == symbols


@pytest.mark.parametrize("raw", ["AAPL,,bad sym", "AAPL MSFT"])
def test_a_symbol_with_a_space_is_an_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """`bad sym` is not two symbols: the list is comma-separated, and the error says so."""
    monkeypatch.setenv("MARKETDATA_SYMBOLS", raw)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "MARKETDATA_SYMBOLS (comma-separated): invalid symbol" in message
    assert "symbols:" not in message


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("MARKETDATA_LOG_LEVEL", "loud", "MARKETDATA_LOG_LEVEL: Input should be 'DEBUG'"),
        ("MARKETDATA_LOG_FORMAT", "xml", "MARKETDATA_LOG_FORMAT: Input should be 'auto'"),
        ("MARKETDATA_PORT", "0", "MARKETDATA_PORT: Input should be greater than or equal to 1"),
        ("MARKETDATA_SIMULATE", "maybe", "MARKETDATA_SIMULATE: Input should be a valid boolean"),
        ("POLYGON_TIMEOUT", "soon", "POLYGON_TIMEOUT: Input should be a valid number"),
        ("MARKETDATA_DATABASE_URL", "mysql://db", "MARKETDATA_DATABASE_URL has unsupported"),
        ("POLYGON_BASE_URL", "ftp://x", "POLYGON_BASE_URL must start with http"),
        ("MARKETDATA_BACKUP_CRON", "often", "MARKETDATA_BACKUP_CRON 'often': a crontab"),
    ],
)
def test_errors_name_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str
) -> None:
    """Each problem is named by the variable to change, once, never by the field name."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"invalid settings: {expected}")
    assert message.count(env) == 1


def test_a_rejected_choice_is_shown() -> None:
    """A level that is not one of the choices is repeated (it is no secret)."""
    with pytest.raises(ConfigError, match="got 'LOUD'"):
        load_settings(log_level="loud")


def test_a_command_line_value_is_named_by_its_option() -> None:
    """A bad --database-url is the option's fault, not the environment's."""
    with pytest.raises(ConfigError) as raised:
        load_settings(database_url="redis://cache")
    message = str(raised.value)
    assert message.startswith("invalid settings: --database-url has unsupported scheme 'redis'")
    assert "MARKETDATA_DATABASE_URL" not in message


def test_several_problems_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every problem is listed, separated by semicolons."""
    monkeypatch.setenv("MARKETDATA_PORT", "70000")
    monkeypatch.setenv("MARKETDATA_LOG_LEVEL", "chatty")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert "MARKETDATA_LOG_LEVEL: " in message
    assert "; MARKETDATA_PORT: " in message


def test_settings_errors_keep_secrets_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused database URL is named, its password not repeated."""
    monkeypatch.setenv("MARKETDATA_DATABASE_URL", "mysql://app:hunter2-secret@db/x")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "hunter2-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("log_level", "MARKETDATA_LOG_LEVEL"),
        ("polygon_api_key", "POLYGON_API_KEY"),
        ("polygon_calls_per_minute", "POLYGON_CALLS_PER_MINUTE"),
        ("yahoo_base_url", "MARKETDATA_YAHOO_BASE_URL"),
    ],
)
def test_env_variable_of_each_field(field: str, variable: str) -> None:
    """The variable named for a field: its first alias, else MARKETDATA_<FIELD>."""
    assert env_variable(field) == variable


def test_plain_settings_still_raise_validation_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() itself raises pydantic's error (the CLI and the app phrase it)."""
    monkeypatch.setenv("MARKETDATA_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError):
        Settings()
