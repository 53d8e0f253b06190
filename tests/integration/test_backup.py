"""Backups on both backends: backup → restore gives identical digests (also across backends),
an online SQLite copy while a writer commits, damaged and wrong-version backups, --force,
pruning, and the PostgreSQL tools (missing, too old, never shown the password)."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from psycopg import sql

from marketdata.bars import DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.errors import ConfigError, Conflict, InputError, MarketDataError
from marketdata.service.backup import backup_name
from marketdata.service.backup_files import BackupConfig, list_backups, resolve
from marketdata.service.backup_restore import restore_backup, verify_backup
from marketdata.service.backup_run import last_backup, take_backup
from marketdata.service.backup_state import BackupState
from marketdata.service.runs import acquire, holder_id
from marketdata.storage import DatabaseUrl, Store, head_revision, open_store, upgrade
from marketdata.storage.jobs import Checkpoint, SymbolProgress
from marketdata.storage.migrate import current_revision
from marketdata.storage.snapshot import tables_with_rows, take_snapshot
from tests.support.databases import ADMIN_URL, truncate_all
from tests.support.factories import AWKWARD_FLOATS, make_bars

#: A Sunday, the default schedule's day.
AT = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)

#: Symbols whose order differs between code-point and locale collations.
SYMBOLS = ("AAPL", "BRK.B", "BRK-B", "aapl", "Zed", "ÉTÉ")

Factory = Callable[[], str]


async def fill(store: Store, *, at: dt.datetime = AT) -> None:
    """A bit of everything: awkward floats, revisions, actions, a run, state and a claim."""
    for i, symbol in enumerate(SYMBOLS):
        bars = make_bars(symbol, days=6, start=dt.date(2024, 1, 2 + i))
        await store.upsert_bars(bars, source="test", at=at)
    awkward = make_bars("AAPL", days=len(AWKWARD_FLOATS), vwap=AWKWARD_FLOATS, transactions=None)
    later = at + dt.timedelta(hours=1, microseconds=123_456)
    await store.upsert_bars(awkward, source="fix", at=later)  # changes AAPL: revisions
    splits = pl.DataFrame(
        {
            "symbol": ["AAPL"],
            "execution_date": [dt.date(2024, 1, 4)],
            "split_from": [1.0],
            "split_to": [3.0],
        },
        schema=SPLIT_SCHEMA,
    )
    await store.upsert_splits(splits, source="test", at=at)
    dividends = pl.DataFrame(
        {
            "symbol": ["Zed"],
            "ex_dividend_date": [dt.date(2024, 1, 5)],
            "cash_amount": [0.1 + 0.2],
            "declaration_date": [None],
            "record_date": [None],
            "pay_date": [dt.date(2024, 2, 1)],
            "frequency": [4],
            "dividend_type": ["CD"],
        },
        schema=DIVIDEND_SCHEMA,
    )
    await store.upsert_dividends(dividends, source="test", at=at)
    run = await store.create_run(
        trigger="manual", provider="test", at=at, symbols=[("AAPL", None, None)]
    )
    done = SymbolProgress(symbol="AAPL", through=dt.date(2024, 1, 9), calls=1, status="done")
    await store.save_progress(Checkpoint(run_id=run, calls=1, symbols=(done,)), at=at)
    await store.finish_run(run, status="succeeded", at=later)
    await store.set_state("note", 'quoted "text"\n\x1f with separators', at=at)
    assert await store.claim("backfill", at, holder="test", at=at)


def config(tmp_path: Path, **changes: Any) -> BackupConfig:
    """Backups under ``tmp_path/backups``."""
    return replace(BackupConfig(directory=tmp_path / "backups"), **changes)


@pytest.fixture
def new_database(database_url: str, tmp_path: Path) -> Iterator[Factory]:
    """Makes empty databases (no schema) on the backend of ``database_url``; dropped after."""
    created: list[str] = []
    admin = DatabaseUrl.parse(ADMIN_URL)

    def make() -> str:
        if database_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / f'new-{secrets.token_hex(3)}.db'}"
        name = f"marketdata_test_restore_{secrets.token_hex(4)}"
        with psycopg.connect(admin.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return admin.with_database(name).conninfo

    yield make
    for name in created:
        with psycopg.connect(admin.conninfo, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            conn.execute(drop)


def scratch_databases() -> set[str]:
    """The verification scratch databases that exist on the test server."""
    with psycopg.connect(DatabaseUrl.parse(ADMIN_URL).conninfo) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'marketdata_verify_%'"
        ).fetchall()
    return {r[0] for r in rows}


# -- round trips ----------------------------------------------------------------------------------


async def test_backup_then_restore_gives_identical_digests(
    store: Store, database_url: str, new_database: Factory, tmp_path: Path
) -> None:
    """The manifest equals the source's digests; the verified copy restores into an empty
    database with exactly those digests; the manifest on disk is the one returned."""
    await fill(store)
    db = DatabaseUrl.parse(database_url)
    before = take_snapshot(db)
    assert before.tables["bars"].rows == 6 * len(SYMBOLS)
    assert before.tables["bar_revisions"].rows == len(AWKWARD_FLOATS)
    outcome = await take_backup(db, config(tmp_path), at=AT)
    assert outcome.ok
    assert outcome.comparison is not None
    assert outcome.comparison.matches
    manifest = outcome.manifest
    assert (manifest.verified, manifest.schema_revision) == (True, head_revision())
    assert dict(manifest.tables) == dict(before.tables)
    assert resolve(outcome.path) == (outcome.path, manifest)
    assert manifest.file_size == outcome.path.stat().st_size
    target = DatabaseUrl.parse(new_database())
    restored = await restore_backup(outcome.path, target, config(tmp_path))
    assert restored.comparison.matches
    assert restored.upgraded_to is None
    assert dict(take_snapshot(target).tables) == dict(before.tables)
    if db.backend == "postgresql":
        assert scratch_databases() == set()  # the verification database was dropped


async def test_same_data_gives_the_same_digests_on_both_backends(
    sqlite_template: Path, postgres_session_url: str, tmp_path: Path
) -> None:
    """SQLite and PostgreSQL holding the same rows checksum alike, table by table (text keys
    sort by code point on both)."""
    lite = tmp_path / "same.db"
    shutil.copyfile(sqlite_template, lite)
    truncate_all(postgres_session_url)
    manifests = []
    for url in (f"sqlite:///{lite}", postgres_session_url):
        store = await open_store(url)
        try:
            await fill(store)
        finally:
            await store.aclose()
        outcome = await take_backup(
            DatabaseUrl.parse(url), config(tmp_path / url[:6]), at=AT, verify=False
        )
        manifests.append(outcome.manifest)
    sqlite_manifest, postgres_manifest = manifests
    assert sqlite_manifest.rows > 50
    assert dict(sqlite_manifest.tables) == dict(postgres_manifest.tables)


async def test_sqlite_backup_while_a_writer_commits_is_consistent(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """A page-by-page copy during which another connection commits three batches restarts,
    ends with all of them, and restores to exactly what its manifest says."""
    path = tmp_path / "busy.db"
    shutil.copyfile(sqlite_template, path)
    store = await open_store(f"sqlite:///{path}")
    loop = asyncio.get_running_loop()
    steps: list[tuple[int, int]] = []
    batches = [make_bars(f"W{i}", days=50) for i in range(3)]

    def writer(remaining: int, total: int) -> None:
        steps.append((remaining, total))
        if len(steps) <= len(batches):  # commit between copy steps, from the store's thread
            write = store.upsert_bars(batches[len(steps) - 1], source="writer", at=AT)
            asyncio.run_coroutine_threadsafe(write, loop).result()

    try:
        await fill(store)
        outcome = await take_backup(
            DatabaseUrl.parse(f"sqlite:///{path}"),
            config(tmp_path),
            at=AT,
            sqlite_pages=1,
            on_sqlite_step=writer,
        )
    finally:
        await store.aclose()
    assert len(steps) > steps[-1][1]  # more steps than pages: the copy restarted
    assert outcome.ok
    assert outcome.manifest.tables["bars"].rows == 6 * len(SYMBOLS) + 150
    target = DatabaseUrl.parse(f"sqlite:///{tmp_path / 'restored.db'}")
    restored = await restore_backup(outcome.path, target, config(tmp_path))
    assert restored.comparison.matches
    source = take_snapshot(DatabaseUrl.parse(f"sqlite:///{path}"))
    assert dict(take_snapshot(target).tables) == dict(source.tables)


async def test_cancelling_a_backup_stops_it_and_leaves_no_file(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """A cancelled task (the scheduler shutting down) stops the copy between steps; no
    backup, manifest or partial file is left."""
    path = tmp_path / "cancel.db"
    shutil.copyfile(sqlite_template, path)
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()
    task: asyncio.Task[object] | None = None
    seen = []

    def cancel_once(remaining: int, total: int) -> None:
        seen.append(remaining)
        if len(seen) == 1:
            assert task is not None
            # cancel, then let the task react before the copy goes on
            done = asyncio.run_coroutine_threadsafe(_cancel(task, cancelled), loop)
            done.result()

    task = asyncio.ensure_future(
        take_backup(
            DatabaseUrl.parse(f"sqlite:///{path}"),
            config(tmp_path),
            at=AT,
            sqlite_pages=1,
            on_sqlite_step=cancel_once,
        )
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    assert len(seen) == 1  # stopped at the next step
    assert list((tmp_path / "backups").iterdir()) == []


async def _cancel(task: asyncio.Task[object], flag: asyncio.Event) -> None:
    task.cancel()
    await asyncio.sleep(0)  # one loop turn: the task handles its cancellation
    await asyncio.sleep(0)
    flag.set()


# -- damaged, wrong version, occupied targets -----------------------------------------------------


async def test_truncated_backup_is_a_clear_error(
    store: Store, database_url: str, new_database: Factory, tmp_path: Path
) -> None:
    """Cut in half: restore and verify refuse it by its SHA-256. With a manifest that agrees
    (damaged before it was written), the restore itself fails clearly and changes nothing."""
    await fill(store)
    outcome = await take_backup(DatabaseUrl.parse(database_url), config(tmp_path), at=AT)
    data = outcome.path.read_bytes()
    outcome.path.write_bytes(data[: len(data) // 2])
    target = DatabaseUrl.parse(new_database())
    for attempt in (
        restore_backup(outcome.path, target, config(tmp_path)),
        verify_backup(outcome.path, config(tmp_path), server=target, at=AT),
    ):
        with pytest.raises(InputError, match="is corrupt or truncated: its SHA-256 differs"):
            await attempt
    manifest_path = outcome.path.with_name(outcome.path.name + ".manifest.json")
    recorded = json.loads(manifest_path.read_text())
    recorded["file"]["size"] = len(data) // 2
    recorded["file"]["sha256"] = resolve_sha(outcome.path)
    manifest_path.write_text(json.dumps(recorded))
    with pytest.raises(MarketDataError, match=outcome.path.name) as failed:
        await restore_backup(outcome.path, target, config(tmp_path))
    assert "\n" not in str(failed.value)
    assert "damaged" in str(failed.value) or "pg_restore" in str(failed.value)
    if target.backend == "sqlite":
        assert not target.sqlite_path.exists()
    else:
        assert tables_with_rows(target) == []


def resolve_sha(path: Path) -> str:
    """SHA-256 of a file."""
    from marketdata.storage.dumps import file_sha256

    return file_sha256(path)[0]


async def test_backup_from_a_newer_version_is_refused(
    store: Store, database_url: str, new_database: Factory, tmp_path: Path
) -> None:
    """A manifest naming a revision this code does not know is refused before anything is
    written; `verify` reports the tampered revision as a mismatch."""
    await fill(store)
    outcome = await take_backup(
        DatabaseUrl.parse(database_url), config(tmp_path), at=AT, verify=False
    )
    manifest_path = outcome.path.with_name(outcome.path.name + ".manifest.json")
    manifest_path.write_text(
        manifest_path.read_text().replace(
            f'"schema_revision": "{head_revision()}"', '"schema_revision": "9999_future"'
        )
    )
    target_url = new_database()
    target = DatabaseUrl.parse(target_url)
    with pytest.raises(InputError, match=r"9999_future.*newer marketdata \(wrong version\)"):
        await restore_backup(outcome.path, target, config(tmp_path))
    if target.backend == "sqlite":
        assert not target.sqlite_path.exists()
    else:
        assert current_revision(target) is None
    checked = await verify_backup(outcome.path, config(tmp_path), server=target, at=AT)
    assert not checked.comparison.matches
    assert checked.comparison.differing == []
    assert "schema revision" in checked.comparison.describe()
    assert resolve(outcome.path)[1].verified is False


async def test_older_backup_is_restored_then_upgraded(
    database_url: str, new_database: Factory, tmp_path: Path
) -> None:
    """A backup of a database at revision 0003 restores, checks, and is upgraded to head."""
    old = DatabaseUrl.parse(new_database())
    upgrade(old, "0003")
    outcome = await take_backup(old, config(tmp_path), at=AT)
    assert outcome.ok
    assert outcome.manifest.schema_revision == "0003"
    target = DatabaseUrl.parse(new_database())
    restored = await restore_backup(outcome.path, target, config(tmp_path))
    assert restored.upgraded_to == head_revision()
    assert current_revision(target) == head_revision()


async def test_restore_into_data_needs_force(
    store: Store, database_url: str, new_database: Factory, tmp_path: Path
) -> None:
    """A target holding rows is refused, naming its tables; --force replaces it."""
    await fill(store)
    outcome = await take_backup(DatabaseUrl.parse(database_url), config(tmp_path), at=AT)
    target_url = new_database()
    occupied = await open_store(target_url)
    try:
        await occupied.upsert_bars(make_bars("OTHER", days=3), source="other", at=AT)
    finally:
        await occupied.aclose()
    target = DatabaseUrl.parse(target_url)
    with pytest.raises(Conflict, match=r"is not empty \(.*bars.* hold rows\).*--force"):
        await restore_backup(outcome.path, target, config(tmp_path))
    restored = await restore_backup(outcome.path, target, config(tmp_path), force=True)
    assert restored.comparison.matches
    assert dict(take_snapshot(target).tables) == dict(outcome.manifest.tables)


async def test_restore_over_a_running_backfill_is_refused(
    store: Store, database_url: str, new_database: Factory, tmp_path: Path
) -> None:
    """--force into a database where a backfill holds the lock is refused, naming the run,
    and changes nothing; once it is over the restore goes ahead and leaves the lock free."""
    await fill(store)
    outcome = await take_backup(DatabaseUrl.parse(database_url), config(tmp_path), at=AT)
    target_url = new_database()
    target = DatabaseUrl.parse(target_url)
    busy = await open_store(target_url)
    try:
        await busy.upsert_bars(make_bars("OTHER", days=3), source="other", at=AT)
        run = await busy.create_run(trigger="scheduled", provider="test", at=AT, symbols=[])
        lock = await acquire(busy, holder=holder_id())
        before = take_snapshot(target).tables
        with pytest.raises(Conflict, match=rf"backfill is running in .*run {run} \(scheduled"):
            await restore_backup(outcome.path, target, config(tmp_path), force=True)
        assert take_snapshot(target).tables == before
        await lock.release()
    finally:
        await busy.aclose()
    restored = await restore_backup(outcome.path, target, config(tmp_path), force=True)
    assert restored.comparison.matches
    after = await open_store(target_url)
    try:
        again = await acquire(after, holder=holder_id())
        await again.release()
    finally:
        await after.aclose()


async def test_backend_mismatch_points_to_export_and_import(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """A SQLite backup cannot be restored into PostgreSQL (nothing is contacted)."""
    path = tmp_path / "lite.db"
    shutil.copyfile(sqlite_template, path)
    outcome = await take_backup(
        DatabaseUrl.parse(f"sqlite:///{path}"), config(tmp_path), at=AT, verify=False
    )
    target = DatabaseUrl.parse("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(InputError, match=r"SQLite backup .* use `marketdata export` and"):
        await restore_backup(outcome.path, target, config(tmp_path))


# -- retention ------------------------------------------------------------------------------------


async def test_each_good_backup_prunes_what_retention_drops(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    """Daily backups for four days with two daily slots: after each, only the last two (the
    newest verified among them) remain."""
    settings = config(tmp_path, keep_daily=2, keep_weekly=0)
    db = DatabaseUrl.parse(database_url)
    for day in range(4):
        outcome = await take_backup(db, settings, at=AT + dt.timedelta(days=day), store=store)
        assert outcome.ok
    entries, problems = list_backups(settings, now=AT + dt.timedelta(days=3))
    assert problems == []
    assert [e.manifest.created for e in entries] == [
        AT + dt.timedelta(days=2),
        AT + dt.timedelta(days=3),
    ]
    assert outcome.pruned == (backup_name(AT + dt.timedelta(days=1), db.backend),)
    state = await last_backup(store)
    assert isinstance(state, BackupState)
    assert (state.ok, state.verified, state.at) == (True, True, AT + dt.timedelta(days=3))


# -- the PostgreSQL tools -------------------------------------------------------------------------


@pytest.fixture
async def pg_store(postgres_session_url: str) -> AsyncIterator[Store]:
    """An open store on the (emptied) PostgreSQL session database."""
    truncate_all(postgres_session_url)
    opened = await open_store(postgres_session_url)
    try:
        yield opened
    finally:
        await opened.aclose()


def wrapper(directory: Path, name: str, body: str) -> None:
    """An executable shell script ``directory/name``."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


