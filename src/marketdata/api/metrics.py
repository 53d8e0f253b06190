"""Prometheus metrics: requests by route, backfill activity, data freshness, scheduler state,
backups.

- **Requests** are measured in this process by a pure ASGI middleware into the app's own
  registry (``app.state.metrics_registry``): each worker counts its own, so ``sum`` them. The
  ``route`` label is the route template (``/api/v1/historical/{symbol}``), never the raw path.
- **Everything else** is read at scrape time from the database's maintained summaries through
  the service function behind ``GET /api/v1/status``, so every worker reports the same values
  (``max`` them, never ``sum``). Only the scheduler state is this process's own.

Families are built by pure functions of what was read (and of ``now``): a new one is a few
lines in one of them.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable, Sequence
from typing import Final, get_args

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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketdata import __version__
from marketdata.api.deps import SchedulerDep, SettingsDep, StoreDep
from marketdata.api.errors import problem_responses
from marketdata.api.security import require_read
from marketdata.errors import StorageError
from marketdata.service.backup_run import last_backup
from marketdata.service.backup_state import BackupState
from marketdata.service.scheduler import SchedulerInfo
from marketdata.service.status import ServiceStatus, service_status
from marketdata.service.watchlist import Watchlist
from marketdata.storage.jobs import RunRecord, RunStatus

#: Runs summed for the ``marketdata_backfill_*_total`` counters: all of them in practice (a
#: daily schedule records ~300 a year). Past this many the oldest drop out of the sums, which
#: Prometheus would read as counter resets; a smaller window would get there within a few
#: years. Reading 1,000 runs takes under 10 ms, 10,000 about 50-100 ms (SQLite, PostgreSQL).
RUN_WINDOW: Final = 10_000

#: A watched symbol this many sessions behind still counts as current: the last session is
#: only fetched by the next daily backfill, hours after the vendor publishes it.
STALE_AFTER_SESSIONS: Final = 1

#: Latency buckets (seconds): sub-millisecond reads up to large exports.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: The ``route`` label of requests that matched no route (404s, middleware answers).
UNMATCHED: Final = "unmatched"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_FINISHED: Final = tuple(s for s in get_args(RunStatus) if s != "running")


# -- requests ---------------------------------------------------------------------------------


def route_template(scope: Scope, routes: Sequence[BaseRoute], *, root_path: str = "") -> str:
    """The template of the route that handled ``scope`` (after the app ran), or ``unmatched``.

    FastAPI leaves its route in ``scope["route"]``; Starlette routes (``/docs``) and mounts are
    matched again. What a mount added to ``root_path`` (the scope's before) is a prefix.
    """
    prefix = str(scope.get("root_path", ""))
    prefix = prefix[len(root_path) :] if prefix.startswith(root_path) else ""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return prefix + path
    probe = {**scope, "root_path": root_path}
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str) and route.matches(probe)[0] is not Match.NONE:
            return path
    return UNMATCHED


class RequestMetrics:
    """Pure ASGI middleware: counts and times every HTTP request by method, route and status.

    A request that raises before answering counts as a 500. Latency runs until the response
    body is sent.
    """

    def __init__(
        self, app: ASGIApp, *, router: Router, requests: Counter, latency: Histogram
    ) -> None:
        self.app = app
        self.router = router
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = str(scope.get("root_path", ""))
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = route_template(scope, self.router.routes, root_path=root_path)
            self.requests.labels(method, route, str(status)).inc()
            self.latency.labels(method, route).observe(elapsed)


# -- families read at scrape time -------------------------------------------------------------


def _day_ts(day: dt.date) -> float:
    """00:00 UTC of ``day``: formatted as a UTC date it shows the session date itself."""
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()


def backfill_families(runs: Sequence[RunRecord], *, now: dt.datetime) -> list[Metric]:
    """Totals over the recorded ``runs``, the latest run of each outcome, the last success.

    Totals include runs still going (their counts only grow); runs are counted by outcome once
    finished. Without a successful run the age of the last success is +Inf, so one alert
    threshold also fires for an installation that never succeeded.
    """
    written = CounterMetricFamily(
        "marketdata_backfill_bars_written_total",
        "Bars written by backfill runs: inserted (new) or updated (changed by the vendor).",
        labels=["kind"],
    )
    written.add_metric(["inserted"], sum(r.inserted for r in runs))
    written.add_metric(["updated"], sum(r.updated for r in runs))
    outcomes = CounterMetricFamily(
        "marketdata_backfill_runs_total", "Finished backfill runs by outcome.", labels=["status"]
    )
    for status in _FINISHED:
        outcomes.add_metric([status], sum(r.status == status for r in runs))
    last_run = GaugeMetricFamily(
        "marketdata_backfill_last_run_timestamp_seconds",
        "When the latest run with each outcome finished (Unix time).",
        labels=["status"],
    )
    ended: dict[str, dt.datetime] = {}
    for r in runs:
        if r.finished_at is not None and r.status != "running":
            ended[r.status] = max(ended.get(r.status, r.finished_at), r.finished_at)
    for status, when in sorted(ended.items()):
        last_run.add_metric([status], when.timestamp())
    success = ended.get("succeeded")
    families: list[Metric] = [
        CounterMetricFamily(
            "marketdata_backfill_calls_total",
            "Upstream (vendor) calls made by backfill runs.",
            value=sum(r.calls for r in runs),
        ),
        CounterMetricFamily(
            "marketdata_backfill_errors_total",
            "Failures (symbols or calls) recorded by backfill runs.",
            value=sum(r.errors for r in runs),
        ),
        written,
        outcomes,
        GaugeMetricFamily(
            "marketdata_backfill_running",
            "Backfill runs in progress (recorded as running).",
            value=sum(r.status == "running" for r in runs),
        ),
        last_run,
        GaugeMetricFamily(
            "marketdata_backfill_last_success_age_seconds",
            "Seconds since the latest successful backfill run finished (+Inf: none yet).",
            value=(now - success).total_seconds() if success is not None else math.inf,
        ),
    ]
    if success is not None:
        families.append(
            GaugeMetricFamily(
                "marketdata_backfill_last_success_timestamp_seconds",
                "When the latest successful backfill run finished (Unix time).",
                value=success.timestamp(),
            )
        )
    return families


def freshness_families(status: ServiceStatus) -> list[Metric]:
    """Per-symbol coverage and freshness, stale watched symbols, the overall validation rate.

    A symbol's series exist for every stored or watched symbol; those about stored bars are
    absent while it has none.
    """

    def per_symbol(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=["symbol"])

    watched = per_symbol(
        "marketdata_symbol_watched", "1 when the symbol is on the watchlist (kept current)."
    )
    last = per_symbol(
        "marketdata_symbol_last_session_timestamp_seconds",
        "The symbol's last stored session, as 00:00 UTC of its date (Unix time).",
    )
    behind = per_symbol(
        "marketdata_symbol_sessions_behind",
        "XNYS sessions after the symbol's last stored one, up to the last completed session.",
    )
    bars = per_symbol("marketdata_symbol_bars", "Bars stored for the symbol.")
    rate = per_symbol(
        "marketdata_symbol_validation_rate", "Share of the symbol's bars that passed validation."
    )
    missing = per_symbol(
        "marketdata_symbol_missing_sessions", "XNYS sessions missing inside the stored range."
    )
    for s in status.symbols:
        labels = [s.symbol]
        watched.add_metric(labels, float(s.watched))
        bars.add_metric(labels, s.bars)
        missing.add_metric(labels, s.missing_sessions)
        if s.last_date is not None:
            last.add_metric(labels, _day_ts(s.last_date))
        if s.sessions_behind is not None:
            behind.add_metric(labels, s.sessions_behind)
        if s.validation_rate is not None:
            rate.add_metric(labels, s.validation_rate)
    stale = sum(
        s.watched and (s.sessions_behind is None or s.sessions_behind > STALE_AFTER_SESSIONS)
        for s in status.symbols
    )
    families: list[Metric] = [watched, last, behind, bars, rate, missing]
    families += [
        GaugeMetricFamily(
            "marketdata_stale_symbols",
            f"Watched symbols more than {STALE_AFTER_SESSIONS} session(s) behind, or empty.",
            value=stale,
        ),
        GaugeMetricFamily(
            "marketdata_last_completed_session_timestamp_seconds",
            "The last session completed at the vendor (close plus its delay), as 00:00 UTC "
            "of its date (Unix time): what sessions_behind counts up to.",
            value=_day_ts(status.last_completed_session),
        ),
    ]
    if status.bars:
        families.append(
            GaugeMetricFamily(
                "marketdata_validation_rate",
                "Share of all stored bars that passed validation.",
                value=status.validated / status.bars,
            )
        )
    return families


def scheduler_families(info: SchedulerInfo) -> list[Metric]:
    """This process's scheduler, and each job's next and latest claimed trigger."""
    next_run = GaugeMetricFamily(
        "marketdata_scheduler_next_run_timestamp_seconds",
        "When each scheduled job fires next (Unix time).",
        labels=["job"],
    )
    last = GaugeMetricFamily(
        "marketdata_scheduler_last_trigger_timestamp_seconds",
        "The latest trigger of each job that ran, in any process (Unix time).",
        labels=["job"],
    )
    for job in info.jobs:
        if job.next_run is not None:
            next_run.add_metric([job.name], job.next_run.timestamp())
        if job.last_trigger is not None:
            last.add_metric([job.name], job.last_trigger.timestamp())
    running = "1 when this process's scheduler is running (use max across processes)."
    return [
        GaugeMetricFamily("marketdata_scheduler_running", running, value=float(info.running)),
        next_run,
        last,
    ]


def backup_families(state: BackupState | None, *, now: dt.datetime) -> list[Metric]:
    """The newest backup and the last good one, as recorded in the database.

    Without a successful backup the age of the last success is +Inf (one alert threshold
    also fires for an installation that never backed up); the other series are absent until
    a backup is attempted.
    """
    success = state.last_success if state is not None else None
    families: list[Metric] = [
        GaugeMetricFamily(
            "marketdata_backup_last_success_age_seconds",
            "Seconds since the latest successful backup was taken (+Inf: none yet).",
            value=(now - success).total_seconds() if success is not None else math.inf,
        )
    ]
    if state is None:
        return families
    families += [
        GaugeMetricFamily(
            "marketdata_backup_last_ok",
            "1 when the newest backup was written and verified, else 0.",
            value=float(state.ok and state.verified is True),
        ),
        GaugeMetricFamily(
            "marketdata_backup_last_timestamp_seconds",
            "When the newest backup attempt was taken (Unix time).",
            value=state.at.timestamp(),
        ),
    ]
    if state.size is not None:
        families.append(
            GaugeMetricFamily(
                "marketdata_backup_last_size_bytes",
                "Size of the newest backup file (bytes).",
                value=state.size,
            )
        )
    return families


def info_families(*, backend: str, database_up: bool) -> list[Metric]:
    """Constant facts about this installation, and whether the database answered."""
    info = GaugeMetricFamily(
        "marketdata_info", "Version and database backend (always 1).", labels=["version", "backend"]
    )
    info.add_metric([__version__, backend], 1)
    up = "1 when this scrape read the database; 0 leaves out the families read from it."
    return [info, GaugeMetricFamily("marketdata_database_up", up, value=float(database_up))]


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
