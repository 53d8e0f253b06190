"""Prometheus metrics: requests by route, backfill activity, data freshness, scheduler state,
backups.

- **Requests** are measured in this process by a pure ASGI middleware into the app's own
  registry (``app.state.metrics_registry``): each worker counts its own, so ``sum`` them. The
  ``route`` label is the route template (``/api/v1/historical/{symbol}``), never the raw path.
- **Everything else** is read at scrape time from the database's maintained summaries through
  the service function behind ``GET /api/v1/status``, so every worker reports the same values
  (``max`` them, never ``sum``). Only the scheduler state is this process's own.

This module serves ``GET /metrics`` and installs the metrics on the app; the middleware lives
in :mod:`marketdata.api.request_metrics` and the families read at scrape time (pure functions
of what was read, and of ``now``: a new one is a few lines in one of them) in
:mod:`marketdata.api.metric_families`. Their public names are re-exported here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest

from marketdata.api.deps import SchedulerDep, SettingsDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.metric_families import (
    STALE_AFTER_SESSIONS,
    backfill_families,
    backup_families,
    freshness_families,
    info_families,
    scheduler_families,
)
from marketdata.api.request_metrics import (
    LATENCY_BUCKETS,
    UNMATCHED,
    RequestMetrics,
    route_template,
)
from marketdata.api.security import require_read
from marketdata.errors import StorageError
from marketdata.service.backup_run import last_backup
from marketdata.service.scheduler import SchedulerInfo
from marketdata.service.status import service_status
from marketdata.service.watchlist import Watchlist

#: Re-exported: the app and tests import the request middleware and the families from here.
__all__ = [
    "EXAMPLE",
    "LATENCY_BUCKETS",
    "RUN_WINDOW",
    "STALE_AFTER_SESSIONS",
    "UNMATCHED",
    "RequestMetrics",
    "backfill_families",
    "backup_families",
    "freshness_families",
    "info_families",
    "install_metrics",
    "metrics",
    "route_template",
    "router",
    "scheduler_families",
]

#: Runs summed for the ``marketdata_backfill_*_total`` counters: all of them in practice (a
#: daily schedule records ~300 a year). Past this many the oldest drop out of the sums, which
#: Prometheus would read as counter resets; a smaller window would get there within a few
#: years. Reading 1,000 runs takes under 10 ms, 10,000 about 50-100 ms (SQLite, PostgreSQL).
RUN_WINDOW: Final = 10_000


class _Scrape:
    """One scrape's collector: the families read for it, then the process's request metrics."""

    def __init__(self, families: Iterable[Metric], registry: CollectorRegistry) -> None:
        self.families, self.registry = list(families), registry

    def collect(self) -> Iterable[Metric]:
        yield from self.families
        yield from self.registry.collect()


# -- the route --------------------------------------------------------------------------------

EXAMPLE = """\
# HELP marketdata_backfill_calls_total Upstream (vendor) calls made by backfill runs.
# TYPE marketdata_backfill_calls_total counter
marketdata_backfill_calls_total 1843.0
# TYPE marketdata_http_requests_total counter
marketdata_http_requests_total{method="GET",route="/api/v1/historical/{symbol}",status="200"} 42.0
"""

router = APIRouter(tags=["system"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(require_read)],
    responses={
        200: {
            "description": "Metrics in the Prometheus text format.",
            "content": {"text/plain": {"example": EXAMPLE}},
        },
        **problem_responses(401, 403),
    },
)
async def metrics(
    request: Request, store: StoreDep, scheduler: SchedulerDep, settings: SettingsDep
) -> Response:
    """Request counts and latencies by route (this process), backfill totals and outcomes,
    per-symbol freshness, the scheduler's state and the last backup, in the Prometheus text
    format.

    Everything but the request metrics and ``marketdata_scheduler_running`` is read from the
    database, so every worker process reports the same values. When the database does not
    answer, ``marketdata_database_up`` is 0 and those families are left out.
    """
    now = dt.datetime.now(dt.UTC)
    families: list[Metric] = []
    try:
        runs = await store.list_runs(limit=RUN_WINDOW)
        status = await service_status(
            store,
            config=Watchlist(symbols=settings.symbols, years=settings.backfill_years),
            now=now,
            delay=dt.timedelta(minutes=settings.backfill_delay_minutes),
        )
        info = await scheduler.info()
        backups = await last_backup(store)
    except StorageError:
        database_up = False
        families.extend(scheduler_families(SchedulerInfo(running=scheduler.running)))
    else:
        database_up = True
        families.extend(backfill_families(runs, now=now))
        families.extend(freshness_families(status))
        families.extend(scheduler_families(info))
        families.extend(backup_families(backups, now=now))
    families.extend(info_families(backend=store.backend, database_up=database_up))
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = generate_latest(_Scrape(families, registry))
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> None:
    """Count and time requests, and serve ``GET /metrics``."""
    registry = CollectorRegistry()
    for standard in (ProcessCollector, PlatformCollector, GCCollector):  # process_*, python_*
        standard(registry=registry)
    requests = Counter(
        "marketdata_http_requests_total",
        "HTTP requests by method, route template and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "marketdata_http_request_duration_seconds",
        "Time to answer HTTP requests, by method and route template.",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    app.state.metrics_registry = registry
    app.add_middleware(RequestMetrics, router=app.router, requests=requests, latency=latency)
    app.include_router(router)
