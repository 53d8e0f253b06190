"""Storage for the backfill engine and scheduler, on both backends: watchlist, runs and their
checkpoints, service state, trigger claims and locks."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest

from marketdata.errors import StorageError
from marketdata.storage import Store, UpsertCounts, open_store
from marketdata.storage.jobs import Checkpoint, RunRecord, SymbolProgress, WatchEntry
from marketdata.storage.sqlite_leases import Lease, iso_ts
from tests.support.databases import truncate_all
from tests.support.factories import AT, business_days, make_bars

D = dt.date(2024, 1, 2)  # first session of make_bars' default range
LATER = AT + dt.timedelta(hours=1)


def day(n: int) -> dt.date:
    """The n-th session of make_bars' default range (0-based, starting 2024-01-02)."""
    return business_days(D, n + 1)[-1]


async def start_run(store: Store, *symbols: str, trigger: str = "manual") -> int:
    """A running run over ``symbols`` (no date bounds)."""
    return await store.create_run(
        trigger=trigger, provider="test", at=AT, symbols=[(s, None, None) for s in symbols]
    )


async def run_of(store: Store, run_id: int) -> RunRecord:
    """The run, which must exist."""
    record = await store.read_run(run_id)
    assert record is not None
    return record


def counts_of(record: RunRecord) -> dict[str, tuple[int, int, int]]:
    """(inserted, updated, unchanged) per symbol of a run."""
    return {s.symbol: (s.inserted, s.updated, s.unchanged) for s in record.symbols}


def totals_of(record: RunRecord) -> tuple[int, int, int]:
    """(inserted, updated, unchanged) of a run."""
    return (record.inserted, record.updated, record.unchanged)


@pytest.fixture
async def other_store(database_url: str) -> AsyncIterator[Store]:
    """A second store on the same database (another process, as far as locks go)."""
    opened = await open_store(database_url)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
def sqlite_file(sqlite_template: Path, tmp_path: Path) -> Path:
    """A migrated SQLite file (for lease tests that edit the ``leases`` table directly)."""
    path = tmp_path / "leases.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a child process that stays alive until the test ends."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        yield child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()


def dead_pid() -> int:
    """The pid of a child process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def put_lease(path: Path, *, holder: str, pid: int, host: str, expires: dt.datetime) -> None:
    """Write a lease row for ``backfill`` as another process would have."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO leases (name, holder, pid, host, acquired_at, expires_at)"
            " VALUES ('backfill', ?, ?, ?, ?, ?)",
            (holder, pid, host, iso_ts(AT), iso_ts(expires)),
        )
    conn.close()


def lease_row(path: Path) -> tuple[str, str] | None:
    """(holder, expires_at) of the ``backfill`` lease, if any."""
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT holder, expires_at FROM leases WHERE name = 'backfill'"
        ).fetchone()
    conn.close()
    return (row[0], row[1]) if row else None


# -- watchlist ------------------------------------------------------------------------------


async def test_watchlist_round_trip_keeps_checked_dates(store: Store) -> None:
    """save_watch inserts and updates rows; an update keeps checked_from and actions_checked."""
    assert await store.watchlist() == []
    first = [
        WatchEntry(
            symbol="MSFT",
            origin="config",
            added_at=AT,
            checked_from=D,
            actions_checked=day(3),
        ),
        WatchEntry(symbol="AAPL", years=5, added_at=AT),
    ]
    await store.save_watch(first)
    assert await store.watchlist() == sorted(first, key=lambda e: e.symbol)
    changed = WatchEntry(symbol="MSFT", active=False, origin="user", years=2, added_at=LATER)
    await store.save_watch([changed])
    await store.mark_actions_checked(["AAPL", "NOPE"], day(9))
    aapl, msft = await store.watchlist()
    assert msft == WatchEntry(
        symbol="MSFT",
        active=False,
        origin="user",
        years=2,
        added_at=LATER,
        checked_from=D,
        actions_checked=day(3),
    )
    assert aapl.actions_checked == day(9)
    assert aapl.added_at.tzinfo is not None
    assert aapl.added_at.utcoffset() == dt.timedelta(0)
    assert [e.symbol for e in await store.watchlist()] == ["AAPL", "MSFT"]  # NOPE not created


# -- runs and checkpoints -------------------------------------------------------------------


