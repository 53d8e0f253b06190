"""PostgreSQL advisory locks: the writers' lock and named locks that die with their holder.

Every writer takes the transaction-level advisory lock :data:`WRITE_LOCK`, so one writer at
a time keeps the stored-span check, revisions and status counters exact.

Named locks are session advisory locks, each on a connection of its own (never a pooled one,
which would be handed to other callers while the lock is held): when the process dies, the
server ends the session and frees the lock. :class:`PostgresLocks` is the PostgreSQL
counterpart of :class:`~marketdata.storage.sqlite_leases.SQLiteLeases`, mixed into
:class:`~marketdata.storage.postgres.PostgresStore` through
:class:`~marketdata.storage.postgres_jobs.PostgresJobs`; the store releases what it still
holds before it closes.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

import psycopg

from marketdata.errors import DatabaseUnreachable, StorageError
from marketdata.storage.jobs import StoreLock
from marketdata.storage.urls import DatabaseUrl

#: Every writer takes this transaction-level advisory lock: one writer at a time keeps the
#: stored-span check, revisions and status counters exact.
WRITE_LOCK = 0x6D6B7464  # "mktd"


def first_line(exc: BaseException) -> str:
    """The first line of a driver error (its message, without the context lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"marketdata-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLock:
    """A session advisory lock held on its own connection until released."""

    def __init__(
        self,
        store: PostgresLocks,
        name: str,
        holder: str,
        key: int,
        conn: psycopg.AsyncConnection[Any],
    ) -> None:
        self._store = store
        self._name = name
        self.holder = holder
        self._key = key
        self._conn: psycopg.AsyncConnection[Any] | None = conn

    @property
    def name(self) -> str:
        """The lock's name."""
        return self._name

    async def release(self) -> None:
        """Unlock and close the connection; idempotent."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._store._locks.discard(self)
        try:
            with contextlib.suppress(psycopg.Error):  # it ends with the session (closed below)
                await conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        finally:
            await conn.close()


class PostgresLocks:
    """Named locks as session advisory locks (mixed into the store through
    :class:`~marketdata.storage.postgres_jobs.PostgresJobs`)."""

    if TYPE_CHECKING:  # provided by PostgresStore
        _db: DatabaseUrl

        @property
        def description(self) -> str: ...

    def __init__(self) -> None:
        self._locks: set[AdvisoryLock] = set()

    # -- locks ------------------------------------------------------------------------------

    async def acquire_lock(
        self,
        name: str,
        *,
        holder: str,
        ttl: float = 60.0,  # noqa: ARG002 - the server frees a dead session's lock: no lease
    ) -> StoreLock | None:
        """Take the advisory lock ``name`` on a connection of its own, or None if it is held."""
        key = lock_key(name)
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._db.conninfo, autocommit=True, connect_timeout=10
            )
        except psycopg.Error as exc:
            raise DatabaseUnreachable(f"{self.description}: {first_line(exc)}") from exc
        taken = False
        try:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            taken = bool((await cur.fetchone() or (False,))[0])
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc
        finally:
            if not taken:
                await conn.close()
        if not taken:
            return None
        lock = AdvisoryLock(self, name, holder, key, conn)
        self._locks.add(lock)
        return lock

    async def _release_locks(self) -> None:
        """Release every lock this store still holds (before it closes)."""
        for lock in list(self._locks):
            await lock.release()
