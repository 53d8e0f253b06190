"""The periodic jobs an installation runs, built from its settings (more arrive with later
features: backups, verification samples)."""

from __future__ import annotations

from marketdata.service.runs import backfiller
from marketdata.service.scheduler import Job, backfill_job
from marketdata.settings import Settings
from marketdata.storage.base import Store


def scheduled_jobs(store: Store, settings: Settings) -> list[Job]:
    """The jobs to schedule: the daily backfill, from Polygon with a key, or keeping the
    simulated data current without one (unless ``MARKETDATA_SIMULATE=false``)."""
    jobs = []
    if settings.polygon_api_key is not None or settings.simulate:
        jobs.append(backfill_job(backfiller(store, settings), cron=settings.backfill_cron))
    return jobs