async def test_create_and_read_run(store: Store) -> None:
    """A new run is running with pending symbols (by symbol) and zero counts."""
    run_id = await store.create_run(
        trigger="scheduled",
        provider="polygon",
        at=AT,
        symbols=[("MSFT", D, day(4)), ("AAPL", None, None)],
        message="daily",
    )
    record = await run_of(store, run_id)
    assert (record.id, record.status, record.trigger, record.provider) == (
        run_id,
        "running",
        "scheduled",
        "polygon",
    )
    assert (record.started_at, record.finished_at, record.message) == (AT, None, "daily")
    assert (record.calls, record.errors, totals_of(record)) == (0, 0, (0, 0, 0))
    aapl, msft = record.symbols
    assert (aapl.symbol, aapl.status, aapl.start_date, aapl.end_date) == (
        "AAPL",
        "pending",
        None,
        None,
    )
    assert (msft.symbol, msft.start_date, msft.end_date, msft.checkpoint) == (
        "MSFT",
        D,
        day(4),
        None,
    )
    assert await store.read_run(run_id + 100) is None


async def test_checkpoint_counts_each_symbol_of_the_write(store: Store) -> None:
    """Counts per symbol and per run are exact: new rows, identical rewrites, changed values."""
    await store.save_watch([WatchEntry(symbol=s, added_at=AT) for s in ("AAPL", "MSFT")])
    run_id = await start_run(store, "AAPL", "MSFT", "GOOG")
    aapl, msft = make_bars("AAPL", days=5), make_bars("MSFT", days=3)
    frame = pl.concat([aapl, msft])

    def checkpoint(calls: int) -> Checkpoint:
        return Checkpoint(
            run_id=run_id,
            calls=calls,
            symbols=(
                SymbolProgress(symbol="AAPL", through=day(4), checked_from=D, calls=1),
                SymbolProgress(symbol="MSFT", through=day(2), checked_from=D, calls=1),
                SymbolProgress(symbol="GOOG", calls=1, status="running"),
            ),
        )

    counts = await store.upsert_bars(frame, source="s", at=AT, checkpoint=checkpoint(3))
    assert counts == UpsertCounts(inserted=8)
    record = await run_of(store, run_id)
    assert counts_of(record) == {"AAPL": (5, 0, 0), "GOOG": (0, 0, 0), "MSFT": (3, 0, 0)}
    assert (record.calls, totals_of(record)) == (3, (8, 0, 0))
    assert [(s.checkpoint, s.calls, s.status) for s in record.symbols] == [
        (day(4), 1, "pending"),
        (None, 1, "running"),
        (day(2), 1, "pending"),
    ]

    counts = await store.upsert_bars(frame, source="s", at=LATER, checkpoint=checkpoint(1))
    assert counts == UpsertCounts(unchanged=8)
    record = await run_of(store, run_id)
    assert counts_of(record) == {"AAPL": (5, 0, 5), "GOOG": (0, 0, 0), "MSFT": (3, 0, 3)}
    assert (record.calls, totals_of(record)) == (4, (8, 0, 8))

    # AAPL: one changed value and two new sessions; MSFT: unchanged.
    more = make_bars("AAPL", days=7).with_columns(
        pl.when(pl.col("date") == D).then(1.0).otherwise(pl.col("low")).alias("low")
    )
    counts = await store.upsert_bars(
        pl.concat([more, msft]), source="s", at=LATER, checkpoint=checkpoint(0)
    )
    assert counts == UpsertCounts(inserted=2, updated=1, unchanged=7)
    record = await run_of(store, run_id)
    assert counts_of(record) == {"AAPL": (7, 1, 9), "GOOG": (0, 0, 0), "MSFT": (3, 0, 6)}
    assert (record.calls, totals_of(record)) == (4, (10, 1, 15))
    assert [s.calls for s in record.symbols] == [3, 3, 3]
    statuses = {s.symbol: s for s in await store.symbol_statuses()}
    assert statuses["AAPL"].last_fetch == LATER
    assert {e.symbol: e.checked_from for e in await store.watchlist()} == {"AAPL": D, "MSFT": D}