async def test_missing_or_old_pg_dump_is_a_clear_error(
    pg_store: Store, postgres_session_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pg_dump on PATH, none in the configured directory, one older than the server: each
    one line saying what to install; the failed attempt is recorded."""
    store = pg_store
    db = DatabaseUrl.parse(postgres_session_url)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    with monkeypatch.context() as env:
        env.setenv("PATH", str(empty))
        with pytest.raises(ConfigError, match="pg_dump not found on PATH: install the"):
            await take_backup(db, config(tmp_path), at=AT, store=store)
    with pytest.raises(ConfigError, match=f"pg_dump not found in {empty}"):
        await take_backup(db, config(tmp_path, pg_bin_dir=empty), at=AT)
    old = tmp_path / "old-bin"
    wrapper(old, "pg_dump", 'echo "pg_dump (PostgreSQL) 9.6.24"')
    with pytest.raises(ConfigError, match=r"pg_dump is version 9 but the server is PostgreSQL 1\d"):
        await take_backup(db, config(tmp_path, pg_bin_dir=old), at=AT)
    state = await last_backup(store)
    assert state is not None
    assert (state.ok, state.name, state.last_success) == (False, None, None)
    assert state.error is not None
    assert "pg_dump not found" in state.error
    assert list((tmp_path / "backups").iterdir()) == []


async def test_the_password_goes_to_the_tools_by_environment_only(
    pg_store: Store, postgres_session_url: str, tmp_path: Path
) -> None:
    """With a password in the URL, pg_dump and pg_restore get it in PGPASSWORD, never in
    their arguments; the manifest does not contain it."""
    await fill(pg_store)
    secret = f"pw-{secrets.token_hex(6)}"
    parsed = DatabaseUrl.parse(postgres_session_url)
    host = parsed.parts.hostname
    url = f"postgresql://{getpass.getuser()}:{secret}@{host}:{parsed.parts.port}/{parsed.database}"
    tools = tmp_path / "bin"
    for name in ("pg_dump", "pg_restore"):
        real = shutil.which(name)
        assert real is not None
        log = tmp_path / f"{name}.log"
        body = f'echo "$@" >> {log}; echo "pw=$PGPASSWORD" >> {log}; exec {real} "$@"'
        wrapper(tools, name, body)
    outcome = await take_backup(DatabaseUrl.parse(url), config(tmp_path, pg_bin_dir=tools), at=AT)
    assert outcome.ok
    for name in ("pg_dump", "pg_restore"):
        lines = (tmp_path / f"{name}.log").read_text().splitlines()
        arguments = [ln for ln in lines if not ln.startswith("pw=")]
        assert arguments
        assert all(secret not in ln for ln in arguments)
        assert f"pw={secret}" in lines
    assert secret not in outcome.path.with_name(outcome.path.name + ".manifest.json").read_text()
    assert secret not in os.environ.get("PGPASSWORD", "")
