"""``GET /metrics`` on both backends: request metrics by route template, backfill totals,
per-symbol freshness, scheduler state; plus the pure family builders it is made of."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount, Route

from marketdata.api.app import create_app
from marketdata.api.metrics import UNMATCHED, backfill_families, route_template
from marketdata.calendar import last_completed_session, sessions
from marketdata.service.quality import write_bars
from marketdata.service.scheduler import BACKFILL_JOB
from marketdata.settings import Settings
from marketdata.storage import Store, open_store
from marketdata.storage.jobs import Checkpoint, RunRecord, SymbolProgress
from tests.support.factories import AT, make_bars

#: The app's default vendor delay: a session counts as completed an hour after its close.
DELAY = dt.timedelta(minutes=Settings.model_fields["backfill_delay_minutes"].default)
WATCHED = ("AAPL", "GOOG", "MSFT", "NVDA")  # NVDA is watched but has no bars
FAILED_AT = AT + dt.timedelta(minutes=1)
FINISHED_AT = AT + dt.timedelta(hours=1, minutes=5)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def recent_sessions(count: int) -> list[dt.date]:
    """The last ``count`` sessions completed at the vendor, oldest first."""
    last = last_completed_session(dt.datetime.now(dt.UTC), delay=DELAY)
    days = sessions(last - dt.timedelta(days=40), last).tolist()
    return list(days[-count:])


def midnight(day: dt.date) -> float:
    """00:00 UTC of ``day`` as Unix time."""
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()


async def record_runs(store: Store, days: list[dt.date]) -> None:
    """A failed run (2 calls, 2 errors), then a succeeded one writing AAPL (3 calls, 1 error)."""
    failed = await store.create_run(
        trigger="scheduled", provider="test", at=AT, symbols=[("GOOG", None, None)]
    )
    problem = SymbolProgress(symbol="GOOG", calls=2, status="failed", error="HTTP 500")
    await store.save_progress(
        Checkpoint(run_id=failed, calls=2, errors=2, symbols=(problem,)), at=AT
    )
    await store.finish_run(failed, status="failed", at=FAILED_AT)
    run_id = await store.create_run(
        trigger="manual", provider="test", at=AT, symbols=[("AAPL", None, None)]
    )
    done = SymbolProgress(symbol="AAPL", through=days[-1], calls=3, status="done")
    checkpoint = Checkpoint(run_id=run_id, calls=3, errors=1, symbols=(done,))
    await write_bars(
        store, make_bars("AAPL", dates=days[-5:]), source="test", at=AT, checkpoint=checkpoint
    )
    await store.finish_run(run_id, status="succeeded", at=FINISHED_AT)


@pytest.fixture
async def seeded(database_url: str) -> str:
    """AAPL up to date (written by a run), MSFT one session behind, GOOG three behind."""
    days = recent_sessions(10)
    store = await open_store(database_url)
    try:
        await write_bars(store, make_bars("MSFT", dates=days[-6:-1]), source="test", at=AT)
        await write_bars(store, make_bars("GOOG", dates=days[-8:-3]), source="test", at=AT)
        await record_runs(store, days)
    finally:
        await store.aclose()
    return database_url


def settings(url: str, *, scheduler: bool = False, simulate: bool = False) -> Settings:
    """Settings for an app on ``url`` watching :data:`WATCHED`."""
    return Settings(database_url=url, simulate=simulate, scheduler=scheduler, symbols=WATCHED)


@pytest.fixture
def client(seeded: str) -> Iterator[TestClient]:
    """An app on the seeded database, scheduler off, lifespan running."""
    with TestClient(create_app(settings(seeded))) as test_client:
        yield test_client


def scrape(client: TestClient) -> Samples:
    """Every sample of ``GET /metrics``, keyed by (sample name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of one sample, which must exist."""
    return samples[name, frozenset(labels.items())]


def names_with(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples called ``name``, by their labels."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


# -- requests -----------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template(client: TestClient) -> None:
    """Two reads of AAPL and one of MSFT are one series labelled with the route template."""
    for symbol in ("AAPL", "AAPL", "MSFT"):
        assert client.get(f"/api/v1/historical/{symbol}").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/docs").status_code == 200
    samples = scrape(client)
    requests = "marketdata_http_requests_total"
    route = "/api/v1/historical/{symbol}"
    assert value(samples, requests, method="GET", route=route, status="200") == 3
    assert value(samples, requests, method="GET", route=UNMATCHED, status="404") == 1
    assert value(samples, requests, method="GET", route="/docs", status="200") == 1
    routes = {dict(labels)["route"] for labels in names_with(samples, requests)}
    assert not any("AAPL" in r or "MSFT" in r or "such" in r for r in routes)


def test_unknown_methods_share_one_label(client: TestClient) -> None:
    """A made-up method counts as ``other`` (bounded labels); the route still matches (405)."""
    assert client.request("BREW", "/api/v1/historical/AAPL").status_code == 405
    samples = scrape(client)
    route = "/api/v1/historical/{symbol}"
    assert (
        value(samples, "marketdata_http_requests_total", method="other", route=route, status="405")
        == 1
    )


def test_latency_histogram_has_buckets_per_route(client: TestClient) -> None:
    """Each route has cumulative buckets ending in +Inf, a count and a sum of seconds."""
    client.get("/api/v1/historical/AAPL")
    client.get("/api/v1/historical/MSFT")
    samples = scrape(client)
    name = "marketdata_http_request_duration_seconds"
    route = "/api/v1/historical/{symbol}"
    buckets = {
        dict(labels)["le"]: v
        for labels, v in names_with(samples, f"{name}_bucket").items()
        if dict(labels)["route"] == route
    }
    assert len(buckets) > 5
    assert buckets["+Inf"] == 2
    counts = [buckets[le] for le in sorted(buckets, key=float)]
    assert counts == sorted(counts)
    assert value(samples, f"{name}_count", method="GET", route=route) == 2
    assert 0 < value(samples, f"{name}_sum", method="GET", route=route) < 60


def test_metrics_is_prometheus_text_and_documented(client: TestClient) -> None:
    """The Prometheus text content type, and an OpenAPI entry with a text/plain example."""
    response = client.get("/metrics")
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert list(text_string_to_metric_families(response.text))
    operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert operation["description"]
    example = operation["responses"]["200"]["content"]["text/plain"]["example"]
    assert list(text_string_to_metric_families(example))


# -- read from the database -----------------------------------------------------------------


def test_backfill_totals_equal_the_recorded_runs(client: TestClient) -> None:
    """Calls, errors, bars written and outcomes add up the two runs; the last success is
    the succeeded run's finish."""
    samples = scrape(client)
    assert value(samples, "marketdata_backfill_calls_total") == 5
    assert value(samples, "marketdata_backfill_errors_total") == 3
    assert value(samples, "marketdata_backfill_bars_written_total", kind="inserted") == 5
    assert value(samples, "marketdata_backfill_bars_written_total", kind="updated") == 0
    outcomes = {
        dict(labels)["status"]: v
        for labels, v in names_with(samples, "marketdata_backfill_runs_total").items()
    }
    assert outcomes == {"succeeded": 1, "failed": 1, "partial": 0, "interrupted": 0}
    assert value(samples, "marketdata_backfill_running") == 0
    last = "marketdata_backfill_last_run_timestamp_seconds"
    assert value(samples, last, status="succeeded") == FINISHED_AT.timestamp()
    assert value(samples, last, status="failed") == FAILED_AT.timestamp()
    assert (
        value(samples, "marketdata_backfill_last_success_timestamp_seconds")
        == FINISHED_AT.timestamp()
    )
    age = (dt.datetime.now(dt.UTC) - FINISHED_AT).total_seconds()
    assert value(samples, "marketdata_backfill_last_success_age_seconds") == pytest.approx(
        age, abs=60
    )


async def test_symbol_freshness_and_validation(client: TestClient, seeded: str) -> None:
    """Sessions behind, last session, bars and rates per symbol; stale counts watched symbols
    more than one session behind or empty."""
    samples = scrape(client)
    days = recent_sessions(10)
    behind = {
        dict(labels)["symbol"]: v
        for labels, v in names_with(samples, "marketdata_symbol_sessions_behind").items()
    }
    assert behind == {"AAPL": 0, "MSFT": 1, "GOOG": 3}  # NVDA has no bars: no series
    last = "marketdata_symbol_last_session_timestamp_seconds"
    assert value(samples, last, symbol="AAPL") == midnight(days[-1])
    assert value(samples, last, symbol="MSFT") == midnight(days[-2])
    assert value(samples, "marketdata_last_completed_session_timestamp_seconds") == midnight(
        days[-1]
    )
    assert value(samples, "marketdata_stale_symbols") == 2  # GOOG (3 behind) and NVDA (empty)
    assert value(samples, "marketdata_symbol_watched", symbol="NVDA") == 1
    assert value(samples, "marketdata_symbol_bars", symbol="NVDA") == 0
    store = await open_store(seeded)
    try:
        statuses = await store.symbol_statuses()
    finally:
        await store.aclose()
    for status in statuses:
        assert value(samples, "marketdata_symbol_bars", symbol=status.symbol) == 5
        assert value(
            samples, "marketdata_symbol_validation_rate", symbol=status.symbol
        ) == pytest.approx(status.validated_count / status.bar_count)
        assert value(samples, "marketdata_symbol_missing_sessions", symbol=status.symbol) == (
            status.gap_count
        )
    validated = sum(s.validated_count for s in statuses)
    assert value(samples, "marketdata_validation_rate") == pytest.approx(validated / 15)


def test_scheduler_off_reports_zero(client: TestClient) -> None:
    """With MARKETDATA_SCHEDULER off the scheduler is not running; the info series is 1."""
    samples = scrape(client)
    assert value(samples, "marketdata_scheduler_running") == 0
    assert value(samples, "marketdata_database_up") == 1
    [labels] = names_with(samples, "marketdata_info")
    assert dict(labels)["version"]
    assert dict(labels)["backend"] in {"sqlite", "postgresql"}


def test_scheduler_started_by_the_app_reports_one(seeded: str) -> None:
    """An app that starts its scheduler reports it running, with the backfill's next run."""
    app = create_app(settings(seeded, scheduler=True, simulate=True))  # real data: no seeding
    with TestClient(app) as running:
        samples = scrape(running)
    assert value(samples, "marketdata_scheduler_running") == 1
    next_run = value(samples, "marketdata_scheduler_next_run_timestamp_seconds", job=BACKFILL_JOB)
    now = dt.datetime.now(dt.UTC).timestamp()
    assert now < next_run <= now + 86_400


def test_database_down_still_serves_request_metrics(client: TestClient) -> None:
    """When the store fails, database_up is 0, its families are left out, requests remain."""
    client.get("/docs")
    assert client.portal is not None  # set while the client is open
    client.portal.call(client.app_state["store"].aclose)
    samples = scrape(client)
    assert value(samples, "marketdata_database_up") == 0
    assert not names_with(samples, "marketdata_backfill_calls_total")
    assert value(samples, "marketdata_scheduler_running") == 0
    assert (
        value(samples, "marketdata_http_requests_total", method="GET", route="/docs", status="200")
        == 1
    )


# -- pure pieces ----------------------------------------------------------------------------------


def run(status: str, *, finished: dt.datetime | None = None, calls: int = 1) -> RunRecord:
    """A run record with one of everything."""
    return RunRecord(
        id=1,
        started_at=AT,
        finished_at=finished,
        status=status,
        trigger="manual",
        provider="test",
        calls=calls,
        inserted=1,
        updated=1,
        unchanged=1,
        errors=1,
        message=None,
    )


def family_values(runs: list[RunRecord]) -> dict[str, float]:
    """``backfill_families`` as {sample name + labels: value}."""
    return {
        s.name + "".join(f"|{v}" for v in s.labels.values()): s.value
        for f in backfill_families(runs, now=AT + dt.timedelta(hours=2))
        for s in f.samples
    }


def test_running_runs_count_in_totals_not_outcomes() -> None:
    """A run in progress adds its calls and bars, but no outcome, until it finishes."""
    values = family_values([run("running", calls=4), run("partial", finished=AT, calls=1)])
    assert values["marketdata_backfill_calls_total"] == 5
    assert values["marketdata_backfill_bars_written_total|inserted"] == 2
    assert values["marketdata_backfill_runs_total|partial"] == 1
    assert values["marketdata_backfill_running"] == 1
    assert "marketdata_backfill_last_run_timestamp_seconds|running" not in values


def test_last_success_age_is_infinite_without_success() -> None:
    """No succeeded run: no success timestamp, and an age of +Inf (alerts fire)."""
    values = family_values([run("failed", finished=AT)])
    assert math.isinf(values["marketdata_backfill_last_success_age_seconds"])
    assert "marketdata_backfill_last_success_timestamp_seconds" not in values
    assert family_values([run("succeeded", finished=AT)])[
        "marketdata_backfill_last_success_age_seconds"
    ] == (2 * 3600)


def _scope(path: str, **extra: object) -> dict[str, object]:
    return {"type": "http", "method": "GET", "path": path, "root_path": "", **extra}


async def _app(scope: object, receive: object, send: object) -> None:
    """An ASGI app that is never called."""


def test_route_template_of_mounts_and_unmatched_paths() -> None:
    """A mount reports its path (plus its inner route's); an unmatched path is ``unmatched``."""
    routes = [Mount("/static", app=_app), Route("/docs", _app)]
    assert route_template(_scope("/static/app.css"), routes) == "/static"
    assert route_template(_scope("/docs"), routes) == "/docs"
    assert route_template(_scope("/nope"), routes) == UNMATCHED
    inner = Route("/items/{item}", _app)
    after = _scope("/web/items/7", root_path="/web", route=inner)
    assert route_template(after, routes) == "/web/items/{item}"
