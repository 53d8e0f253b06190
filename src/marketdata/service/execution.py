"""Running a backfill plan: requests in parallel, answers validated and written one at a time.

:class:`Execution` runs the requests of a :class:`~marketdata.service.backfill.Prepared` plan
concurrently under the provider's shared rate limiter and writes every answer through
:func:`~marketdata.service.quality.write_bars` (validated, with its progress checkpoint in the
same transaction), so a crash at any moment loses at most the answers in flight: the next run
plans from what is stored and fetches only those again.

A symbol that fails (unknown ticker, plan refusal, retries exhausted) is recorded with its
reason; the others go on. The vendor's plan window (the free plan serves about two years) is
found once, by probing, remembered, and reported in one line instead of an error per symbol.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import polars as pl

from marketdata.errors import AuthenticationFailed, MarketDataError, PlanTimeframe
from marketdata.providers.base import Provider
from marketdata.service.backfill import PLAN_DAYS_KEY, Options, Prepared
from marketdata.service.plan import GroupedRequest, RangeRequest
from marketdata.service.quality import write_bars
from marketdata.service.simulated import SYNTHETIC, replace_synthetic
from marketdata.storage.base import Store, UpsertCounts
from marketdata.storage.jobs import Checkpoint, SymbolProgress

log = logging.getLogger(__name__)

#: Where the plan-window search starts: about 2 years (free plan), 1 year, 1 month back.
_WINDOW_GUESSES = (730 - 7, 365 - 7, 30)


@dataclass(slots=True, kw_only=True)
class Progress:
    """A run's progress, updated after every request (and shown by the CLI)."""

    run_id: int
    symbols_total: int
    requests_total: int
    symbols_done: int = 0
    requests_done: int = 0
    calls: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """Symbols that failed."""
        return len(self.failures)


