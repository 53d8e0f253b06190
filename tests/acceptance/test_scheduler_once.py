"""Three processes fire the same scheduled trigger on one database: exactly one run happens
(PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from marketdata.storage import open_store
from tests.support.polygon import KEY, Upstream


async def _runs_and_claim(url: str) -> tuple[list[str], dt.datetime | None]:
    store = await open_store(url)
    try:
        runs = [f"{r.trigger}:{r.status}" for r in await store.list_runs(limit=10)]
        return runs, await store.last_claim("backfill")
    finally:
        await store.aclose()


def test_three_workers_one_trigger_one_run(
    database_url: str, market: Upstream, tmp_path: Path
) -> None:
    """`marketdata worker --once` started three times at once: one claims the trigger and
    runs the backfill from Polygon, the other two find it claimed."""
    env = {
        **os.environ,
        "MARKETDATA_DATABASE_URL": database_url,
        "POLYGON_API_KEY": KEY,
        "POLYGON_BASE_URL": market.url,
        "POLYGON_CALLS_PER_MINUTE": "0",
        "MARKETDATA_BACKFILL_CRON": "0 0 1 1 *",  # the same latest trigger for every process
        "MARKETDATA_BACKUP_CRON": "",  # only the backfill job: the weekly backup is off
        "MARKETDATA_SYMBOLS": "AAPL,MSFT",
        "MARKETDATA_BACKFILL_YEARS": "1",
        "COLUMNS": "200",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "marketdata", "worker", "--once"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [w.communicate(timeout=180) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [e for _, e in results]
    said = sorted(out.strip() for out, _ in results)
    assert said == [
        "nothing due (or another process ran it)",
        "nothing due (or another process ran it)",
        "ran: backfill",
    ]
    runs, claim = asyncio.run(_runs_and_claim(database_url))
    assert runs == ["scheduled:succeeded"]
    ranges = [r for r in market.server.requests if "/range/" in r.path]
    assert len(ranges) == 2  # AAPL and MSFT, once each: one backfill ran
    now = dt.datetime.now(dt.UTC)
    assert claim == dt.datetime(now.year, 1, 1, tzinfo=dt.UTC)
