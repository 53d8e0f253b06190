"""A user's first run: import a file, `marketdata serve`, read the bars over a real socket."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_import_then_serve_on_default_sqlite(tmp_path: Path) -> None:
    """The README flow on the zero-set-up default database serves the imported bars."""
    env = {**os.environ, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "marketdata"]
    imported = subprocess.run(
        [*cli, "import", str(REPO / "examples" / "sample.csv")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    port = free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert server.stderr is not None
        for line in server.stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        seen = []
        while True:  # readiness: uvicorn announces the socket it listens on
            line = lines.get(timeout=60)
            seen.append(line)
            if "Uvicorn running on" in line or "Application startup complete" in line:
                break
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health", timeout=10).json()["database"] == "ok"
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
            "quality": None,
            "validated": False,
        }
        assert (tmp_path / "data" / "marketdata.db").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
        reader.join(timeout=30)
        if server.stderr is not None:
            server.stderr.close()