async def test_checkpoint_never_moves_back(store: Store) -> None:
    """The checkpoint only moves forward, checked_from only back; calls add up."""
    await store.save_watch([WatchEntry(symbol="AAPL", added_at=AT)])
    run_id = await start_run(store, "AAPL")
    steps = [
        SymbolProgress(symbol="AAPL", through=day(9), checked_from=day(5), calls=2),
        SymbolProgress(symbol="AAPL", through=day(3), checked_from=day(8), calls=1),
        SymbolProgress(symbol="AAPL", calls=1, status="running"),
        SymbolProgress(symbol="AAPL", checked_from=day(1)),
    ]
    for step in steps:
        await store.save_progress(Checkpoint(run_id=run_id, symbols=(step,)), at=AT)
    [progress] = (await run_of(store, run_id)).symbols
    assert (progress.checkpoint, progress.calls, progress.status) == (day(9), 4, "running")
    [entry] = await store.watchlist()
    assert entry.checked_from == day(1)


async def test_failure_is_recorded_on_run_and_symbol_status(store: Store) -> None:
    """A failed symbol stores its error on the run and in symbol_status; success clears it."""
    await store.upsert_bars(make_bars("AAPL"), source="s", at=AT)
    run_id = await start_run(store, "AAPL", "NEW")
    failed = Checkpoint(
        run_id=run_id,
        calls=2,
        errors=2,
        symbols=(
            SymbolProgress(symbol="AAPL", status="failed", error="HTTP 500"),
            SymbolProgress(symbol="NEW", status="failed", error="unknown symbol"),
        ),
    )
    await store.save_progress(failed, at=LATER)
    record = await run_of(store, run_id)
    assert (record.calls, record.errors) == (2, 2)
    assert [(s.status, s.error) for s in record.symbols] == [
        ("failed", "HTTP 500"),
        ("failed", "unknown symbol"),
    ]
    [status] = await store.symbol_statuses()  # no status row is created for NEW
    assert (status.symbol, status.last_error, status.last_fetch) == ("AAPL", "HTTP 500", None)

    retried = SymbolProgress(symbol="AAPL", through=day(4), status="done")
    await store.save_progress(Checkpoint(run_id=run_id, symbols=(retried,)), at=LATER)
    [status] = await store.symbol_statuses(["AAPL"])
    assert (status.last_error, status.last_fetch) == (None, LATER)
    aapl = (await run_of(store, run_id)).symbols[0]
    assert (aapl.status, aapl.error) == ("done", None)


async def test_checkpoint_of_a_missing_run_writes_no_bars(store: Store) -> None:
    """A checkpoint that fails rolls its bars back with it, on both write paths."""
    missing = Checkpoint(run_id=999, symbols=(SymbolProgress(symbol="AAPL", through=day(4)),))
    with pytest.raises(StorageError, match="run 999 does not exist"):
        await store.upsert_bars(make_bars("AAPL"), source="s", at=AT, checkpoint=missing)
    assert (await store.read_bars("AAPL")).is_empty()
    assert await store.symbol_statuses() == []

    stored = make_bars("AAPL")
    await store.upsert_bars(stored, source="s", at=AT)
    changed = make_bars("AAPL", days=7, close=1.0)
    with pytest.raises(StorageError, match="run 999 does not exist"):
        await store.upsert_bars(changed, source="s", at=LATER, checkpoint=missing)
    assert (await store.read_bars("AAPL")).select(stored.columns[1:]).equals(stored.drop("symbol"))
    assert (await store.read_revisions("AAPL")).is_empty()
    with pytest.raises(StorageError, match="run 999 does not exist"):
        await store.save_progress(missing, at=AT)


async def test_empty_write_still_saves_its_checkpoint(store: Store) -> None:
    """upsert_bars with no rows applies the checkpoint alone."""
    run_id = await start_run(store, "AAPL")
    done = SymbolProgress(symbol="AAPL", through=day(2), calls=1, status="done")
    checkpoint = Checkpoint(run_id=run_id, calls=1, symbols=(done,))
    empty = make_bars("AAPL", days=0)
    assert await store.upsert_bars(empty, source="s", at=AT, checkpoint=checkpoint) == (
        UpsertCounts()
    )
    record = await run_of(store, run_id)
    assert record.calls == 1
    assert [(s.checkpoint, s.status, s.calls) for s in record.symbols] == [(day(2), "done", 1)]


async def test_finish_run_interrupts_unfinished_symbols(store: Store) -> None:
    """Finishing sets status, time and message; pending/running symbols become interrupted."""
    run_id = await start_run(store, "A", "B", "C", "D")
    progress = (
        SymbolProgress(symbol="A", status="done"),
        SymbolProgress(symbol="B", status="running"),
        SymbolProgress(symbol="D", status="failed", error="x"),
    )
    await store.save_progress(Checkpoint(run_id=run_id, symbols=progress), at=AT)
    await store.finish_run(run_id, status="partial", at=LATER, message="1 failed")
    record = await run_of(store, run_id)
    assert (record.status, record.finished_at, record.message) == ("partial", LATER, "1 failed")
    assert [s.status for s in record.symbols] == ["done", "interrupted", "interrupted", "failed"]


