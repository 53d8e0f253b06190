"""Verifying stored bars against a second source: Yahoo, or a file (the built-in spot-check).

Per symbol: our bars are read adjusted the way the other source's are (Yahoo's OHLCV are
split-adjusted; a file says how its prices are), the other source's bars for the same range are
fetched, and :func:`marketdata.validation.crosscheck.compare_bars` says how they agree. The range
is the one asked for, else the symbol's stored range. A symbol that cannot be checked (not
stored, unknown upstream, absent from the file) gets an error in the report and the others go
on; a source that is down (429s or 5xx past the retry deadline) stops the run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from marketdata.adjust import Adjustment
from marketdata.errors import NotFound, ProviderError, ProviderUnavailable, RateLimited
from marketdata.providers.files import open_bar_file
from marketdata.providers.yahoo import YahooClient
from marketdata.service.history import read_history
from marketdata.storage.base import Store
from marketdata.validation.crosscheck import DEFAULT_FIELDS, DEFAULT_WORST, CrossCheck, compare_bars


class BarSource(Protocol):
    """The second source: its name, how its prices are adjusted, and its bars of a symbol."""

    @property
    def name(self) -> str:
        """``yahoo`` or the file's path."""
        ...

    @property
    def adjusted(self) -> Adjustment:
        """How its prices are adjusted; ours are read the same way."""
        ...

    @property
    def rejected_rows(self) -> int:
        """Rows of the source left out: unparsable, or superseded by a later row."""
        ...

    async def bars(self, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Bars of ``symbol`` in [start, end], one per date; :class:`NotFound` if it has none."""
        ...


class YahooSource:
    """Yahoo's chart API: split-adjusted OHLCV."""

    name = "yahoo"
    adjusted: Adjustment = "splits"
    rejected_rows = 0  # the client refuses a malformed answer whole

    def __init__(self, client: YahooClient) -> None:
        self.client = client

    async def bars(self, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Yahoo's bars (an unknown symbol raises :class:`~marketdata.errors.UpstreamNotFound`)."""
        return await self.client.daily_bars(symbol, start, end)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSource:
    """Bars of the asked symbols, read from a file in our import layouts."""

    name: str
    adjusted: Adjustment
    frames: dict[str, pl.DataFrame]  # symbol → bars by date, one row per date
    rejected_rows: int = 0  # rows the file's parser left out (unparsable or superseded)

    async def bars(self, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """The file's bars of ``symbol`` in [start, end]."""
        frame = self.frames.get(symbol)
        if frame is None:
            msg = f"{self.name} has no bars for {symbol}"
            raise NotFound(msg)
        return frame.filter(pl.col("date").is_between(start, end))


def load_file(
    path: Path, symbols: Sequence[str], *, adjusted: Adjustment, chunk_rows: int = 100_000
) -> FileSource:
    """Read the bars of ``symbols`` from ``path`` (CSV, CSV.gz or Parquet), chunk by chunk.

    Memory holds the asked symbols' rows only. A (symbol, date) the file repeats keeps its last
    row; unparsable and superseded rows are counted and left out, as ``marketdata import``
    leaves them out. Unreadable files raise ``InputError``.
    """
    bar_file = open_bar_file(path)
    wanted = list(dict.fromkeys(symbols))
    pieces: dict[str, list[pl.DataFrame]] = {}
    rejected = 0
    for chunk in bar_file.chunks(chunk_rows):
        rejected += chunk.rejected.height
        found = chunk.bars.filter(pl.col("symbol").is_in(wanted))
        for (symbol,), part in found.partition_by("symbol", as_dict=True).items():
            pieces.setdefault(str(symbol), []).append(part)
    frames = {
        symbol: pl.concat(parts).unique("date", keep="last", maintain_order=True).sort("date")
        for symbol, parts in pieces.items()
    }
    return FileSource(name=str(path), adjusted=adjusted, frames=frames, rejected_rows=rejected)


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolResult:
    """One symbol's outcome: a comparison, or why there is none."""

    symbol: str
    start: dt.date | None = None
    end: dt.date | None = None
    check: CrossCheck | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "symbol": self.symbol,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "error": self.error,
            **(self.check.to_dict() if self.check else {}),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """A verification run: what was compared with what, and each symbol's outcome."""

    against: str
    adjusted: Adjustment  # how both sides were adjusted
    tolerance: float
    fields: tuple[str, ...]
    at: dt.datetime
    results: tuple[SymbolResult, ...] = field(default_factory=tuple)
    source_rejected_rows: int = 0

    @property
    def failed(self) -> tuple[SymbolResult, ...]:
        """Symbols that could not be checked."""
        return tuple(r for r in self.results if r.error is not None)

    @property
    def agrees(self) -> bool:
        """Every checked symbol agrees (see :attr:`CrossCheck.agrees`)."""
        return all(r.check.agrees for r in self.results if r.check is not None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "against": self.against,
            "adjusted": self.adjusted,
            "tolerance": self.tolerance,
            "fields": list(self.fields),
            "at": self.at.isoformat(),
            "agrees": self.agrees,
            "source_rejected_rows": self.source_rejected_rows,
            "symbols": [r.to_dict() for r in self.results],
        }


async def verify_symbols(
    store: Store,
    symbols: Sequence[str],
    source: BarSource,
    *,
    at: dt.datetime,
    start: dt.date | None = None,
    end: dt.date | None = None,
    tolerance: float = 0.005,
    fields: Sequence[str] = DEFAULT_FIELDS,
    worst: int = DEFAULT_WORST,
    progress: Callable[[SymbolResult], None] | None = None,
) -> VerifyReport:
    """Compare the stored bars of ``symbols`` with ``source``'s, one symbol after another."""
    if not 0 < tolerance < 1:
        msg = f"tolerance must be in (0, 1), not {tolerance}"
        raise ValueError(msg)
    wanted = list(dict.fromkeys(symbols))
    statuses = {s.symbol: s for s in await store.symbol_statuses(wanted)}
    results = []
    for symbol in wanted:
        status = statuses.get(symbol)
        first = status.first_date if status else None
        last = status.last_date if status else None
        lo, hi = start or first, end or last
        if status is None or not status.bar_count or lo is None or hi is None:
            result = SymbolResult(symbol=symbol, error=f"no bars stored for {symbol}")
        elif lo > hi:
            result = SymbolResult(
                symbol=symbol, start=lo, end=hi, error=f"the range {lo} to {hi} is empty"
            )
        else:
            result = await _verify_one(
                store, symbol, source, lo, hi, tolerance=tolerance, fields=fields, worst=worst
            )
        results.append(result)
        if progress is not None:
            progress(result)
    return VerifyReport(
        against=source.name,
        adjusted=source.adjusted,
        tolerance=tolerance,
        fields=tuple(fields),
        at=at,
        results=tuple(results),
        source_rejected_rows=source.rejected_rows,
    )


async def _verify_one(
    store: Store,
    symbol: str,
    source: BarSource,
    start: dt.date,
    end: dt.date,
    *,
    tolerance: float,
    fields: Sequence[str],
    worst: int,
) -> SymbolResult:
    ours = await read_history(store, symbol, start=start, end=end, adjusted=source.adjusted)
    try:
        theirs = await source.bars(symbol, start, end)
    except (RateLimited, ProviderUnavailable):
        raise  # the source is down: every other symbol would wait out the same deadline
    except (NotFound, ProviderError) as exc:
        return SymbolResult(symbol=symbol, start=start, end=end, error=str(exc))
    check = compare_bars(
        ours, theirs, symbol=symbol, tolerance=tolerance, fields=fields, worst=worst
    )
    return SymbolResult(symbol=symbol, start=start, end=end, check=check)
