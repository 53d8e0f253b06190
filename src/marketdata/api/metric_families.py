"""Metric families read at scrape time: backfill runs, data freshness, scheduler, backups.

Each family is built by a pure function of what the scrape read from the database (through
the service function behind ``GET /api/v1/status``) and of ``now``, so every worker process
reports the same values (``max`` them, never ``sum``); only the scheduler's running state is
the process's own. A new family is a few lines in one of these functions.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Final, get_args

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from marketdata import __version__
from marketdata.service.backup_state import BackupState
from marketdata.service.scheduler import SchedulerInfo
from marketdata.service.status import ServiceStatus
from marketdata.storage.jobs import RunRecord, RunStatus

#: A watched symbol this many sessions behind still counts as current: the last session is
#: only fetched by the next daily backfill, hours after the vendor publishes it.
STALE_AFTER_SESSIONS: Final = 1

_FINISHED: Final = tuple(s for s in get_args(RunStatus) if s != "running")


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
