"""Database copies: SQLite's online backup API, ``pg_dump`` / ``pg_restore``, scratch databases.

Each copy comes with the digests (:mod:`marketdata.storage.snapshot`) of exactly what it
holds, even while the service writes:

- **SQLite**: ``sqlite3.Connection.backup`` copies a consistent image (a write during a
  multi-step copy restarts it), and the digests are computed on the copy.
- **PostgreSQL**: a repeatable-read transaction exports its snapshot, ``pg_dump
  --snapshot`` dumps that snapshot, and the digests are computed in the same transaction.

Finding, checking and running ``pg_dump``/``pg_restore`` (with the password in
``PGPASSWORD``, never on a command line or in a message) moved to
:mod:`marketdata.storage.pg_tools`; its public names are re-exported here. Every function
here is blocking; a ``stop`` event ends it early (a child process is killed) with
:class:`~marketdata.storage.snapshot.Stopped`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa

from marketdata.errors import InputError, StorageError
from marketdata.storage.leftovers import held, scratch_name
from marketdata.storage.pg_tools import (
    checked_tool,
    find_tool,
    libpq_url_and_env,
    run_tool,
    server_major,
    tool_version,
)
from marketdata.storage.snapshot import (
    Progress,
    Snapshot,
    Stopped,
    connect,
    first_line,
    snapshot_of,
    take_snapshot,
)
from marketdata.storage.urls import DatabaseUrl

__all__ = [
    "StepHook",
    "checked_tool",
    "clear_postgres",
    "dump_postgres",
    "dump_sqlite",
    "file_sha256",
    "find_tool",
    "restore_postgres",
    "restore_sqlite",
    "scratch_postgres",
    "scratch_sqlite",
    "server_major",
    "sqlite_version",
    "tool_version",
]

#: Called after each step of a SQLite backup with (pages remaining, pages in all).
StepHook = Callable[[int, int], None]

_TIMESCALE = re.compile(r"\bEXTENSION - timescaledb\b")
#: Replace what the dump holds, in one transaction (a failure changes nothing), owned by the
#: connecting role, without the source's grants.
_RESTORE_FLAGS = (
    "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
    "--exit-on-error", "--no-password",
)  # fmt: skip
_CHUNK = 1 << 20


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Stopped


def file_sha256(path: Path, *, stop: threading.Event | None = None) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            _check(stop)
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def sqlite_version() -> str:
    """The SQLite library version, for manifests."""
    return sqlite3.sqlite_version


# -- SQLite --------------------------------------------------------------------------------------


def dump_sqlite(
    source: Path,
    target: Path,
    *,
    pages: int = -1,
    on_step: StepHook | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> Snapshot:
    """Copy the SQLite database ``source`` to ``target`` (one self-contained file) with the
    online backup API, and digest the copy.

    ``pages`` per step (-1: all in one step, which never restarts); writes by other
    connections between steps restart the copy, so it is always one consistent image.
    """
    if not source.is_file():
        msg = f"no SQLite database at {source}"
        raise StorageError(msg)

    def step(_status: int, remaining: int, total: int) -> None:
        _check(stop)
        if progress is not None:
            progress(f"copying {total - remaining:,} of {total:,} pages")
        if on_step is not None:
            on_step(remaining, total)

    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst, pages=pages, progress=step)
            dst.execute("PRAGMA journal_mode = DELETE")  # no -wal file beside the copy
    except sqlite3.Error as exc:
        msg = f"cannot back up SQLite file {source}: {exc}"
        raise StorageError(msg) from None
    if progress is not None:
        progress("checksumming the copy")
    return take_snapshot(_sqlite_url(target), progress=progress, stop=stop)


def restore_sqlite(backup: Path, target: Path, *, stop: threading.Event | None = None) -> None:
    """Replace the SQLite database ``target`` (created if missing) with the copy ``backup``.

    The backup is checked first (``PRAGMA quick_check``): a damaged file changes nothing.
    """
    uri = f"{backup.resolve().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as src:
            problems = [row[0] for row in src.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError(problems[0] if problems else "quick_check failed")
    except sqlite3.Error as exc:
        msg = f"backup {backup.name} is damaged or not a SQLite database ({exc})"
        raise InputError(msg) from None
    _check(stop)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            contextlib.closing(sqlite3.connect(uri, uri=True)) as src,
            contextlib.closing(sqlite3.connect(target, timeout=30)) as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = WAL")  # as the store keeps it
    except sqlite3.Error as exc:
        msg = f"cannot restore into SQLite file {target}: {exc}"
        raise StorageError(msg) from None


def _sqlite_url(path: Path) -> DatabaseUrl:
    return DatabaseUrl.parse(f"sqlite:///{path}")


@contextlib.contextmanager
def scratch_sqlite(directory: Path) -> Iterator[DatabaseUrl]:
    """A temporary SQLite file under ``directory``, deleted afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=".verify-", dir=directory) as scratch,
        held(Path(scratch)),  # marks it as in use until it is deleted
    ):
        yield _sqlite_url(Path(scratch) / "scratch.db")


