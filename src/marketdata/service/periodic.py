"""The periodic jobs an installation runs, built from its settings: the daily backfill and the
weekly backup (more arrive with later features: verification samples)."""

from __future__ import annotations

import datetime as dt
import logging

from marketdata.service.backup_run import backup_job
from marketdata.service.runs import backfiller
from marketdata.service.scheduler import Job, backfill_job
from marketdata.service.simulated import data_mode
from marketdata.settings import Settings
from marketdata.storage.base import Store

log = logging.getLogger(__name__)


def scheduled_jobs(store: Store, settings: Settings) -> list[Job]:
    """The jobs to schedule: the daily backfill, and the weekly backup
    (``MARKETDATA_BACKUP_CRON``; empty turns it off)."""
    backup = [backup_job(store, settings)] if settings.backup_cron else []
    return backfill_jobs(store, settings) + backup


def backfill_jobs(store: Store, settings: Settings) -> list[Job]:
    """The daily backfill.

    It fetches from Polygon when a key is set. Without one it keeps simulated data current
    (the demo stays fresh) and does nothing for a database holding real bars.
    """
    if settings.polygon_api_key is None and not settings.simulate:
        return []
    job = backfill_job(backfiller(store, settings), cron=settings.backfill_cron)
    if settings.polygon_api_key is not None:
        return [job]

    async def simulated_only(fire_time: dt.datetime) -> None:
        if await data_mode(store) != "simulated":
            log.info(
                "no POLYGON_API_KEY: scheduled backfill skipped (set a key to fetch real data)",
                extra={"event": "backfill_skipped"},
            )
            return
        await job.run(fire_time)

    return [Job(name=job.name, cron=job.cron, run=simulated_only, catch_up=job.catch_up)]
