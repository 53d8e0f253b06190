"""`marketdata fake-polygon` and the real client: 15 symbols × 5 years through 429s, no leak."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path

import polars as pl

from marketdata.providers.polygon import PolygonClient
from marketdata.providers.simulator import DEFAULT_SYMBOLS, MarketSimulator
from tests.support.processes import free_port, running

KEY = "pk_ACCEPT_0a1b2c3d4e5f6789"


def test_fake_polygon_command_with_the_client(tmp_path: Path) -> None:
    """Pages of 300 and the first 10 calls answered 429: all bars arrive, the key stays hidden."""
    port = free_port()
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [
        sys.executable,
        "-m",
        "marketdata",
        "fake-polygon",
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--today",
        "2026-11-20",
        "--page-size",
        "300",
        "--throttle-first",
        "10",
        "--retry-after",
        "0.1",
    ]
    start, end = dt.date(2021, 11, 20), dt.date(2026, 11, 20)

    async def fetch() -> tuple[list[pl.DataFrame], int]:
        client = PolygonClient(
            api_key=KEY,
            base_url=f"http://127.0.0.1:{port}",
            calls_per_minute=0,
            wait_initial=0.01,
            wait_max=0.2,
        )
        try:
            frames = await asyncio.gather(
                *(client.daily_bars(s, start, end) for s in DEFAULT_SYMBOLS)
            )
        finally:
            await client.aclose()
        return list(frames), client.calls

    with running(cmd, ready=("Uvicorn running on",), cwd=tmp_path, env=env) as output:
        frames, calls = asyncio.run(fetch())
    got = pl.concat(frames).sort("symbol", "date")
    expected = MarketSimulator(seed=0).bars(list(DEFAULT_SYMBOLS), start, end)
    assert got.equals(expected.sort("symbol", "date"))
    assert calls >= 15 * 5 + 10  # at least five pages per symbol, plus the ten 429s
    assert KEY not in "".join(output)