class Execution:
    """Runs one plan: requests in parallel, answers written one at a time."""

    def __init__(
        self,
        store: Store,
        provider: Provider,
        prepared: Prepared,
        *,
        run_id: int,
        options: Options,
        now: dt.datetime,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.store = store
        self.provider = provider
        self.prepared = prepared
        self.plan = prepared.plan
        self.options = options
        self.now = now
        self.on_progress = on_progress
        self.progress = Progress(
            run_id=run_id,
            symbols_total=len(self.plan.symbols),
            requests_total=self.plan.calls,
        )
        self._outstanding: Counter[str] = Counter()
        for r in self.plan.ranges:
            self._outstanding[r.symbol] += 1
        for g in self.plan.grouped:
            self._outstanding.update(g.symbols)
        self._write_lock = asyncio.Lock()  # validation needs each write to see the last
        self._window_lock = asyncio.Lock()
        self._window: dt.date | None = prepared.window_start
        self._replaced: set[str] = set()
        self._simulated: bool | None = None  # does the store hold simulated bars at all?

    @property
    def run_id(self) -> int:
        """The run being executed."""
        return self.progress.run_id

    async def run(self) -> Progress:
        """Execute every request; returns the final progress (failures included)."""
        idle = [s.symbol for s in self.plan.symbols if not self._outstanding[s.symbol]]
        if idle:  # already complete: done at once
            await self.store.save_progress(
                Checkpoint(
                    run_id=self.run_id,
                    symbols=tuple(SymbolProgress(symbol=s, status="done") for s in idle),
                ),
                at=self.now,
            )
            self.progress.symbols_done += len(idle)
            self._report()
        gate = asyncio.Semaphore(self.options.concurrency)

        async def guarded(job: RangeRequest | GroupedRequest) -> None:
            async with gate:
                if isinstance(job, RangeRequest):
                    await self._range(job)
                else:
                    await self._grouped(job)

        jobs: list[RangeRequest | GroupedRequest] = [
            *sorted(self.plan.grouped, key=lambda g: g.session),
            *self.plan.ranges,
        ]
        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:
                    group.create_task(guarded(job))
        except BaseExceptionGroup as group_error:  # a whole-run failure (e.g. a refused key)
            raise group_error.exceptions[0] from None
        return self.progress

    # -- requests ---------------------------------------------------------------------------

    async def _range(self, request: RangeRequest) -> None:
        symbol = request.symbol
        if symbol in self.progress.failures:
            return self._skip([symbol])
        start = request.start
        calls = 1
        try:
            if self._window is not None and start < self._window:
                start = self._window
            try:
                bars = await self.provider.daily_bars(symbol, start, request.end)
            except PlanTimeframe as refusal:
                start, bars, probes = await self._within_window(request, refusal)
                calls += probes
        except AuthenticationFailed:
            raise
        except MarketDataError as exc:
            await self._fail([symbol], str(exc), calls=calls)
            return
        if bars.is_empty() and not await self._has_bars(symbol):
            reason = (
                f"{self.provider.name} has no bars for {symbol} from {start} to {request.end} "
                "(unknown or delisted ticker?)"
            )
            await self._fail([symbol], reason, calls=calls)
            return
        progress = self._finished_piece(
            symbol, through=request.end, checked_from=request.start, calls=calls
        )
        await self._write(bars, (progress,), calls=calls)

    async def _grouped(self, request: GroupedRequest) -> None:
        wanted = [s for s in request.symbols if s not in self.progress.failures]
        if not wanted:
            return self._skip(list(request.symbols))
        try:
            bars = await self.provider.grouped_daily(request.session)
        except AuthenticationFailed:
            raise
        except MarketDataError as exc:
            await self._fail(wanted, f"grouped bars of {request.session}: {exc}", calls=1)
            return
        bars = bars.filter(pl.col("symbol").is_in(wanted))
        pieces = tuple(self._finished_piece(s, through=request.session) for s in wanted)
        await self._write(bars, pieces, calls=1)

    async def _within_window(
        self, request: RangeRequest, refusal: PlanTimeframe
    ) -> tuple[dt.date, pl.DataFrame, int]:
        """Retry a request the plan window refused: from the window's start, found once."""
        async with self._window_lock:
            if self._window is None or self._window <= request.start:
                self._window, probes = await self._find_window(request, refusal)
                days = (self.prepared.end - self._window).days
                await self.store.set_state(
                    PLAN_DAYS_KEY.format(provider=self.provider.name), str(days), at=self.now
                )
                self.progress.notes.append(self._window_note())
            else:
                probes = 0
        start = max(request.start, self._window)
        bars = await self.provider.daily_bars(request.symbol, start, request.end)
        return start, bars, probes + 1

    async def _find_window(
        self, request: RangeRequest, refusal: PlanTimeframe
    ) -> tuple[dt.date, int]:
        """The earliest day the plan serves: a guess that works, then bisection to the day."""
        end, probes = request.end, 0
        refused = request.start  # latest day known to be refused
        served: dt.date | None = None
        for days in _WINDOW_GUESSES:
            guess = end - dt.timedelta(days=days)
            if guess <= refused:
                continue
            probes += 1
            if await self._serves(request.symbol, guess):
                served = guess
                break
            refused = guess
        if served is None:
            raise refusal
        while (served - refused).days > 1:
            middle = refused + (served - refused) / 2
            probes += 1
            if await self._serves(request.symbol, middle):
                served = middle
            else:
                refused = middle
        return served, probes

    async def _serves(self, symbol: str, day: dt.date) -> bool:
        try:
            await self.provider.daily_bars(symbol, day, day)
        except PlanTimeframe:
            return False
        return True

    def _window_note(self) -> str:
        assert self._window is not None  # set by the caller
        return (
            f"plan window: your {self.provider.name} plan serves history from {self._window} "
            f"on; earlier sessions were skipped for every symbol (a bigger plan and "
            f"`marketdata backfill --start YYYY-MM-DD` fetch more)"
        )

    # -- bookkeeping ------------------------------------------------------------------------

    def _finished_piece(
        self,
        symbol: str,
        *,
        through: dt.date,
        checked_from: dt.date | None = None,
        calls: int = 0,
    ) -> SymbolProgress:
        self._outstanding[symbol] -= 1
        done = self._outstanding[symbol] <= 0
        return SymbolProgress(
            symbol=symbol,
            through=through,
            checked_from=checked_from,
            calls=calls,
            status="done" if done else "running",
        )

    async def _write(
        self, bars: pl.DataFrame, pieces: tuple[SymbolProgress, ...], *, calls: int
    ) -> None:
        checkpoint = Checkpoint(run_id=self.run_id, calls=calls, symbols=pieces)
        async with self._write_lock:
            if self.provider.name != SYNTHETIC:
                await self._replace_simulated([p.symbol for p in pieces])
            counts = await write_bars(
                self.store, bars, source=self.provider.name, at=self.now, checkpoint=checkpoint
            )
        self.progress.counts += counts
        self.progress.calls += calls
        self.progress.requests_done += 1
        self.progress.symbols_done += sum(p.status == "done" for p in pieces)
        self._report()

    async def _replace_simulated(self, symbols: Sequence[str]) -> None:
        """Purge simulated bars of ``symbols`` before their first real ones (checked once)."""
        if self._simulated is None:
            self._simulated = await self.store.has_source(SYNTHETIC)
        if not self._simulated:
            return
        fresh = [s for s in symbols if s not in self._replaced]
        await replace_synthetic(self.store, fresh)
        self._replaced.update(fresh)

    async def _fail(self, symbols: Sequence[str], reason: str, *, calls: int) -> None:
        fresh = [s for s in symbols if s not in self.progress.failures]
        for symbol in fresh:
            self.progress.failures[symbol] = reason
            log.warning(
                "backfill of %s failed: %s",
                symbol,
                reason,
                extra={"event": "backfill_symbol_failed", "symbol": symbol, "run": self.run_id},
            )
        await self.store.save_progress(
            Checkpoint(
                run_id=self.run_id,
                calls=calls,
                errors=len(fresh),
                symbols=tuple(
                    SymbolProgress(symbol=s, status="failed", error=reason) for s in fresh
                ),
            ),
            at=self.now,
        )
        self.progress.calls += calls
        self.progress.requests_done += 1
        self._report()

    def _skip(self, symbols: Sequence[str]) -> None:
        """A request not made because its symbols already failed."""
        for symbol in symbols:
            self._outstanding[symbol] -= 1
        self.progress.requests_done += 1
        self._report()

    async def _has_bars(self, symbol: str) -> bool:
        statuses = await self.store.symbol_statuses([symbol])
        if not statuses or not statuses[0].bar_count:
            return False
        return statuses[0].source != SYNTHETIC or self.provider.name == SYNTHETIC

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)