async def test_mark_interrupted_ends_only_running_runs(store: Store) -> None:
    """Every running run (and its unfinished symbols) becomes interrupted; ids ascending."""
    first = await start_run(store, "A", "B")
    done = await start_run(store, "A")
    third = await start_run(store, "C")
    await store.save_progress(
        Checkpoint(run_id=first, symbols=(SymbolProgress(symbol="A", status="done"),)), at=AT
    )
    await store.finish_run(done, status="succeeded", at=AT)
    assert await store.mark_interrupted(at=LATER, message="crashed") == [first, third]
    record = await run_of(store, first)
    assert (record.status, record.finished_at, record.message) == ("interrupted", LATER, "crashed")
    assert [s.status for s in record.symbols] == ["done", "interrupted"]
    finished = await run_of(store, done)
    assert (finished.status, finished.finished_at, finished.message) == ("succeeded", AT, None)
    assert await store.mark_interrupted(at=LATER, message="again") == []


async def test_list_runs_newest_first_with_limit_and_trigger(store: Store) -> None:
    """list_runs orders by id descending, honours limit and trigger, and leaves symbols out."""
    ids = [await start_run(store, "A", trigger=t) for t in ("manual", "scheduled", "manual", "api")]
    assert [r.id for r in await store.list_runs()] == ids[::-1]
    assert [r.id for r in await store.list_runs(limit=2)] == ids[:1:-1]
    manual = await store.list_runs(trigger="manual")
    assert [r.id for r in manual] == [ids[2], ids[0]]
    assert all(r.symbols == () for r in manual)
    assert await store.list_runs(trigger="nope") == []


# -- service state and claims ---------------------------------------------------------------


async def test_service_state_set_get_delete(store: Store) -> None:
    """Values are stored, replaced, and deleted by setting None."""
    assert await store.get_state("last_success") is None
    await store.set_state("last_success", "2025-01-06", at=AT)
    await store.set_state("last_success", "2025-01-07", at=LATER)
    assert await store.get_state("last_success") == "2025-01-07"
    await store.set_state("last_success", None, at=LATER)
    assert await store.get_state("last_success") is None
    await store.set_state("never_set", None, at=LATER)  # deleting nothing is fine


async def test_claim_is_won_exactly_once_across_stores(store: Store, other_store: Store) -> None:
    """Two stores racing for the same firings: each (job, fire_time) is won exactly once."""
    fire = dt.datetime(2025, 1, 7, 2, tzinfo=dt.UTC)
    same = await asyncio.gather(
        *(
            s.claim("daily", fire, holder=f"h{i}", at=AT)
            for i in range(6)
            for s in (store, other_store)
        )
    )
    assert sum(same) == 1
    fires = [fire + dt.timedelta(days=i) for i in range(1, 21)]
    won = await asyncio.gather(
        *(s.claim("daily", f, holder="h", at=AT) for f in fires for s in (store, other_store))
    )
    assert [won[2 * i] + won[2 * i + 1] for i in range(20)] == [1] * 20
    assert await store.last_claim("daily") == fires[-1]
    assert await other_store.last_claim("weekly") is None
    # The same instant in another zone is the same firing.
    eastern = dt.timezone(dt.timedelta(hours=-5))
    assert not await store.claim("daily", fire.astimezone(eastern), holder="h", at=AT)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.claim("daily", dt.datetime(2025, 1, 7), holder="h", at=AT)


# -- locks ----------------------------------------------------------------------------------


async def test_lock_is_exclusive_until_released(store: Store, other_store: Store) -> None:
    """A held lock refuses other holders (any store) until released; release is idempotent."""
    lock = await store.acquire_lock("backfill", holder="a")
    assert lock is not None
    assert lock.name == "backfill"
    assert await other_store.acquire_lock("backfill", holder="b") is None
    assert await store.acquire_lock("backfill", holder="c") is None
    other = await other_store.acquire_lock("other", holder="b")  # other names are independent
    assert other is not None
    await lock.release()
    await lock.release()
    again = await other_store.acquire_lock("backfill", holder="b")
    assert again is not None
    await again.release()
    await other.release()


