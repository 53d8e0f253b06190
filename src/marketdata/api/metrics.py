"""Prometheus metrics: requests by route, backfill activity, data freshness, scheduler state.

(Skeleton: implemented in full by the metrics work of issue 6.)
"""

from __future__ import annotations

from fastapi import FastAPI


def install_metrics(app: FastAPI) -> None:
    """Count and time requests, and serve ``GET /metrics``."""
    del app
