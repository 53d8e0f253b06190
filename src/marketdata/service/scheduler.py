"""Periodic jobs (the daily backfill, and later backups and verification), each trigger once.

APScheduler fires the jobs on their crontab schedules in every process that runs a
:class:`Scheduler` (every API worker, every ``marketdata worker``, on one machine or several).
Before running, a process *claims* the firing in the database: (job, scheduled time) is a
unique row, so exactly one process runs each trigger, however many fired it. A trigger missed
while every process was down is caught up at start: if the latest scheduled time before now
has no claim, it is run then (once, by whoever claims it).

"Now" is a parameter (``clock``), so tests and ``marketdata worker --once`` drive the same code
without waiting for the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from marketdata.crontab import parse_crontab
from marketdata.errors import Conflict, MarketDataError
from marketdata.service.backfill import Target
from marketdata.service.runs import Backfiller, holder_id
from marketdata.storage.base import Store

log = logging.getLogger(__name__)

#: The daily backfill job's name (also its key in ``job_claims``).
BACKFILL_JOB = "backfill"
#: How far back the latest scheduled time is searched for (wider windows only when needed).
_LOOKBACK = tuple(dt.timedelta(days=d) for d in (1 / 24, 1, 8, 32, 367, 5 * 366))

JobFunction = Callable[[dt.datetime], Awaitable[object]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A periodic job: a crontab schedule (UTC) and what to run, given the scheduled time."""

    name: str
    cron: str
    run: JobFunction
    catch_up: bool = True  # run a missed trigger at start

    @property
    def trigger(self) -> CronTrigger:
        """The parsed schedule."""
        return parse_crontab(self.cron)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobInfo:
    """What the status page says about a job."""

    name: str
    cron: str
    next_run: dt.datetime | None
    last_trigger: dt.datetime | None  # latest scheduled time claimed (by any process)


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerInfo:
    """Whether the scheduler runs here, and its jobs."""

    running: bool
    jobs: tuple[JobInfo, ...] = ()

    def job(self, name: str) -> JobInfo | None:
        """The job called ``name``."""
        return next((j for j in self.jobs if j.name == name), None)


def previous_fire_time(trigger: CronTrigger, now: dt.datetime) -> dt.datetime | None:
    """The latest time at or before ``now`` that ``trigger`` fires (None within 5 years)."""
    for window in _LOOKBACK:
        fire = trigger.get_next_fire_time(None, now - window)
        if fire is None or fire > now:
            continue
        while True:
            following = trigger.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
            if following is None or following > now:
                found: dt.datetime = fire.astimezone(dt.UTC)
                return found
            fire = following
    return None


