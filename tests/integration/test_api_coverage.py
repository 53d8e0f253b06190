"""``/api/v1/coverage`` and ``/api/v1/actions/{symbol}`` on both backends."""

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

D = dt.date
HOLE, INVALID, HOLIDAY = D(2024, 2, 14), D(2024, 2, 20), D(2024, 2, 19)


def _sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    return [d.item() for d in calendar.sessions(start, end)]


@pytest.fixture
async def seeded(database_url: str) -> str:
    """AAPL from 2024-01-29 to 2024-03-05 with a hole, an invalid bar and a bar on a holiday;
    MSFT from 2024-02-12 to the end of February; a split and a dividend of AAPL."""
    aapl = [d for d in _sessions(D(2024, 1, 29), D(2024, 3, 5)) if d != HOLE] + [HOLIDAY]
    aapl.sort()
    msft = _sessions(D(2024, 2, 12), D(2024, 2, 29))
    store = await open_store(database_url)
    try:
        await store.upsert_bars(
            make_bars("AAPL", dates=aapl, validated=[d != INVALID for d in aapl]),
            source="test",
            at=AT,
        )
        await store.upsert_bars(make_bars("MSFT", dates=msft, validated=True), source="t", at=AT)
        await store.upsert_splits(
            pl.DataFrame(
                {
                    "symbol": ["AAPL"],
                    "execution_date": [D(2024, 2, 5)],
                    "split_from": [1.0],
                    "split_to": [4.0],
                }
            ),
            source="test",
            at=AT,
        )
        await store.upsert_dividends(
            pl.DataFrame(
                {
                    "symbol": ["AAPL", "AAPL"],
                    "ex_dividend_date": [D(2024, 2, 9), D(2024, 3, 1)],
                    "cash_amount": [0.24, 0.25],
                }
            ),
            source="test",
            at=AT,
        )
    finally:
        await store.aclose()
    return database_url


@pytest.fixture
def client(seeded: str) -> Iterator[TestClient]:
    """The API on the seeded database."""
    settings = Settings(database_url=seeded, simulate=False, scheduler=False)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _cells(body: dict[str, Any]) -> dict[str, list[tuple[str, int, int, int]]]:
    return {
        s["symbol"]: [(m["month"], m["sessions"], m["present"], m["valid"]) for m in s["months"]]
        for s in body["symbols"]
    }


def test_coverage_counts_sessions_present_and_valid_per_month(client: TestClient) -> None:
    """Expected sessions start at each symbol's first bar; a hole lowers present, an invalid bar
    lowers valid, a bar on a holiday counts for nothing."""
    answer = client.get(
        "/api/v1/coverage",
        params={"symbols": "msft,AAPL", "start": "2024-01-01", "end": "2024-03-31"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["start"], body["end"]) == ("2024-01-01", "2024-03-31")
    assert body["months"] == ["2024-01", "2024-02", "2024-03"]
    assert _cells(body) == {
        "AAPL": [("2024-01", 3, 3, 3), ("2024-02", 20, 19, 18), ("2024-03", 20, 3, 3)],
        "MSFT": [("2024-01", 0, 0, 0), ("2024-02", 13, 13, 13), ("2024-03", 20, 0, 0)],
    }
    aapl = body["symbols"][0]
    assert (aapl["first_date"], aapl["last_date"]) == ("2024-01-29", "2024-03-05")


def test_coverage_defaults_to_every_symbol_up_to_the_last_session(client: TestClient) -> None:
    """Without parameters: all stored symbols, from their first bar to the last completed
    session, so months after the last stored bar show as missing."""
    body = client.get("/api/v1/coverage").json()
    assert [s["symbol"] for s in body["symbols"]] == ["AAPL", "MSFT"]
    assert body["start"] == "2024-01-29"
    assert body["months"][0] == "2024-01"
    assert body["end"] >= calendar.last_completed_session(AT).isoformat()
    last = body["symbols"][0]["months"][-1]
    assert last["sessions"] > 0
    assert last["present"] == 0


@pytest.mark.parametrize(
    ("params", "status", "detail"),
    [
        ({"symbols": "ZZZZ,AAPL"}, 404, "ZZZZ"),
        ({"symbols": "bad$"}, 422, "invalid symbol"),
        ({"start": "2024-03-01", "end": "2024-02-01"}, 422, "after"),
        ({"start": "1980-01-01"}, 422, "outside"),
        ({"symbols": ",".join(f"S{i}" for i in range(201))}, 422, "at most 200"),
    ],
)
def test_coverage_refuses_what_it_cannot_answer(
    client: TestClient, params: dict[str, str], status: int, detail: str
) -> None:
    """Unknown symbols, bad symbols, swapped or out-of-calendar ranges: a problem saying why."""
    answer = client.get("/api/v1/coverage", params=params)
    assert answer.status_code == status
    assert detail in answer.json()["detail"]


def test_coverage_of_an_empty_database(database_url: str) -> None:
    """No symbols stored: an empty list, not an error."""
    settings = Settings(database_url=database_url, simulate=False, scheduler=False)
    with TestClient(create_app(settings)) as client:
        body = client.get("/api/v1/coverage").json()
    assert body["symbols"] == []
    assert body["start"] == body["end"]


def test_actions_lists_splits_and_dividends(client: TestClient) -> None:
    """The stored split and dividends, oldest first; start/end narrow them."""
    body = client.get("/api/v1/actions/aapl").json()
    assert body["symbol"] == "AAPL"
    assert [(s["execution_date"], s["split_from"], s["split_to"]) for s in body["splits"]] == [
        ("2024-02-05", 1.0, 4.0)
    ]
    assert [(d["ex_dividend_date"], d["cash_amount"]) for d in body["dividends"]] == [
        ("2024-02-09", 0.24),
        ("2024-03-01", 0.25),
    ]
    assert body["dividends"][0]["dividend_type"] == "CD"
    narrowed = client.get("/api/v1/actions/AAPL", params={"start": "2024-02-06"}).json()
    assert narrowed["splits"] == []
    assert [d["ex_dividend_date"] for d in narrowed["dividends"]] == ["2024-02-09", "2024-03-01"]
    ended = client.get("/api/v1/actions/AAPL", params={"end": "2024-02-08"}).json()
    assert [len(ended["splits"]), len(ended["dividends"])] == [1, 0]


def test_actions_of_symbols_without_any(client: TestClient) -> None:
    """A stored symbol without actions has empty lists; an unknown one is 404; a swapped
    range is 422."""
    assert client.get("/api/v1/actions/MSFT").json() == {
        "symbol": "MSFT",
        "splits": [],
        "dividends": [],
    }
    assert client.get("/api/v1/actions/ZZZZ").status_code == 404
    swapped = client.get(
        "/api/v1/actions/AAPL", params={"start": "2024-03-01", "end": "2024-01-01"}
    )
    assert swapped.status_code == 422
