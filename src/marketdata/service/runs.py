"""Backfill runs from start to finish: one at a time, recorded, recoverable, observable.

A run takes the database's ``backfill`` lock first (a PostgreSQL advisory lock, or a lease row
in SQLite), so two processes, workers or machines never backfill the same database at once.
Holding the lock, it marks runs left ``running`` by a dead process as ``interrupted`` and
re-scores what they were writing, plans from what is stored, records the run with one row per
symbol, fetches the corporate actions of the days the plan fetches bars for (only days not
checked with the same provider yet), executes the plan, fetches the actions of symbols whose
simulated bars it replaced (the purge took their simulated ones), and ends the run
``succeeded``, ``partial``, ``failed`` or ``interrupted``.

:class:`Backfiller` is what the CLI, the scheduler and the REST API use: :meth:`Backfiller.run`
waits for the run, :meth:`Backfiller.trigger` starts it in the background and returns its id;
:func:`run_progress` and :func:`run_history` read runs back. The lock and the recovery live
in :mod:`marketdata.service.run_lock`; their names are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from marketdata.errors import (
    AuthenticationFailed,
    ConfigError,
    Conflict,
    MarketDataError,
    NotFound,
)
from marketdata.logs import log_context
from marketdata.providers.base import Provider
from marketdata.service.actions import (
    ActionsPlan,
    fetch_actions,
    plan_actions,
    read_checked,
    save_checked,
)
from marketdata.service.backfill import Options, Prepared, Strategy, Target, prepare
from marketdata.service.execution import Execution, Progress
from marketdata.service.plan import SymbolPlan
from marketdata.service.run_lock import LOCK, acquire, holder_id, recover, running_run
from marketdata.service.simulated import SYNTHETIC, data_mode
from marketdata.service.sources import ProviderName, open_provider
from marketdata.service.watchlist import Watchlist
from marketdata.settings import Settings
from marketdata.storage.base import Store
from marketdata.storage.jobs import Checkpoint, RunRecord, StoreLock

#: Re-exported: the scheduler, backups and tests take the lock helpers from here.
__all__ = [
    "LOCK",
    "Backfiller",
    "Outcome",
    "ProviderFactory",
    "acquire",
    "backfiller",
    "holder_id",
    "recover",
    "run_history",
    "run_progress",
    "running_run",
]

log = logging.getLogger(__name__)

#: Opens the provider for a run, given the symbols it will fetch.
ProviderFactory = Callable[[Sequence[str]], Provider]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How a run ended."""

    run_id: int
    status: str
    progress: Progress
    prepared: Prepared
    message: str | None
    recovered: tuple[int, ...] = ()  # interrupted runs found and closed at the start