class Scheduler:
    """The jobs of one process, fired by APScheduler and claimed in the database."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.clock = clock
        self.holder = holder_id()
        self.jobs: dict[str, Job] = {}
        self._aps: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    def add(self, job: Job) -> None:
        """Register ``job`` (before :meth:`start`)."""
        job.trigger  # noqa: B018  # parse now: a bad crontab fails at registration
        self.jobs[job.name] = job

    @property
    def running(self) -> bool:
        """Whether APScheduler is firing jobs in this process."""
        return self._aps is not None and self._aps.running

    async def start(self, *, catch_up: bool = True) -> None:
        """Start firing jobs; with ``catch_up``, run missed triggers in the background."""
        aps = AsyncIOScheduler(timezone=dt.UTC)
        for job in self.jobs.values():
            aps.add_job(
                self._fired,
                job.trigger,
                args=[job.name],
                id=job.name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=3600,
            )
        aps.start()
        self._aps = aps
        log.info(
            "scheduler started: %s",
            ", ".join(f"{j.name} at '{j.cron}' UTC" for j in self.jobs.values()) or "no jobs",
            extra={"event": "scheduler_started"},
        )
        if catch_up:
            self._spawn(self.catch_up())

    async def shutdown(self) -> None:
        """Stop firing and cancel jobs in progress (a backfill ends ``interrupted``)."""
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        self._aps = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def due(self, name: str) -> dt.datetime | None:
        """The latest scheduled time of ``name`` that nobody has claimed yet, if any."""
        job = self.jobs[name]
        fire = previous_fire_time(job.trigger, self.clock())
        if fire is None:
            return None
        last = await self.store.last_claim(name)
        return fire if last is None or last < fire else None

    async def catch_up(self) -> list[str]:
        """Run every job whose latest trigger was missed; the names this process ran."""
        ran = []
        for name, job in self.jobs.items():
            if not job.catch_up:
                continue
            fire = await self.due(name)
            if fire is not None and await self.fire(name, fire):
                ran.append(name)
        return ran

    async def fire(self, name: str, fire_time: dt.datetime | None = None) -> bool:
        """Claim the trigger of ``name`` at ``fire_time`` (default: the latest one) and run it.

        False when another process claimed it first (it runs there, not here).
        """
        job = self.jobs[name]
        now = self.clock()
        fire = fire_time or previous_fire_time(job.trigger, now) or now
        if not await self.store.claim(name, fire, holder=self.holder, at=now):
            log.info(
                "%s trigger of %s already claimed by another process",
                name,
                fire.isoformat(),
                extra={"event": "job_claimed_elsewhere", "job": name},
            )
            return False
        log.info(
            "running %s (trigger %s)",
            name,
            fire.isoformat(),
            extra={"event": "job_started", "job": name},
        )
        await job.run(fire)
        return True

    async def _fired(self, name: str) -> None:
        try:
            await self.fire(name)
        except Exception:  # a failing job must not stop the scheduler
            log.exception("job %s failed", name, extra={"event": "job_failed", "job": name})

    def _spawn(self, work: Awaitable[object]) -> None:
        async def guarded() -> object:
            try:
                return await work
            except Exception:
                log.exception("catch-up failed", extra={"event": "job_failed"})
                return None

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def next_run(self, name: str) -> dt.datetime | None:
        """When job ``name`` fires next (UTC), without asking the database; None if no such
        job."""
        job = self.jobs.get(name)
        if job is None:
            return None
        aps_job = self._aps.get_job(name) if self._aps is not None else None
        upcoming = (
            aps_job.next_run_time
            if aps_job is not None
            else job.trigger.get_next_fire_time(None, self.clock())
        )
        return upcoming.astimezone(dt.UTC) if upcoming else None

    async def info(self) -> SchedulerInfo:
        """Running or not, and each job's next and last trigger."""
        jobs = [
            JobInfo(
                name=name,
                cron=job.cron,
                next_run=self.next_run(name),
                last_trigger=await self.store.last_claim(name),
            )
            for name, job in self.jobs.items()
        ]
        return SchedulerInfo(running=self.running, jobs=tuple(jobs))


def backfill_job(backfiller: Backfiller, *, cron: str) -> Job:
    """The daily backfill of the watchlist, as a scheduler job."""

    async def run(fire_time: dt.datetime) -> None:
        try:
            outcome = await backfiller.run(Target(), trigger="scheduled")
        except Conflict as exc:
            log.info(
                "scheduled backfill (%s) skipped: %s",
                fire_time.isoformat(),
                exc,
                extra={"event": "backfill_skipped"},
            )
            return
        except MarketDataError as exc:
            log.error(
                "scheduled backfill (%s) failed: %s",
                fire_time.isoformat(),
                exc,
                extra={"event": "backfill_failed"},
            )
            return
        log.info(
            "scheduled backfill run %d %s: %d bars inserted, %d calls",
            outcome.run_id,
            outcome.status,
            outcome.progress.counts.inserted,
            outcome.progress.calls,
            extra={"event": "backfill_scheduled_done", "run": outcome.run_id},
        )

    return Job(name=BACKFILL_JOB, cron=cron, run=run)
