"""SQLite leases: named locks that survive no crash of their holder.

SQLite has no session locks that die with their process, so a named lock is a *lease*: a row
in ``leases`` that its holder renews every ``ttl / 3`` seconds and that anyone may take over
once it has expired, or once the process that holds it (on this host) is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from marketdata.errors import StorageError
from marketdata.storage.jobs import StoreLock

T = TypeVar("T")

log = logging.getLogger(__name__)


def iso_ts(value: dt.datetime) -> str:
    """A timestamp as stored: UTC ISO text with microseconds (sorts as it compares)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken at once (``BEGIN IMMEDIATE``), rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a permission error means it does)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """A held lease; a task renews it every ``ttl / 3`` seconds until released."""

    def __init__(self, store: SQLiteLeases, name: str, holder: str, ttl: float) -> None:
        self._store = store
        self._name = name
        self._holder = holder
        self._ttl = ttl
        self._task: asyncio.Task[None] | None = asyncio.create_task(self._keep())

    @property
    def name(self) -> str:
        """The lock's name."""
        return self._name

    async def renew(self) -> bool:
        """Push the expiry ``ttl`` seconds ahead; False when the lease is no longer ours."""
        return await self._store._run(self._store._renew_lease, self._name, self._holder, self._ttl)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                if not await self.renew():
                    extra = {"event": "lease_lost", "lock": self._name}
                    log.warning("lease %s was taken over", self._name, extra=extra)
                    return
            except StorageError as exc:  # e.g. the database is busy: try again next time
                extra = {"event": "lease_renew_failed", "lock": self._name}
                log.warning("cannot renew lease %s: %s", self._name, exc, extra=extra)

    async def release(self) -> None:
        """Stop renewing and delete the row (if still ours); idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._store._leases.discard(self)
        await self._store._run(self._store._drop_lease, self._name, self._holder)


class SQLiteLeases:
    """Named locks as lease rows (mixed into the store through :class:`SQLiteJobs`)."""

    if TYPE_CHECKING:  # provided by SQLiteStore

        @property
        def _db(self) -> sqlite3.Connection: ...

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def __init__(self) -> None:
        self._leases: set[Lease] = set()

    # -- leases -----------------------------------------------------------------------------

    async def acquire_lock(self, name: str, *, holder: str, ttl: float = 60.0) -> StoreLock | None:
        """Take the lease ``name``, or None while someone alive holds it."""
        if ttl <= 0:
            msg = "a lease needs a positive ttl"
            raise ValueError(msg)
        if not await self._run(self._take_lease, name, holder, ttl):
            return None
        lease = Lease(self, name, holder, ttl)
        self._leases.add(lease)
        return lease

    def _take_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = dt.datetime.now(dt.UTC)
        host = socket.gethostname()
        with immediate(self._db) as db:
            row = db.execute(
                "SELECT holder, pid, host, expires_at FROM leases WHERE name = ?", (name,)
            ).fetchone()
            free = (
                row is None
                or row[0] == holder
                or dt.datetime.fromisoformat(row[3]) < now
                or (row[2] == host and not _alive(int(row[1])))
            )
            if free:
                db.execute(
                    "INSERT OR REPLACE INTO leases (name, holder, pid, host, acquired_at,"
                    " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        holder,
                        os.getpid(),
                        host,
                        iso_ts(now),
                        iso_ts(now + dt.timedelta(seconds=ttl)),
                    ),
                )
        return free

    def _renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        expires = iso_ts(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl))
        cur = self._db.execute(
            "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?",
            (expires, name, holder),
        )
        return cur.rowcount == 1

    def _drop_lease(self, name: str, holder: str) -> None:
        self._db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    async def _release_locks(self) -> None:
        """Release every lease this store still holds (before it closes)."""
        for lease in list(self._leases):
            await lease.release()
