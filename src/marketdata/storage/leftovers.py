"""What an interrupted backup leaves behind, and clearing it away safely.

A backup writes ``.<name>.partial`` before renaming it, verification restores into a
``.verify-*`` directory (SQLite) or a ``marketdata_verify_<UTC stamp>_<hex>`` database
(PostgreSQL). A clean end removes them; ``kill -9``, a power cut or an OOM kill does not.

Every such file or directory is held under an exclusive advisory lock (``flock``) by the
process writing it; the kernel drops the lock when that process dies, however it dies. So a
leftover is one nobody holds and that has not changed for a while; a scratch database is
abandoned when nobody is connected to it and its name says it is old. Only those are removed:
a backup running in another process (a second worker, a manual ``marketdata backup``) is left
alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from marketdata.storage.snapshot import first_line
from marketdata.storage.urls import DatabaseUrl

log = logging.getLogger(__name__)

#: A file or directory nobody holds is only removed once unchanged for this long (a manifest
#: is written unlocked in a few milliseconds; a partial is locked a moment after it exists).
MIN_FILE_AGE = dt.timedelta(minutes=1)
#: A scratch database nobody is connected to is only dropped once its name is this old.
MIN_DATABASE_AGE = dt.timedelta(hours=1)

SCRATCH_PREFIX = "marketdata_verify_"
_SCRATCH_STAMP = "%Y%m%d%H%M%S"
_SCRATCH = re.compile(rf"{SCRATCH_PREFIX}(\d{{14}})_[0-9a-f]+")


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (a file or a directory) while the block runs:
    the mark that its owner is alive."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # releases the lock


def _abandoned(path: Path, *, now: float, min_age: dt.timedelta) -> bool:
    """Nobody holds ``path`` and it has not changed for ``min_age``."""
    try:
        if now - path.stat().st_mtime < min_age.total_seconds():
            return False
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone meanwhile, or not ours to open
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its owner is alive
        return False
    finally:
        os.close(fd)
    return True


def sweep_directory(
    directory: Path, *, now: float | None = None, min_age: dt.timedelta = MIN_FILE_AGE
) -> list[str]:
    """Remove the ``.*.partial`` files and ``.verify-*`` directories of interrupted backups
    from ``directory``; the names removed."""
    at = time.time() if now is None else now
    removed: list[str] = []
    if not directory.is_dir():
        return removed
    for path in sorted(directory.iterdir()):
        name = path.name
        partial = name.startswith(".") and name.endswith(".partial")
        if not (partial or name.startswith(".verify-")):
            continue
        if not _abandoned(path, now=at, min_age=min_age):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            log.warning(
                "cannot remove %s, left by an interrupted backup: %s",
                path,
                exc.strerror,
                extra={"event": "backup_leftover_kept", "path": str(path)},
            )
            continue
        removed.append(name)
    if removed:
        log.info(
            "removed %d leftover(s) of interrupted backups in %s: %s",
            len(removed),
            directory,
            ", ".join(removed),
            extra={"event": "backup_leftovers_removed", "count": len(removed)},
        )
    return removed


def scratch_name(at: dt.datetime) -> str:
    """A new scratch database name carrying its creation time (UTC)."""
    stamp = at.astimezone(dt.UTC).strftime(_SCRATCH_STAMP)
    return f"{SCRATCH_PREFIX}{stamp}_{secrets.token_hex(4)}"


def scratch_created(name: str) -> dt.datetime | None:
    """When the scratch database ``name`` was created; None for any other name."""
    match = _SCRATCH.fullmatch(name)
    if match is None:
        return None
    try:
        return dt.datetime.strptime(match.group(1), _SCRATCH_STAMP).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def sweep_scratch_databases(
    server: DatabaseUrl, *, now: dt.datetime, min_age: dt.timedelta = MIN_DATABASE_AGE
) -> list[str]:
    """Drop the verification databases on ``server``'s server that interrupted backups left:
    nobody connected, created over ``min_age`` ago. The names dropped; a database this role
    may not drop, or that someone connects to meanwhile, is left alone."""
    import psycopg  # only PostgreSQL needs the driver directly
    from psycopg import sql

    dropped: list[str] = []
    try:
        with psycopg.connect(server.conninfo, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database AS d WHERE starts_with(datname, %s)"
                " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.datid = d.oid)",
                [SCRATCH_PREFIX],
            ).fetchall()
            for (name,) in rows:
                created = scratch_created(name)
                if created is None or now - created < min_age:
                    continue
                try:  # without FORCE: a session that connected meanwhile keeps it
                    conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
                except psycopg.Error:
                    continue
                dropped.append(name)
    except psycopg.Error as exc:
        log.warning(
            "cannot look for leftover verification databases on %s: %s",
            server.display,
            first_line(exc),
            extra={"event": "backup_leftover_check_failed"},
        )
    if dropped:
        log.info(
            "dropped %d verification database(s) left by interrupted backups: %s",
            len(dropped),
            ", ".join(dropped),
            extra={"event": "backup_leftovers_removed", "count": len(dropped)},
        )
    return dropped
