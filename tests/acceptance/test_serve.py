"""A user's first runs: `marketdata serve` over a real socket, with imported or simulated data."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.processes import free_port, running

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "marketdata"]
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("POLYGON_", "MASSIVE_"))},
    "COLUMNS": "200",
}


@contextmanager
def serving(cwd: Path, *options: str) -> Iterator[tuple[str, list[str]]]:
    """`marketdata serve` in ``cwd`` until the block ends: (base URL, stderr lines until ready)."""
    port = free_port()
    ready = ("Application startup complete",)
    command = [*CLI, "serve", "--port", str(port), *options]
    with running(command, ready=ready, cwd=cwd, env=ENV) as seen:
        yield f"http://127.0.0.1:{port}", seen


def test_import_then_serve_on_default_sqlite(tmp_path: Path) -> None:
    """The README flow on the zero-set-up default database serves the imported bars."""
    imported = subprocess.run(
        [*CLI, "import", str(REPO / "examples" / "sample.csv")],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    with serving(tmp_path) as (base, _):
        health = httpx.get(f"{base}/health", timeout=10).json()
        assert (health["database"], health["data_mode"]) == ("ok", "real")
        body = httpx.get(f"{base}/api/v1/historical/AAPL", timeout=10).json()
        assert body["count"] == 2
        assert body["bars"][0] == {
            "date": "2005-04-01",
            "open": 1.5032,
            "high": 1.5064,
            "low": 1.4489,
            "close": 1.4604,
            "volume": 642646396.0,
            "vwap": 1.469,
            "transactions": 82132,
            "quality": 1.0,
            "validated": True,
            "flags": [],
        }
    assert (tmp_path / "data" / "marketdata.db").exists()


def test_first_run_without_a_key_serves_simulated_data(tmp_path: Path) -> None:
    """The README's first command with no key: simulated bars at once, said loudly."""
    with serving(tmp_path) as (base, stderr):
        assert any("SIMULATED DATA" in line for line in stderr)
        health = httpx.get(f"{base}/health", timeout=10).json()
        assert health["data_mode"] == "simulated"
        assert health["scheduler_running"] is True
        assert health["next_backfill"].endswith("02:00:00Z")
        body = httpx.get(f"{base}/api/v1/historical/MSFT", timeout=10).json()
        assert body["count"] > 1000
        year_ago = dt.date.today() - dt.timedelta(days=365)
        polygon = httpx.get(
            f"{base}/v2/aggs/ticker/MSFT/range/1/day/{year_ago}/{dt.date.today()}?adjusted=true",
            timeout=10,
        ).json()
        assert polygon["status"] == "OK"
        assert polygon["resultsCount"] > 100
        missing = httpx.get(f"{base}/api/v1/historical/ZZZZ", timeout=10)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        refused = httpx.post(f"{base}/api/v1/backfill", json={}, timeout=10)
        assert refused.status_code == 403
        assert "MARKETDATA_API_KEYS" in refused.json()["detail"]
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert (
            'marketdata_http_requests_total{method="GET",route="/api/v1/historical/{symbol}"'
            in (metrics)
        )


def test_several_workers_share_one_database(tmp_path: Path) -> None:
    """`serve --workers 2`: both processes answer from one database, seeded once."""
    with serving(tmp_path, "--workers", "2") as (base, stderr):
        assert any("2 worker(s)" in line for line in stderr)
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(6):
                assert client.get("/health").json()["database"] == "ok"
            status = client.get("/api/v1/status").json()
        assert status["symbols"] == 15
        assert status["data_mode"] == "simulated"
