"""Ticker symbols: the default watchlist and the one rule for what a symbol may look like.

A symbol is what the vendor calls a stock: upper-case letters and digits, with ``.`` or ``-``
for share classes and suffixes (``BRK.B``, ``BF-B``), and Polygon's lower-case ``p`` after a
letter for a preferred share (``AMpB`` is AM preferred B, a different stock from ``AMPB``).
Anything else (spaces, slashes, ``$``, an empty string, a 30-character string) is refused with
a message saying what is allowed, before it reaches a URL or the database.

Symbols are case-sensitive, as the vendor's are. A value already in that form is kept as
given; any other is upper-cased, because people type ``aapl`` (or ``Spy``) for AAPL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from marketdata.errors import InputError

#: The original plan's watchlist: 15 large US stocks.
DEFAULT_SYMBOLS: Final = (
    *("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM"),
    *("V", "JNJ", "WMT", "PG", "XOM", "UNH", "HD"),
)

#: Longest symbol accepted (the vendor's longest US tickers are well under this).
MAX_LENGTH: Final = 12

#: One character of a symbol: an upper-case letter or digit, or a letter followed by
#: Polygon's preferred-share ``p`` (written without look-behind, so polars can use it too).
_ENDS = r"(?:[A-Z0-9]|[A-Z]p)"
#: What a normalized symbol looks like (the whole rule is :func:`normalize_symbol`).
PATTERN: Final = re.compile(rf"{_ENDS}(?:(?:[A-Z0-9.\-]|[A-Z]p)*{_ENDS})?")
RULE: Final = (
    f"1 to {MAX_LENGTH} characters: letters, digits, '.' or '-' (not first or last), e.g. BRK.B"
)


def normalize_symbol(value: str) -> str:
    """``value`` trimmed, and upper-cased unless it already is a symbol as the vendor writes
    it (``AMpB``); :class:`InputError` if it is not a valid symbol."""
    symbol = value.strip()
    if not PATTERN.fullmatch(symbol):
        symbol = symbol.upper()
    if len(symbol) > MAX_LENGTH or not PATTERN.fullmatch(symbol):
        shown = value if len(value) <= 40 else value[:40] + "…"
        msg = f"invalid symbol {shown!r}: a symbol has {RULE}"
        raise InputError(msg)
    return symbol


def normalize_symbols(values: Iterable[str]) -> list[str]:
    """Every value normalized, duplicates dropped, first-seen order kept."""
    return list(dict.fromkeys(normalize_symbol(v) for v in values))


def parse_symbol_list(text: str) -> list[str]:
    """A comma- or space-separated list (``"AAPL, msft BRK.B"``), normalized."""
    return normalize_symbols(part for part in re.split(r"[\s,]+", text) if part)
