"""`marketdata fake-polygon` and the real client: 15 symbols × 5 years through 429s, no leak."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl

from marketdata.providers.polygon import PolygonClient
from marketdata.providers.simulator import DEFAULT_SYMBOLS, MarketSimulator
from tests.acceptance.test_serve import free_port

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
    server = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert server.stderr is not None
        for line in server.stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while "Uvicorn running on" not in (line := lines.get(timeout=120)):
            output.append(line)
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

        frames, calls = asyncio.run(fetch())
    finally:
        server.terminate()
        server.wait(timeout=30)
        reader.join(timeout=30)
        if server.stderr is not None:
            server.stderr.close()
    while not lines.empty():
        output.append(lines.get())
    got = pl.concat(frames).sort("symbol", "date")
    expected = MarketSimulator(seed=0).bars(list(DEFAULT_SYMBOLS), start, end)
    assert got.equals(expected.sort("symbol", "date"))
    assert calls >= 15 * 5 + 10  # at least five pages per symbol, plus the ten 429s
    assert KEY not in "".join(output)
