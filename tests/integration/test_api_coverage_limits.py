"""``/api/v1/coverage`` at its limits, on both backends: an answer cut at its symbol limit says
so and continues through a cursor, and dates after the last completed session are never
counted as missing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from marketdata import calendar
from marketdata.api.app import create_app
from marketdata.settings import Settings
from marketdata.storage import open_store
from tests.support.factories import AT, make_bars

#: 215 symbols that sort first, then the five a user saw vanish from a 220-symbol answer.
LAST_FIVE = ["TSLA", "UNH", "V", "WMT", "XOM"]
NAMES = [f"A{i:03d}" for i in range(215)] + LAST_FIVE
JANUARY = {"start": "2024-01-01", "end": "2024-01-31"}


@pytest.fixture
async def many(database_url: str) -> str:
    """220 stored symbols with two bars each (2 and 3 January 2024); XOM also has a bar on the
    last session of October 2026."""
    frame = pl.concat([make_bars(name, days=2, validated=True) for name in NAMES])
    late = make_bars("XOM", dates=[dt.date(2026, 10, 30)], validated=True)
    store = await open_store(database_url)
    try:
        await store.upsert_bars(pl.concat([frame, late]), source="test", at=AT)
    finally:
        await store.aclose()
    return database_url


@pytest.fixture
def api(many: str) -> Iterator[TestClient]:
    """The API on the 220-symbol database."""
    settings = Settings(database_url=many, simulate=False, scheduler=False)
    with TestClient(create_app(settings)) as client:
        yield client


def _names(body: dict[str, Any]) -> list[str]:
    return [s["symbol"] for s in body["symbols"]]


def _last_session() -> dt.date:
    return calendar.last_completed_session(dt.datetime.now(dt.UTC), delay=dt.timedelta(hours=1))


def test_a_cut_answer_says_so(api: TestClient) -> None:
    """More stored symbols than one answer holds: the first 200, with the total, a truncated
    flag and a cursor, and none of the last five silently dropped."""
    body = api.get("/api/v1/coverage", params=JANUARY).json()
    assert _names(body) == NAMES[:200]
    assert (body["symbols_total"], body["truncated"]) == (220, True)
    assert body["next_cursor"]
    assert not set(LAST_FIVE) & set(_names(body))


def test_the_cursor_continues_after_the_last_symbol(api: TestClient) -> None:
    """Following ``next_cursor`` (here with ``limit=100``) yields every symbol once, in order;
    the last page is not truncated and has no cursor."""
    pages, cursor = [], None
    while True:
        params = {**JANUARY, "limit": "100"} | ({"cursor": cursor} if cursor else {})
        answer = api.get("/api/v1/coverage", params=params)
        assert answer.status_code == 200
        body = answer.json()
        pages.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p["symbols"]) for p in pages] == [100, 100, 20]
    assert [p["truncated"] for p in pages] == [True, True, False]
    assert {p["symbols_total"] for p in pages} == {220}
    assert [name for p in pages for name in _names(p)] == NAMES
    assert _names(pages[-1])[-5:] == LAST_FIVE
    assert pages[-1]["symbols"][-1]["months"] == [
        {"month": "2024-01", "sessions": 21, "present": 2, "valid": 2}
    ]


def test_named_symbols_are_never_cut(api: TestClient) -> None:
    """``symbols=`` answers exactly those: the total is theirs and nothing is truncated."""
    body = api.get("/api/v1/coverage", params={**JANUARY, "symbols": "xom,TSLA"}).json()
    assert _names(body) == ["TSLA", "XOM"]
    assert (body["symbols_total"], body["truncated"], body["next_cursor"]) == (2, False, None)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"cursor": "not-a-cursor"}, "invalid cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
    ],
)
def test_bad_pages_are_refused(api: TestClient, params: dict[str, str], detail: str) -> None:
    """A cursor that is not ours or a limit outside 1…200 is a 422 problem."""
    answer = api.get("/api/v1/coverage", params={**JANUARY, **params})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert detail in str(answer.json())


def test_openapi_documents_the_page(api: TestClient) -> None:
    """The schema names the new fields and parameters and says how the answer is cut."""
    spec = api.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/coverage"]["get"]
    assert {"cursor", "limit"} <= {p["name"] for p in operation["parameters"]}
    fields = spec["components"]["schemas"]["CoverageResponse"]["properties"]
    assert {"symbols_total", "truncated", "next_cursor"} <= set(fields)
    assert "next_cursor" in operation["description"]
    assert "last completed session" in operation["description"]


def test_future_dates_are_not_expected(api: TestClient) -> None:
    """An ``end`` after the last completed session is clamped to it: later months are absent,
    never counted as sessions with no bar."""
    before = _last_session()
    body = api.get(
        "/api/v1/coverage", params={"symbols": "XOM", "start": "2026-10-01", "end": "2035-12-31"}
    ).json()
    after = _last_session()
    assert before.isoformat() <= body["end"] <= after.isoformat()
    last_month = after.isoformat()[:7]
    assert max(body["months"]) <= last_month
    cells = body["symbols"][0]["months"]
    assert [c["month"] for c in cells] == body["months"]
    assert all(c["month"] <= last_month for c in cells)
    sessions = len(calendar.sessions(dt.date(2026, 10, 1), dt.date.fromisoformat(body["end"])))
    assert sum(c["sessions"] for c in cells) == sessions
    assert cells[0] == {"month": "2026-10", "sessions": 22, "present": 1, "valid": 1}


def test_a_start_after_the_last_session_is_refused(api: TestClient) -> None:
    """A range that begins after the last completed session has nothing to count: 422 naming
    that session."""
    answer = api.get("/api/v1/coverage", params={"symbols": "XOM", "start": "2035-01-02"})
    assert answer.status_code == 422
    assert "last completed session" in answer.json()["detail"]
