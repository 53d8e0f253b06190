"""What a killed backup leaves behind is cleared by the next one; a live backup's files and
scratch database are never touched.

The "killed" owners are real processes ended with SIGKILL, so the test relies on the kernel
dropping their locks exactly as it does after ``kill -9`` of ``marketdata backup``.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from marketdata.service.backup_files import BackupConfig
from marketdata.service.backup_run import take_backup
from marketdata.storage import DatabaseUrl, Store, open_store
from marketdata.storage.leftovers import (
    held,
    scratch_created,
    scratch_name,
    sweep_directory,
    sweep_scratch_databases,
)
from tests.support.databases import truncate_all
from tests.support.factories import make_bars

AT = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
HOUR_AGO = time.time() - 3600

#: A child that locks the paths it is given like a running backup does, then waits.
_OWNER = textwrap.dedent(
    """
    import sys
    from contextlib import ExitStack
    from pathlib import Path
    from marketdata.storage.leftovers import held
    with ExitStack() as stack:
        for name in sys.argv[1:]:
            stack.enter_context(held(Path(name)))
        print("ready", flush=True)
        sys.stdin.read()
    """
)


@pytest.fixture
def owners() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by :func:`owner`; killed at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.communicate()  # waits, and closes its pipes


def owner(started: list[subprocess.Popen[str]], *paths: Path) -> subprocess.Popen[str]:
    """A live process holding ``paths`` the way a running backup holds its files."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _OWNER, *map(str, paths)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def age(*paths: Path) -> None:
    """Make ``paths`` look an hour old."""
    for path in paths:
        os.utime(path, (HOUR_AGO, HOUR_AGO))


def test_a_killed_backups_files_go_a_live_ones_stay(
    tmp_path: Path, owners: list[subprocess.Popen[str]]
) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    dead_partial = backups / ".marketdata-20261122T030000Z-sqlite.db.partial"
    dead_scratch = backups / ".verify-dead"
    live_partial = backups / ".marketdata-20261122T040000Z-sqlite.db.partial"
    young = backups / ".marketdata-20261122T050000Z-sqlite.db.partial"
    finished = backups / "marketdata-20261121T030000Z-sqlite.db"
    other = backups / "notes.txt"
    for path in (dead_partial, live_partial, young, finished, other):
        path.write_bytes(b"x" * 10)
    dead_scratch.mkdir()
    (dead_scratch / "scratch.db").write_bytes(b"y")

    killed = owner(owners, dead_partial, dead_scratch)
    live = owner(owners, live_partial)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    age(dead_partial, dead_scratch, live_partial, finished, other)

    removed = sweep_directory(backups)

    assert removed == [dead_partial.name, dead_scratch.name]
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        p.name for p in (live_partial, young, finished, other)
    )
    live.kill()
    live.wait()
    assert sweep_directory(backups) == [live_partial.name]  # its owner is gone now
    assert young.exists()  # unheld but just written: maybe a manifest being renamed


def test_held_refuses_a_second_holder(tmp_path: Path) -> None:
    path = tmp_path / ".x.partial"
    path.touch()
    with held(path), pytest.raises(BlockingIOError), held(path):
        pass
    with held(path):  # released: free again
        pass


async def test_a_backup_first_clears_what_a_killed_one_left(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "backups"
    directory.mkdir()
    partial = directory / ".marketdata-20261115T030000Z-sqlite.db.partial"
    partial.write_bytes(b"half a file")
    scratch = directory / ".verify-abc123"
    scratch.mkdir()
    (scratch / "scratch.db").write_bytes(b"half a database")
    age(partial, scratch)
    await store.upsert_bars(make_bars("AAPL", days=3), source="test", at=AT)

    outcome = await take_backup(
        DatabaseUrl.parse(database_url), BackupConfig(directory=directory), at=AT, store=store
    )

    assert outcome.ok
    assert outcome.comparison is not None
    assert outcome.comparison.matches
    names = sorted(p.name for p in directory.iterdir())
    assert names == [outcome.path.name, f"{outcome.path.name}.manifest.json"]


# -- PostgreSQL scratch databases -----------------------------------------------------------


def _create(admin: DatabaseUrl, name: str) -> None:
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _existing(admin: DatabaseUrl, names: list[str]) -> set[str]:
    with psycopg.connect(admin.conninfo) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", [names]
        ).fetchall()
    return {r[0] for r in rows}


def _drop(admin: DatabaseUrl, names: list[str]) -> None:
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        for name in names:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            conn.execute(drop)


def test_scratch_names_carry_their_creation_time() -> None:
    name = scratch_name(
        dt.datetime(2026, 11, 22, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    )
    assert name.startswith("marketdata_verify_20261122090506_")
    assert scratch_created(name) == dt.datetime(2026, 11, 22, 9, 5, 6, tzinfo=dt.UTC)
    assert scratch_created("marketdata_verify_1a2b3c4d") is None  # older versions' names
    assert scratch_created("marketdata_test_x") is None


def test_only_abandoned_old_scratch_databases_are_dropped(postgres_session_url: str) -> None:
    server = DatabaseUrl.parse(postgres_session_url)
    now = dt.datetime.now(dt.UTC)
    abandoned = scratch_name(now - dt.timedelta(hours=2))
    in_use = scratch_name(now - dt.timedelta(hours=2))
    young = scratch_name(now)
    names = [abandoned, in_use, young]
    for name in names:
        _create(server, name)
    try:
        with psycopg.connect(server.with_database(in_use).conninfo):  # a verification running
            dropped = sweep_scratch_databases(server, now=now)
        assert abandoned in dropped
        assert not {in_use, young} & set(dropped)
        assert _existing(server, names) == {in_use, young}
    finally:
        _drop(server, names)


async def test_a_postgres_verification_drops_a_killed_ones_scratch_database(
    postgres_session_url: str, tmp_path: Path
) -> None:
    truncate_all(postgres_session_url)
    server = DatabaseUrl.parse(postgres_session_url)
    left = scratch_name(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    _create(server, left)
    store = await open_store(postgres_session_url)
    try:
        await store.upsert_bars(make_bars("AAPL", days=3), source="test", at=AT)
        outcome = await take_backup(
            server, BackupConfig(directory=tmp_path / "b"), at=AT, store=store
        )
        assert outcome.ok
        assert _existing(server, [left]) == set()
    finally:
        await store.aclose()
        _drop(server, [left])
