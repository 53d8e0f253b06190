"""kill -9 a running ``marketdata backfill`` at several points, run it again, and get exactly
the database an uninterrupted run produces (both backends)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl

from marketdata.storage import Store, open_store
from marketdata.testing import FakePolygon
from tests.support.polygon import KEY, Upstream

SYMBOLS = "AAPL,MSFT,NVDA,TSLA,JPM"
#: Requests before the range requests: splits and dividends of the watchlist.
ACTION_REQUESTS = 2


def _env(url: str, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "MARKETDATA_DATABASE_URL": database_url,
        "POLYGON_API_KEY": KEY,
        "POLYGON_BASE_URL": url,
        "POLYGON_CALLS_PER_MINUTE": "0",
        "MARKETDATA_SYMBOLS": SYMBOLS,
        "MARKETDATA_BACKFILL_YEARS": "2",
        "MARKETDATA_BACKFILL_CONCURRENCY": "1",  # one request at a time: exact kill points
        "COLUMNS": "200",
    }


def _backfill(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "marketdata", "backfill"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when_blocked(server: FakePolygon, env: dict[str, str], cwd: Path, answered: int) -> None:
    """Start a backfill, let ``answered`` requests through, kill -9 while the next one waits."""
    seen = len(server.requests)
    server.faults.release = threading.Event()
    server.faults.hold_after = seen + answered
    process = _backfill(env, cwd)
    try:
        assert server.wait_for_requests(seen + answered + 1, timeout=90), "backfill stalled"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        server.faults.release.set()  # free the held request (its client is gone)
        server.faults.hold_after = None
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


async def _snapshot(url: str) -> dict[str, pl.DataFrame]:
    """Everything a user would compare, without ingestion timestamps."""
    store: Store = await open_store(url)
    try:
        names = SYMBOLS.split(",")
        bars = pl.concat(
            [
                (await store.read_bars(s))
                .with_columns(pl.lit(s).alias("symbol"))
                .drop("ingested_at")
                for s in names
            ]
        )
        logs = pl.concat([await store.read_validation_log(s) for s in names])
        revisions = pl.concat([await store.read_revisions(s) for s in names])
        statuses = pl.DataFrame(
            [
                (s.symbol, s.first_date, s.last_date, s.bar_count, s.validated_count, s.gap_count)
                for s in await store.symbol_statuses(names)
            ],
            orient="row",
        )
        return {
            "bars": bars.sort("symbol", "date"),
            "log": logs.drop("logged_at", strict=False).sort(pl.all()),
            "revisions": revisions,
            "statuses": statuses,
            "splits": (await store.read_splits(names)).sort(pl.all()),
            "dividends": (await store.read_dividends(names)).sort(pl.all()),
        }
    finally:
        await store.aclose()


async def _runs(url: str) -> list[str]:
    store = await open_store(url)
    try:
        return [r.status for r in reversed(await store.list_runs(limit=50))]
    finally:
        await store.aclose()


def test_kill_nine_then_rerun_equals_an_uninterrupted_run(
    database_url: str, market: Upstream, tmp_path: Path
) -> None:
    """Killed during the actions refresh, after 2 symbols, after 1 more, then run to the end:
    same bars, scores, log, actions and summaries as one clean run; no revisions; the three
    dead runs are marked interrupted."""
    server, url = market.server, market.url
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    clean = subprocess.run(
        [sys.executable, "-m", "marketdata", "backfill"],
        env=_env(url, reference_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert clean.returncode == 0, clean.stderr
    env = _env(url, database_url)
    # (requests answered before the kill, symbols complete by then): each run first refreshes
    # the actions of the symbols it still has to fetch, then asks for one symbol at a time.
    for answered, complete in ((1, 0), (ACTION_REQUESTS + 2, 2), (ACTION_REQUESTS + 1, 3)):
        _kill_when_blocked(server, env, tmp_path, answered)
        snapshot = asyncio.run(_snapshot(database_url))
        assert snapshot["bars"]["symbol"].n_unique() == complete
    finish = _backfill(env, tmp_path)
    out, errors = finish.communicate(timeout=180)
    assert finish.returncode == 0, errors
    assert "marked interrupted" in out
    expected = asyncio.run(_snapshot(reference_url))
    got = asyncio.run(_snapshot(database_url))
    assert got["bars"].height == expected["bars"].height > 5 * 480
    for name, frame in expected.items():
        assert got[name].equals(frame), name
    assert got["revisions"].is_empty()
    assert asyncio.run(_runs(database_url)) == ["interrupted"] * 3 + ["succeeded"]


async def _last_run(url: str) -> tuple[str, str | None]:
    store = await open_store(url)
    try:
        run = (await store.list_runs(limit=1))[0]
        return run.status, run.message
    finally:
        await store.aclose()


def test_ctrl_c_stops_cleanly(market: Upstream, tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130 with a hint, the run ends 'interrupted', the lock is free."""
    server, url = market.server, market.url
    database_url = f"sqlite:///{tmp_path / 'md.db'}"
    env = _env(url, database_url)
    server.faults.hold_after = len(server.requests) + ACTION_REQUESTS + 1
    process = _backfill(env, tmp_path)
    try:
        assert server.wait_for_requests(ACTION_REQUESTS + 2, timeout=90)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    finally:
        server.faults.release.set()
        server.faults.hold_after = None
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "run `marketdata backfill` again" in errors
    assert "Traceback" not in errors
    status, message = asyncio.run(_last_run(database_url))
    assert status == "interrupted"
    assert message is not None
    assert "stopped" in message
    again = _backfill(env, tmp_path)
    _, errors = again.communicate(timeout=180)
    assert again.returncode == 0, errors
