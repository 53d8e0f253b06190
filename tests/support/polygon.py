"""A Polygon-like server on 127.0.0.1 for the client tests, and a client pointed at it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from marketdata.providers.polygon import PolygonClient
from marketdata.testing import FakePolygon, FakePolygonConfig, serve_in_thread

#: A recognisable key: tests assert it never shows up where it must not.
KEY = "pk_TEST_9f8e7d6c5b4a3210"
TODAY = dt.date(2026, 11, 20)


@dataclass
class Upstream:
    """A running fake Polygon and its base URL."""

    server: FakePolygon
    url: str

    def client(self, **options: object) -> PolygonClient:
        """A client with fast retries (tiny backoff) unless overridden."""
        settings: dict[str, object] = {
            "api_key": KEY,
            "base_url": self.url,
            "calls_per_minute": 0,
            "wait_initial": 0.01,
            "wait_max": 0.05,
            "retry_deadline": 20.0,
            **options,
        }
        return PolygonClient(**settings)  # type: ignore[arg-type]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A fresh fake Polygon per test (faults and the request log start clean)."""
    server = FakePolygon(FakePolygonConfig(api_key=KEY, today=TODAY))
    with serve_in_thread(server.app) as url:
        yield Upstream(server=server, url=url)


@pytest.fixture
async def client(upstream: Upstream) -> AsyncIterator[PolygonClient]:
    """A client against the fake Polygon."""
    polygon = upstream.client()
    try:
        yield polygon
    finally:
        await polygon.aclose()


@pytest.fixture
def market() -> Iterator[Upstream]:
    """A fake Polygon whose data ends at the last session the wall clock has completed: for
    subprocesses and CLI runs, which plan with the real clock."""
    import marketdata.calendar as calendar

    today = calendar.last_completed_session(dt.datetime.now(dt.UTC))
    server = FakePolygon(FakePolygonConfig(api_key=KEY, today=today))
    with serve_in_thread(server.app) as url:
        yield Upstream(server=server, url=url)
