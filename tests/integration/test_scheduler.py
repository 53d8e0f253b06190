"""The scheduler in one process: claims, catch-up at start, job information."""

from __future__ import annotations

import asyncio
import datetime as dt

from marketdata.service.scheduler import Job, Scheduler
from marketdata.storage import Store

NOW = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


def _recording_job(ran: list[dt.datetime], *, cron: str = "0 2 * * *") -> Job:
    async def run(fire_time: dt.datetime) -> None:
        ran.append(fire_time)

    return Job(name="demo", cron=cron, run=run)


async def test_a_trigger_runs_once_across_schedulers(store: Store) -> None:
    """Two schedulers on one database fire the same trigger: one runs it."""
    ran: list[dt.datetime] = []
    first, second = Scheduler(store, clock=lambda: NOW), Scheduler(store, clock=lambda: NOW)
    for scheduler in (first, second):
        scheduler.add(_recording_job(ran))
    results = await asyncio.gather(first.fire("demo"), second.fire("demo"))
    assert sorted(results) == [False, True]
    assert ran == [dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)]
    assert await store.last_claim("demo") == ran[0]


async def test_a_missed_trigger_is_caught_up_once(store: Store) -> None:
    """Down at 02:00: the run happens at start; a restart the same day does not repeat it."""
    ran: list[dt.datetime] = []
    scheduler = Scheduler(store, clock=lambda: NOW)
    scheduler.add(_recording_job(ran))
    assert await scheduler.due("demo") == dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    assert await scheduler.catch_up() == ["demo"]
    restarted = Scheduler(store, clock=lambda: NOW + dt.timedelta(hours=3))
    restarted.add(_recording_job(ran))
    assert await restarted.due("demo") is None
    assert await restarted.catch_up() == []
    assert len(ran) == 1
    tomorrow = Scheduler(store, clock=lambda: NOW + dt.timedelta(days=1))
    tomorrow.add(_recording_job(ran))
    assert await tomorrow.catch_up() == ["demo"]
    assert ran[-1] == dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)


async def test_started_scheduler_reports_its_jobs(store: Store) -> None:
    """Running: the job's next run comes from APScheduler; stopped: not running."""
    ran: list[dt.datetime] = []
    scheduler = Scheduler(store)
    scheduler.add(_recording_job(ran, cron="0 2 * * *"))
    await scheduler.start(catch_up=False)
    try:
        info = await scheduler.info()
        assert info.running
        job = info.job("demo")
        assert job is not None
        assert job.next_run is not None
        assert job.next_run.hour == 2
        assert job.next_run > dt.datetime.now(dt.UTC)
    finally:
        await scheduler.shutdown()
    assert not (await scheduler.info()).running
