"""A deterministic synthetic market, so demos, tests and benchmarks run without a vendor account.

:class:`MarketSimulator` answers in the frames of :mod:`marketdata.bars`: raw (unadjusted) daily
bars for every XNYS session, plus the splits and dividends that explain their jumps. The bar of
a (symbol, session) depends only on the seed and the symbol, never on the range asked for, the
other symbols asked for, or the process (the model is in :mod:`._simulation`). History starts at
:data:`ORIGIN` (2000-01-03): earlier dates have no rows. It ends with the calendar
(:data:`marketdata.calendar.LAST_DATE`): later dates have no rows either.

:class:`SyntheticProvider` serves a simulator through the async :class:`~.base.Provider`
protocol, with a fixed universe for "all symbols" and an optional ``today`` to stop at.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Final

import numpy as np
import polars as pl

from marketdata import calendar
from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, MAX_SYMBOL_LENGTH, SPLIT_SCHEMA
from marketdata.providers._simulation import ORIGIN, History, simulate, timeline
from marketdata.symbols import DEFAULT_SYMBOLS  # the universe used for "all symbols"

__all__ = ["DEFAULT_SYMBOLS", "ORIGIN", "MarketSimulator", "SyntheticProvider"]

_ROUND: Final = 256  # cached histories are simulated to a multiple of this many sessions
_VALUES: Final = ("open", "high", "low", "close", "volume", "vwap", "transactions")


class MarketSimulator:
    """Seeded synthetic daily bars, splits and dividends for any symbols.

    Symbols are simulated ``batch_size`` at a time, by ``workers`` threads (default: up to
    two, as numpy releases the GIL); results never depend on either. Histories of the last
    ``cache_size`` symbols are kept (up to 0.5 MB each), so asking again for them is cheap; a
    request for more symbols than that bypasses the cache. Thread-safe.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        cache_size: int = 256,
        batch_size: int = 128,
        workers: int | None = None,
    ) -> None:
        if seed < 0:
            msg = f"seed must be >= 0, got {seed}"
            raise ValueError(msg)
        workers = min(2, os.cpu_count() or 1) if workers is None else workers
        if cache_size < 0 or batch_size < 1 or workers < 1:
            msg = "cache_size must be >= 0, batch_size and workers >= 1"
            raise ValueError(msg)
        self.seed: Final = seed
        self._cache_size = cache_size
        self._batch_size = batch_size
        self._workers = workers
        self._cache: OrderedDict[str, History] = OrderedDict()
        self._lock = threading.Lock()

    def bars(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pl.DataFrame:
        """Raw bars (``BAR_SCHEMA``) of the sessions in [start, end], by symbol then date."""
        frames = list(self.iter_bars(symbols, start, end))
        return pl.concat(frames, rechunk=False) if frames else pl.DataFrame(schema=BAR_SCHEMA)

    def iter_bars(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> Iterator[pl.DataFrame]:
        """:meth:`bars` in consecutive pieces of at most ``batch_size`` symbols each.

        For large universes: memory stays bounded by a few pieces instead of the whole frame.
        """
        names, (first, stop) = _names(symbols), _positions(start, end)
        days = timeline().days[first:stop]
        batches = self._histories(names, stop) if first < stop else iter(())
        return (_bar_frame(histories, days, first, stop) for histories in batches)

    def grouped(self, session: dt.date, symbols: Sequence[str]) -> pl.DataFrame:
        """Bars of ``symbols`` for one session; no rows when ``session`` is not one."""
        return self.bars(symbols, session, session)

    def splits(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pl.DataFrame:
        """Splits (``SPLIT_SCHEMA``) executed in [start, end], by symbol then date."""
        names, (first, stop) = _names(symbols), _positions(start, end)
        columns: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_SCHEMA}
        for histories in self._histories(names, stop) if first < stop else ():
            for h in histories:
                keep = (h.split_at >= first) & (h.split_at < stop)
                columns["symbol"].append(np.repeat(h.symbol, keep.sum()))
                columns["execution_date"].append(timeline().days[h.split_at[keep]])
                columns["split_from"].append(h.split_from[keep])
                columns["split_to"].append(h.split_to[keep])
        return _frame(columns, SPLIT_SCHEMA)

    def dividends(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pl.DataFrame:
        """Quarterly cash dividends (``DIVIDEND_SCHEMA``) going ex in [start, end].

        Amounts are in the raw (unsplit) price of the day, as a vendor reports them.
        """
        names, (first, stop) = _names(symbols), _positions(start, end)
        columns: dict[str, list[np.ndarray]] = {name: [] for name in DIVIDEND_SCHEMA}
        for histories in self._histories(names, stop) if first < stop else ():
            for h in histories:
                keep = (h.ex_at >= first) & (h.ex_at < stop)
                count = int(keep.sum())
                columns["symbol"].append(np.repeat(h.symbol, count))
                columns["ex_dividend_date"].append(timeline().days[h.ex_at[keep]])
                columns["cash_amount"].append(h.cash[keep])
                columns["declaration_date"].append(h.declared[keep])
                columns["record_date"].append(h.record[keep])
                columns["pay_date"].append(h.paid[keep])
                columns["frequency"].append(np.full(count, 4, dtype=np.int64))
                columns["dividend_type"].append(np.repeat("CD", count))
        return _frame(columns, DIVIDEND_SCHEMA)

    def _histories(self, names: list[str], n: int) -> Iterator[list[History]]:
        """Histories of at least ``n`` sessions, ``batch_size`` symbols at a time, in order.

        With several workers, up to ``workers`` batches are simulated ahead of the consumer.
        """
        caching = len(names) <= self._cache_size
        batches = [names[i : i + self._batch_size] for i in range(0, len(names), self._batch_size)]
        if self._workers == 1 or len(batches) == 1:
            for batch in batches:
                yield self._batch(batch, n, caching=caching)
            return
        with ThreadPoolExecutor(self._workers, thread_name_prefix="simulator") as pool:
            ahead: deque[Future[list[History]]] = deque()
            for batch in batches:
                ahead.append(pool.submit(self._batch, batch, n, caching=caching))
                if len(ahead) > self._workers:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    def _batch(self, batch: list[str], n: int, *, caching: bool) -> list[History]:
        """Histories of ``batch`` from the cache, simulating (together) those missing."""
        found: dict[str, History] = {}
        with self._lock:
            for name in batch:
                cached = self._cache.get(name)
                if cached is not None and cached.n >= n:
                    self._cache.move_to_end(name)
                    found[name] = cached
        missing = [name for name in batch if name not in found]
        if missing:
            longer = min(-(-n // _ROUND) * _ROUND, timeline().days.size) if caching else n
            fresh = simulate(self.seed, missing, longer)
            found.update((h.symbol, h) for h in fresh)
            if caching:
                self._remember(fresh)
        return [found[name] for name in batch]

    def _remember(self, histories: list[History]) -> None:
        """Cache copies of ``histories`` (a view would pin its whole batch), least recent out."""
        owned = [replace(h, **{c: getattr(h, c).copy() for c in _VALUES}) for h in histories]
        with self._lock:
            for h in owned:
                self._cache[h.symbol] = h
                self._cache.move_to_end(h.symbol)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


class SyntheticProvider:
    """The :class:`~.base.Provider` protocol served by a :class:`MarketSimulator`.

    ``universe`` is what "all symbols" means (grouped bars, actions with ``symbols=None``).
    ``today`` is the last date with data: bars end there and actions stop there. When None,
    bars cover the whole requested range and actions run to the calendar's last date.
    ``seed`` is used only when no ``simulator`` is given. The simulation runs in a worker
    thread, so the event loop stays free.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        universe: Sequence[str] = DEFAULT_SYMBOLS,
        today: dt.date | None = None,
        simulator: MarketSimulator | None = None,
    ) -> None:
        self.simulator: Final = simulator if simulator is not None else MarketSimulator(seed=seed)
        self.universe: Final = tuple(_names(universe))
        self.today: Final = today

    @property
    def name(self) -> str:
        """Stored as the bars' source."""
        return "synthetic"

    async def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Raw bars of ``symbol`` for the sessions in [start, min(end, today)]."""
        if start > end:
            msg = f"start {start} is after end {end}"
            raise ValueError(msg)
        last = self._last(end)
        if start > last:
            return pl.DataFrame(schema=BAR_SCHEMA)
        return await asyncio.to_thread(self.simulator.bars, [symbol], start, last)

    async def grouped_daily(self, session: dt.date) -> pl.DataFrame:
        """Raw bars of every universe symbol for ``session`` (none after ``today``)."""
        if session > self._last(session):
            return pl.DataFrame(schema=BAR_SCHEMA)
        return await asyncio.to_thread(self.simulator.grouped, session, self.universe)

    async def splits(
        self, symbols: Sequence[str] | None = None, *, since: dt.date | None = None
    ) -> pl.DataFrame:
        """Splits executed from ``since`` (default: ORIGIN) to ``today``."""
        first, last = since or ORIGIN, self._last(calendar.LAST_DATE)
        if first > last:
            return pl.DataFrame(schema=SPLIT_SCHEMA)
        chosen = self.universe if symbols is None else symbols
        return await asyncio.to_thread(self.simulator.splits, chosen, first, last)

    async def dividends(
        self, symbols: Sequence[str] | None = None, *, since: dt.date | None = None
    ) -> pl.DataFrame:
        """Dividends going ex from ``since`` (default: ORIGIN) to ``today``."""
        first, last = since or ORIGIN, self._last(calendar.LAST_DATE)
        if first > last:
            return pl.DataFrame(schema=DIVIDEND_SCHEMA)
        chosen = self.universe if symbols is None else symbols
        return await asyncio.to_thread(self.simulator.dividends, chosen, first, last)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _last(self, end: dt.date) -> dt.date:
        """``end``, or ``today`` when that comes first."""
        return end if self.today is None else min(end, self.today)


def _names(symbols: Sequence[str]) -> list[str]:
    """Distinct symbols, sorted; refuses a bare string and empty or over-long symbols."""
    if isinstance(symbols, str):
        msg = f"symbols must be a sequence of symbols, not the string {symbols!r}"
        raise TypeError(msg)
    names = sorted(set(symbols))
    for name in names:
        if not name or len(name) > MAX_SYMBOL_LENGTH:
            msg = f"symbols must have 1 to {MAX_SYMBOL_LENGTH} characters, got {name!r}"
            raise ValueError(msg)
    return names


def _positions(start: dt.date, end: dt.date) -> tuple[int, int]:
    """Timeline positions ``[first, stop)`` of the sessions in [start, end]."""
    if start > end:
        msg = f"start {start} is after end {end}"
        raise ValueError(msg)
    days = timeline().days
    first = int(np.searchsorted(days, np.datetime64(start, "D"), "left"))
    return first, int(np.searchsorted(days, np.datetime64(end, "D"), "right"))


def _bar_frame(histories: list[History], days: np.ndarray, first: int, stop: int) -> pl.DataFrame:
    """Rows ``[first, stop)`` of each history, stacked in order."""
    owner = np.repeat(np.arange(len(histories)), stop - first)
    data: dict[str, object] = {
        "symbol": pl.Series([h.symbol for h in histories], dtype=pl.String).gather(owner),
        "date": np.tile(days, len(histories)),
    }
    for column in _VALUES:
        data[column] = np.concatenate([getattr(h, column)[first:stop] for h in histories])
    return pl.DataFrame(data, schema=BAR_SCHEMA)


def _frame(columns: dict[str, list[np.ndarray]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A frame of ``schema`` from per-symbol column pieces (possibly none)."""
    if not columns["symbol"]:
        return pl.DataFrame(schema=schema)
    data = {name: np.concatenate(pieces) for name, pieces in columns.items()}
    return pl.DataFrame(data, schema=schema)
