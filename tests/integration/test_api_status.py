"""/api/v1/status at scale: the watched flags in the status table, totals, stale names, pages.

The fast path (:func:`status_overview`, one snapshot of indexed reads) must agree with the
exact path (:func:`service_status`, which reads the whole watchlist) on both backends.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from psycopg import sql as psql

from marketdata import calendar
from marketdata.api.app import create_app
from marketdata.service.quality import write_bars
from marketdata.service.status import STALE_NAMED, service_status, status_overview
from marketdata.service.watchlist import Watchlist, watched
from marketdata.settings import Settings
from marketdata.storage import DatabaseUrl, open_store, upgrade
from marketdata.storage.base import Store
from marketdata.storage.jobs import WatchEntry
from tests.support.databases import ADMIN_URL
from tests.support.factories import make_bars

NOW = dt.datetime(2026, 11, 20, 23, 0, tzinfo=dt.UTC)  # Friday, after the close
SESSION = calendar.last_completed_session(NOW)  # 2026-11-20
DAYS = calendar.sessions(dt.date(2026, 10, 1), SESSION).astype(object).tolist()


async def _store_through(store: Store, symbol: str, last: dt.date, sessions: int = 5) -> None:
    """``sessions`` bars of ``symbol`` ending at session ``last``."""
    dates = [d for d in DAYS if d <= last][-sessions:]
    await write_bars(store, make_bars(symbol, dates=dates), source="test", at=NOW)


async def _fill(store: Store) -> Watchlist:
    """Watched: AAA (fresh), BBB (2 behind), CCC (nothing stored), DDD (user, 1 behind), and
    EEE (configured, removed by the user, stored); ZZZ stored, never watched."""
    await _store_through(store, "AAA", SESSION)
    await _store_through(store, "BBB", DAYS[-3])
    await _store_through(store, "DDD", DAYS[-2])
    await _store_through(store, "EEE", DAYS[-4])
    await _store_through(store, "ZZZ", DAYS[-6])
    config = Watchlist(symbols=("AAA", "BBB", "CCC", "EEE"))
    await store.save_watch(
        [
            WatchEntry(symbol="DDD", origin="user", added_at=NOW),
            WatchEntry(symbol="EEE", origin="config", active=False, added_at=NOW),
        ]
    )
    await watched(store, config, at=NOW)
    return config


async def test_watched_flags_follow_the_watchlist(store: Store) -> None:
    """Flags mirror the watchlist; a watched symbol without bars has an empty row that the
    stored-symbol reads (symbol_statuses, has_source) ignore."""
    config = await _fill(store)
    assert await store.watched_symbols() == ["AAA", "BBB", "CCC", "DDD"]
    assert [s.symbol for s in await store.symbol_statuses()] == ["AAA", "BBB", "DDD", "EEE", "ZZZ"]
    assert await store.symbol_statuses(["CCC"]) == []
    rows = {r.symbol: r for r in await store.status_rows()}
    assert rows["CCC"].watched
    assert rows["CCC"].last_date is None
    assert rows["CCC"].bar_count == 0
    assert not rows["ZZZ"].watched
    assert not rows["EEE"].watched
    # The configuration drops BBB and CCC: the next read of the watchlist re-flags.
    await watched(store, Watchlist(symbols=("AAA", "EEE")), at=NOW)
    assert await store.watched_symbols() == ["AAA", "DDD"]
    assert "CCC" not in {r.symbol for r in await store.status_rows()}  # empty row dropped
    await watched(store, config, at=NOW)
    assert await store.watched_symbols() == ["AAA", "BBB", "CCC", "DDD"]


async def test_empty_rows_are_not_stored_data(store: Store) -> None:
    """A database whose only rows are watched-but-empty holds no data."""
    await watched(store, Watchlist(symbols=("AAA",)), at=NOW)
    assert await store.watched_symbols() == ["AAA"]
    assert not await store.has_source()
    assert not await store.has_source("synthetic")
    await _store_through(store, "AAA", SESSION)
    assert await store.has_source()
    assert await store.has_source("test")
    assert (await store.status_rows())[0].bar_count == 5


async def test_overview_totals_stale_and_pages(store: Store) -> None:
    await _fill(store)
    view = await status_overview(store, now=NOW, limit=2)
    totals = view.totals
    assert totals.symbols == 6  # AAA BBB CCC DDD EEE ZZZ
    assert totals.bars == 25
    assert totals.stale == 3  # BBB, CCC, DDD (EEE and ZZZ are not watched)
    assert view.stale == ("CCC", "BBB", "DDD")  # nothing stored first, then the most behind
    assert [s.symbol for s in view.page] == ["AAA", "BBB"]
    assert view.next_after == "BBB"
    assert view.data_mode == "real"
    behind = {s.symbol: s.sessions_behind for s in view.page}
    assert behind == {"AAA": 0, "BBB": 2}
    rest = await status_overview(store, now=NOW, after=view.next_after, limit=10)
    assert [s.symbol for s in rest.page] == ["CCC", "DDD", "EEE", "ZZZ"]
    assert rest.next_after is None
    stale = await status_overview(store, now=NOW, limit=10, stale_only=True)
    assert [s.symbol for s in stale.page] == ["BBB", "CCC", "DDD"]


async def test_overview_agrees_with_the_exact_status(database_url: str) -> None:
    """On random watchlists and histories the fast path counts what the exact path lists."""
    rng = random.Random(7)
    store = await open_store(database_url)
    try:
        names = [f"S{i:03d}" for i in range(40)]
        for name in rng.sample(names, 25):
            await _store_through(store, name, rng.choice(DAYS[-8:]), sessions=rng.randint(1, 4))
        config = Watchlist(symbols=tuple(rng.sample(names, 15)))
        await store.save_watch(
            [
                WatchEntry(
                    symbol=name,
                    origin=rng.choice(("user", "config")),
                    active=rng.random() < 0.7,
                    added_at=NOW,
                )
                for name in rng.sample(names, 20)
            ]
        )
        exact = await service_status(store, config=config, now=NOW)
        view = await status_overview(store, now=NOW, limit=1000)
        assert view.totals.symbols == len(exact.symbols)
        assert view.totals.bars == exact.bars
        assert view.totals.validated == exact.validated
        assert view.totals.missing_sessions == exact.missing_sessions
        assert view.totals.stale == len(exact.stale)
        assert sorted(view.stale) == sorted(exact.stale)
        assert view.page == exact.symbols
    finally:
        await store.aclose()


# -- the route --------------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        simulate=False,
        scheduler=False,
        symbols=("AAA", "BBB", "CCC"),
        backfill_delay_minutes=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _pages(api: TestClient, query: str) -> list[dict[str, Any]]:
    """Every page of per_symbol, following next_cursor (bounded)."""
    rows: list[dict[str, Any]] = []
    url = f"/api/v1/status?{query}"
    for _ in range(20):
        body = api.get(url).json()
        rows += body["per_symbol"]
        if body["next_cursor"] is None:
            return rows
        url = f"/api/v1/status?{query}&cursor={body['next_cursor']}"
    raise AssertionError("next_cursor never ran out")


def test_status_route_pages_through_every_symbol(api: TestClient) -> None:
    """The startup synchronised the configured watchlist: three empty, stale rows."""
    body = api.get("/api/v1/status").json()
    assert body["symbols"] == 3
    assert body["stale_count"] == 3
    assert body["stale_symbols"] == ["AAA", "BBB", "CCC"]
    assert body["data_mode"] == "empty"
    assert body["next_cursor"] is None
    rows = _pages(api, "limit=1")
    assert [r["symbol"] for r in rows] == ["AAA", "BBB", "CCC"]
    assert all(r["watched"] and r["bars"] == 0 and r["fresh"] is False for r in rows)
    assert all(r["sessions_behind"] is None and r["last_date"] is None for r in rows)
    assert [r["symbol"] for r in _pages(api, "limit=2&stale=true")] == ["AAA", "BBB", "CCC"]


def test_status_route_refuses_bad_paging(api: TestClient) -> None:
    bad = api.get("/api/v1/status?cursor=not-a-cursor")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "cursor" in bad.json()["detail"]
    assert api.get("/api/v1/status?limit=0").status_code == 422
    assert api.get("/api/v1/status?limit=10001").status_code == 422


def test_stale_names_are_bounded() -> None:
    """The list is a preview; the count and ?stale=true carry the whole set."""
    assert 10 <= STALE_NAMED <= 1000


# -- the migration ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseUrl]:
    """A database with no schema at all (a new file; a new PostgreSQL database)."""
    if request.param == "sqlite":
        yield DatabaseUrl.parse(f"sqlite:///{tmp_path / 'blank.db'}")
        return
    admin = DatabaseUrl.parse(ADMIN_URL)
    name = f"marketdata_test_blank_{secrets.token_hex(3)}"
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(psql.SQL("CREATE DATABASE {}").format(psql.Identifier(name)))
    try:
        yield admin.with_database(name)
    finally:
        with psycopg.connect(admin.conninfo, autocommit=True) as conn:
            conn.execute(
                psql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psql.Identifier(name))
            )


def test_migration_flags_active_symbols(blank_db: DatabaseUrl) -> None:
    """0005 flags the status rows of active watchlist symbols and adds empty rows for the
    active ones without bars."""
    db = blank_db
    upgrade(db, "0004")
    engine = sa.create_engine(db.sqlalchemy, poolclass=sa.NullPool)
    stamp = "2026-11-20 23:00:00+00:00"
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO symbols (symbol, added_at, active, origin) VALUES"
                    " ('AAA', :at, true, 'user'), ('BBB', :at, false, 'user'),"
                    " ('CCC', :at, true, 'config')"
                ),
                {"at": stamp},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO symbol_status (symbol, first_date, last_date, bar_count,"
                    " validated_count, gap_count, updated_at) VALUES"
                    " ('AAA', '2026-11-02', '2026-11-20', 15, 15, 0, :at),"
                    " ('BBB', '2026-11-02', '2026-11-20', 15, 15, 0, :at)"
                ),
                {"at": stamp},
            )
        upgrade(db)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT symbol, watched, bar_count FROM symbol_status ORDER BY symbol")
            ).all()
    finally:
        engine.dispose()
    assert [(s, bool(w), n) for s, w, n in rows] == [
        ("AAA", True, 15),
        ("BBB", False, 15),
        ("CCC", True, 0),
    ]


def test_unknown_symbol_says_whether_it_is_watched(api: TestClient) -> None:
    """The 404 of a symbol without bars says whether the next backfill fetches it."""
    watched_one = api.get("/api/v1/historical/AAA")
    assert watched_one.status_code == 404
    assert "it is on the watchlist" in watched_one.json()["detail"]
    other = api.get("/api/v1/historical/ZZZ")
    assert other.status_code == 404
    assert "not on the watchlist (POST /api/v1/symbols adds it)" in other.json()["detail"]
    assert "it is on the watchlist" in api.get("/api/v1/quality/AAA").json()["detail"]
