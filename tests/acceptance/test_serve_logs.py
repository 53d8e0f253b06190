"""`marketdata serve` logs as a service would: JSON lines, each request's id on its lines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx

from tests.support.processes import free_port, running


def test_serve_writes_json_lines_with_the_request_id(tmp_path: Path) -> None:
    """With stderr piped, every log line is a JSON object, uvicorn's access lines included,
    and the access line of a request carries the id the response echoed."""
    env = {**os.environ, "MARKETDATA_SIMULATE": "false", "COLUMNS": "200"}
    port = free_port()
    command = [sys.executable, "-m", "marketdata", "serve", "--port", str(port)]
    ready = ("Application startup complete",)
    with running(command, ready=ready, cwd=tmp_path, env=env) as lines:
        response = httpx.get(
            f"http://127.0.0.1:{port}/health", headers={"X-Request-ID": "probe-1"}, timeout=10
        )
        assert response.headers["X-Request-ID"] == "probe-1"
        generated = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    others = [line for line in lines if not line.startswith("{")]
    assert all(line.startswith("serving ") for line in others), others  # the CLI's own banner
    assert {r["logger"] for r in records} >= {"uvicorn.error", "uvicorn.access"}
    access = {r["request_id"]: r["message"] for r in records if r["logger"] == "uvicorn.access"}
    assert "GET /health" in access["probe-1"]
    assert "GET /health" in access[generated.headers["X-Request-ID"]]