class Backfiller:
    """Starts backfill runs for one store; shared by the CLI, the scheduler and the API."""

    def __init__(
        self,
        store: Store,
        *,
        config: Watchlist,
        options: Options,
        provider_name: str,
        open_provider: ProviderFactory,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.config = config
        self.options = options
        self.provider_name = provider_name
        self.open_provider = open_provider
        self.clock = clock
        self._tasks: set[asyncio.Task[Outcome]] = set()

    async def plan(self, target: Target) -> Prepared:
        """The plan a run would execute now (nothing is fetched or written); refused as the
        run would be, so a dry run never promises what the run will not do."""
        await self._refuse_mixing()
        prepared = await prepare(
            self.store,
            config=self.config,
            target=target,
            provider=self.provider_name,
            options=self.options,
            now=self.clock(),
        )
        todo = await self._actions_todo(prepared.plan.symbols, self.provider_name)
        if todo is None:
            return prepared
        # Symbols whose simulated bars real ones replace are asked again after their bars.
        requests = len(todo.requests) + (1 if todo.later else 0)
        return replace(prepared, action_requests=requests)

    async def _actions_todo(
        self, symbols: Sequence[SymbolPlan], provider: str, *, replaced: bool = False
    ) -> ActionsPlan | None:
        """The actions requests for ``symbols`` (None when none of them has work); with
        ``replaced``, what ``provider`` was asked before is disregarded."""
        if not any(s.range_calls or s.grouped_sessions for s in symbols):
            return None
        return plan_actions(
            symbols,
            await self.store.symbol_statuses([s.symbol for s in symbols]),
            {} if replaced else await read_checked(self.store, provider),
            provider=provider,
        )

    async def run(
        self,
        target: Target,
        *,
        trigger: str = "manual",
        on_start: Callable[[int, Prepared], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Outcome:
        """Run a backfill to its end; :class:`Conflict` if one is already running."""
        started = await self._start(target, trigger=trigger)
        if on_start is not None:
            on_start(started[1], started[2])
        return await self._finish(*started, on_progress=on_progress)

    async def trigger(self, target: Target, *, trigger: str = "api") -> int:
        """Start a backfill in the background; its run id (:class:`Conflict` if busy)."""
        started = await self._start(target, trigger=trigger)
        task = asyncio.create_task(self._finish(*started), name=f"backfill-{started[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return started[1]

    async def join(self) -> None:
        """Wait for the runs started by :meth:`trigger` to end."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop background runs (they end ``interrupted``)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _refuse_mixing(self) -> None:
        """:class:`Conflict` when the simulator would write into a database of real bars."""
        if self.provider_name == SYNTHETIC and await data_mode(self.store) == "real":
            msg = (
                "this database holds real bars, and simulated ones are never mixed in: "
                "set POLYGON_API_KEY to backfill from Polygon"
            )
            raise Conflict(msg)

    async def _start(
        self, target: Target, *, trigger: str
    ) -> tuple[StoreLock, int, Prepared, tuple[int, ...]]:
        await self._refuse_mixing()
        lock = await acquire(self.store, holder=holder_id())
        try:
            now = self.clock()
            recovered = await recover(self.store, at=now)
            prepared = await self.plan(target)
            run_id = await self.store.create_run(
                trigger=trigger,
                provider=self.provider_name,
                at=now,
                symbols=[(s.symbol, s.start, s.end) for s in prepared.plan.symbols],
            )
        except BaseException:
            await lock.release()
            raise
        log.info(
            "backfill run %d started: %d symbol(s), %d call(s) planned",
            run_id,
            len(prepared.plan.symbols),
            prepared.plan.calls,
            extra={
                "event": "backfill_started",
                "run": run_id,
                "run_id": run_id,
                "trigger": trigger,
            },
        )
        return lock, run_id, prepared, recovered

    async def _finish(
        self,
        lock: StoreLock,
        run_id: int,
        prepared: Prepared,
        recovered: tuple[int, ...],
        *,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Outcome:
        with log_context(run_id=run_id):  # every line the run logs carries its id
            return await self._execute(lock, run_id, prepared, recovered, on_progress=on_progress)

    async def _execute(
        self,
        lock: StoreLock,
        run_id: int,
        prepared: Prepared,
        recovered: tuple[int, ...],
        *,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Outcome:
        now = self.clock()
        provider: Provider | None = None
        execution: Execution | None = None
        status, message = "failed", None
        try:
            provider = self.open_provider(prepared.symbols)
            execution = Execution(
                self.store,
                provider,
                prepared,
                run_id=run_id,
                options=self.options,
                now=now,
                on_progress=on_progress,
            )
            later = await self._refresh_actions(
                provider, prepared.plan.symbols, execution.progress, through=prepared.end, now=now
            )
            progress = await execution.run()
            await self._refresh_actions(
                provider, later, progress, through=prepared.end, now=now, replaced=True
            )
            status = _status(progress)
            message = "; ".join(progress.notes) or None
        except asyncio.CancelledError:
            status, message = "interrupted", "stopped before the end (Ctrl-C or shutdown)"
            raise
        except MarketDataError as exc:
            message = str(exc)
            raise
        finally:
            if execution is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._settle_calls(provider, execution.progress))
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self.store.finish_run(run_id, status=status, at=self.clock(), message=message)
                )
            if provider is not None:
                with contextlib.suppress(Exception):
                    await provider.aclose()
            await asyncio.shield(lock.release())
            log.info(
                "backfill run %d ended %s",
                run_id,
                status,
                extra={"event": "backfill_finished", "run": run_id, "status": status},
            )
        assert execution is not None  # set before anything could succeed
        return Outcome(
            run_id=run_id,
            status=status,
            progress=execution.progress,
            prepared=prepared,
            message=message,
            recovered=recovered,
        )

    async def _refresh_actions(
        self,
        provider: Provider,
        symbols: Sequence[SymbolPlan],
        progress: Progress,
        *,
        through: dt.date,
        now: dt.datetime,
        replaced: bool = False,
    ) -> list[SymbolPlan]:
        """Fetch the splits and dividends of the days ``symbols`` hold or get bars for that
        ``provider`` was not asked about yet; returns the symbols whose simulated bars real
        ones replace, to do after their bars (purging simulated bars purges their actions).
        With ``replaced`` (after the bars), what was asked before is disregarded.
        """
        todo = await self._actions_todo(symbols, provider.name, replaced=replaced)
        if todo is None:
            return []
        for since, names in todo.requests.items():
            before = getattr(provider, "calls", None)
            try:
                await fetch_actions(self.store, provider, names, at=now, since=since)
            except AuthenticationFailed:
                raise
            except MarketDataError as exc:
                progress.notes.append(f"corporate actions not refreshed: {exc}")
                continue
            finally:
                after = getattr(provider, "calls", None)
                used = after - before if isinstance(after, int) and isinstance(before, int) else 2
                await self._count_calls(progress, used)
            checked = todo.checked(since, names, through)
            await save_checked(self.store, provider.name, checked, at=self.clock())
            await self.store.mark_actions_checked(names, through)
        return [s for s in symbols if s.symbol in todo.later]

    async def _count_calls(self, progress: Progress, calls: int) -> None:
        if calls > 0:
            await self.store.save_progress(
                Checkpoint(run_id=progress.run_id, calls=calls), at=self.clock()
            )
            progress.calls += calls

    async def _settle_calls(self, provider: Provider | None, progress: Progress) -> None:
        """Count the HTTP requests not counted per request (pages, retries) in the run."""
        made = getattr(provider, "calls", None)
        if isinstance(made, int):
            await self._count_calls(progress, made - progress.calls)


def _status(progress: Progress) -> str:
    if not progress.failures:
        return "succeeded"
    if len(progress.failures) >= progress.symbols_total:
        return "failed"
    return "partial"


async def run_progress(store: Store, run_id: int) -> RunRecord:
    """One run with its per-symbol progress; :class:`NotFound` for an unknown id."""
    record = await store.read_run(run_id)
    if record is None:
        msg = f"no backfill run {run_id}"
        raise NotFound(msg)
    return record


async def run_history(store: Store, *, limit: int = 20) -> list[RunRecord]:
    """The latest runs, newest first."""
    return await store.list_runs(limit=limit)


def backfiller(
    store: Store,
    settings: Settings,
    *,
    provider: ProviderName | None = None,
    strategy: Strategy = "auto",
    clock: Callable[[], dt.datetime] | None = None,
) -> Backfiller:
    """A :class:`Backfiller` configured by ``settings``: Polygon when a key is set (or asked
    for), else the simulator; :class:`~marketdata.errors.ConfigError` for Polygon without a key.
    """
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    name: ProviderName = provider or (
        "polygon" if settings.polygon_api_key is not None else "synthetic"
    )
    if name == "polygon" and settings.polygon_api_key is None:
        msg = "the polygon provider needs an API key: set POLYGON_API_KEY (or MASSIVE_API_KEY)"
        raise ConfigError(msg)

    def factory(symbols: Sequence[str]) -> Provider:
        return open_provider(settings, name, now=now(), universe=symbols)

    return Backfiller(
        store,
        config=Watchlist(symbols=settings.symbols, years=settings.backfill_years),
        options=Options(
            overlap=settings.backfill_overlap,
            delay=dt.timedelta(minutes=settings.backfill_delay_minutes),
            concurrency=settings.backfill_concurrency,
            strategy=strategy,
        ),
        provider_name=name,
        open_provider=factory,
        clock=now,
    )
