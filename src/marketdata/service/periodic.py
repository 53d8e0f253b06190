"""The periodic jobs an installation runs, built from its settings (more arrive with later
features: backups, verification samples)."""

from __future__ import annotations

import datetime as dt
import logging

from marketdata.service.runs import backfiller
from marketdata.service.scheduler import Job, backfill_job
from marketdata.service.simulated import data_mode
from marketdata.settings import Settings
from marketdata.storage.base import Store

log = logging.getLogger(__name__)


def scheduled_jobs(store: Store, settings: Settings) -> list[Job]:
    """The jobs to schedule.

    The daily backfill fetches from Polygon when a key is set. Without one it keeps simulated
    data current (the demo stays fresh) and does nothing for a database holding real bars.
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