async def test_closing_a_store_frees_its_locks(store: Store, database_url: str) -> None:
    """aclose() releases the locks the store still holds."""
    closing = await open_store(database_url)
    try:
        assert await closing.acquire_lock("backfill", holder="a") is not None
    finally:
        await closing.aclose()
    lock = await store.acquire_lock("backfill", holder="b")
    assert lock is not None
    await lock.release()


@pytest.mark.postgres
async def test_postgres_lock_dies_with_its_session(postgres_session_url: str) -> None:
    """When the holder's connection ends (its process died), the server frees the lock."""
    truncate_all(postgres_session_url)
    first = await open_store(postgres_session_url)
    second = await open_store(postgres_session_url)
    try:
        held = await first.acquire_lock("backfill", holder="a")
        assert held is not None
        assert await second.acquire_lock("backfill", holder="b") is None
        async with await psycopg.AsyncConnection.connect(
            postgres_session_url, autocommit=True
        ) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND pid <> pg_backend_pid()"
            )
        taken = None
        for _ in range(100):  # the server ends the session asynchronously
            taken = await second.acquire_lock("backfill", holder="b")
            if taken is not None:
                break
            await asyncio.sleep(0.05)
        assert taken is not None
        await held.release()  # its connection is gone: no error
        await taken.release()
    finally:
        await first.aclose()
        await second.aclose()


async def test_sqlite_lease_is_renewed(sqlite_file: Path) -> None:
    """The holder pushes the expiry ahead (every ttl/3, or on demand) while it holds the lease."""
    store = await open_store(f"sqlite:///{sqlite_file}")
    try:
        lease = await store.acquire_lock("backfill", holder="a", ttl=0.3)
        assert isinstance(lease, Lease)
        row = lease_row(sqlite_file)
        assert row is not None
        assert row[0] == "a"
        assert await lease.renew()
        renewed = lease_row(sqlite_file)
        assert renewed is not None
        assert renewed[1] > row[1]
        for _ in range(40):  # the background renewal runs every 0.1 s
            await asyncio.sleep(0.05)
            latest = lease_row(sqlite_file)
            if latest is not None and latest[1] > renewed[1]:
                break
        else:
            pytest.fail("the lease was not renewed in the background")
        with sqlite3.connect(sqlite_file) as conn:
            conn.execute("UPDATE leases SET holder = 'thief'")
        conn.close()
        assert not await lease.renew()
        await lease.release()  # deletes only its own row
        row = lease_row(sqlite_file)
        assert row is not None
        assert row[0] == "thief"
    finally:
        await store.aclose()


async def test_sqlite_expired_lease_is_taken_over(sqlite_file: Path, live_pid: int) -> None:
    """A lease past its expiry is free, even when its holder is alive."""
    put_lease(
        sqlite_file,
        holder="ghost",
        pid=live_pid,
        host=socket.gethostname(),
        expires=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
    )
    store = await open_store(f"sqlite:///{sqlite_file}")
    try:
        lease = await store.acquire_lock("backfill", holder="me")
        assert lease is not None
        row = lease_row(sqlite_file)
        assert row is not None
        assert row[0] == "me"
        await lease.release()
        assert lease_row(sqlite_file) is None
    finally:
        await store.aclose()


async def test_sqlite_lease_of_a_dead_process_is_taken_over(sqlite_file: Path) -> None:
    """A live lease whose process on this host is gone is taken over."""
    put_lease(
        sqlite_file,
        holder="crashed",
        pid=dead_pid(),
        host=socket.gethostname(),
        expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    store = await open_store(f"sqlite:///{sqlite_file}")
    try:
        lease = await store.acquire_lock("backfill", holder="me")
        assert lease is not None
        await lease.release()
    finally:
        await store.aclose()


@pytest.mark.parametrize("where", ["this host", "another host"])
async def test_sqlite_live_lease_is_respected(sqlite_file: Path, live_pid: int, where: str) -> None:
    """A live lease is refused: its process is alive here, or lives on another host."""
    put_lease(
        sqlite_file,
        holder="busy",
        pid=live_pid if where == "this host" else os.getpid() + 10_000_000,
        host=socket.gethostname() if where == "this host" else "elsewhere.invalid",
        expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    store = await open_store(f"sqlite:///{sqlite_file}")
    try:
        assert await store.acquire_lock("backfill", holder="me") is None
        same = await store.acquire_lock("backfill", holder="busy")  # the holder itself may
        assert same is not None
        await same.release()
    finally:
        await store.aclose()