# -- PostgreSQL ----------------------------------------------------------------------------------


def dump_postgres(
    db: DatabaseUrl,
    target: Path,
    *,
    bin_dir: Path | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> tuple[Snapshot, str]:
    """``pg_dump --format=custom`` of ``db`` into ``target``, and the digests of the same
    snapshot; also the pg_dump version line."""
    url, env = libpq_url_and_env(db)
    with connect(db, consistent=True) as conn:
        tool, version = checked_tool("pg_dump", bin_dir, server=server_major(conn))
        snapshot_id = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
        command = [
            str(tool),
            "--format=custom",
            f"--file={target}",
            f"--snapshot={snapshot_id}",
            "--no-password",
            f"--dbname={url}",
        ]

        def tick() -> None:
            if progress is not None and target.exists():
                progress(f"pg_dump: {target.stat().st_size / 1e6:,.1f} MB written")

        what = f"pg_dump of {db.display}"
        with run_tool(command, env=env, what=what, stop=stop, progress=tick):
            snapshot = snapshot_of(conn, progress=progress, stop=stop)
    return snapshot, version


def restore_postgres(
    backup: Path,
    db: DatabaseUrl,
    *,
    bin_dir: Path | None = None,
    clear: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> None:
    """``pg_restore`` ``backup`` into ``db`` in one transaction (a failure changes nothing).

    Existing tables of the dump are replaced (``--clean --if-exists``); with ``clear`` every
    table of the public schema is dropped first. A dump of a TimescaleDB database is restored
    between ``timescaledb_pre_restore()`` and ``timescaledb_post_restore()`` (the target
    server needs the extension).
    """
    with connect(db) as conn:
        server = server_major(conn)
    tool, _ = checked_tool("pg_restore", bin_dir, server=server)
    if clear:
        clear_postgres(db)
    url, env = libpq_url_and_env(db)
    command = [str(tool), *_RESTORE_FLAGS, f"--dbname={url}", str(backup)]

    def tick() -> None:
        if progress is not None:
            progress(f"pg_restore into {db.display}")

    timescale = _uses_timescaledb(tool, backup, env=env)
    if timescale:  # Timescale's documented procedure around pg_restore
        _execute(
            db, "CREATE EXTENSION IF NOT EXISTS timescaledb", "SELECT timescaledb_pre_restore()"
        )
    try:
        with run_tool(
            command, env=env, what=f"pg_restore of {backup.name}", stop=stop, progress=tick
        ):
            pass
    finally:
        if timescale:
            _execute(db, "SELECT timescaledb_post_restore()")


def _uses_timescaledb(tool: Path, backup: Path, *, env: dict[str, str]) -> bool:
    """Whether the dump's table of contents creates the TimescaleDB extension."""
    listed = subprocess.run(  # noqa: S603  # located executable, our own arguments
        [str(tool), "--list", str(backup)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    return listed.returncode == 0 and _TIMESCALE.search(listed.stdout) is not None


def _execute(db: DatabaseUrl, *statements: str) -> None:
    with connect(db) as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
        conn.commit()


def clear_postgres(db: DatabaseUrl) -> None:
    """Drop every table of the public schema of ``db`` (with what depends on it)."""
    with connect(db) as conn:
        names = sa.inspect(conn).get_table_names()
        for name in names:
            conn.execute(
                sa.text(
                    f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(name)} CASCADE"
                )
            )
        conn.commit()


@contextlib.contextmanager
def scratch_postgres(server: DatabaseUrl) -> Iterator[DatabaseUrl]:
    """A new empty database ``marketdata_verify_<UTC stamp>_<random>`` on ``server``'s
    server, dropped afterwards (needs the CREATEDB privilege)."""
    import psycopg  # only PostgreSQL verification needs the driver directly
    from psycopg import sql

    name = scratch_name(dt.datetime.now(dt.UTC))
    try:
        with psycopg.connect(server.conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        msg = (
            f"cannot create a scratch database on {server.display} to verify the backup "
            f"(the role needs CREATEDB): {first_line(exc)}"
        )
        raise StorageError(msg) from None
    try:
        yield server.with_database(name)
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(server.conninfo, autocommit=True, connect_timeout=10) as conn,
        ):
            conn.execute(drop)
