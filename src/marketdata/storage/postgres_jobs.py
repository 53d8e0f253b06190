"""PostgreSQL side of the backfill engine and scheduler: watchlist, runs, state, claims.

Kept apart from the bar modules (writes, scores, reads, actions) so each module holds
one concern. :class:`PostgresJobs` is a mixin of
:class:`~marketdata.storage.postgres.PostgresStore`; :meth:`PostgresJobs._apply_checkpoint`
runs on the bar write's own connection, inside its transaction.

Advisory locks (:data:`WRITE_LOCK`, named locks with :class:`AdvisoryLock` and
:func:`lock_key`, releasing them on close) moved to :mod:`marketdata.storage.postgres_locks`,
whose :class:`~marketdata.storage.postgres_locks.PostgresLocks` this mixin extends; those
names are re-exported here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from marketdata.errors import DatabaseUnreachable, StorageError
from marketdata.storage.jobs import (
    Checkpoint,
    RunRecord,
    RunSymbol,
    WatchEntry,
    checkpoint_params,
)
from marketdata.storage.postgres_locks import (
    WRITE_LOCK,
    AdvisoryLock,
    PostgresLocks,
    first_line,
    lock_key,
)

__all__ = [
    "RUN_COLUMNS",
    "WRITE_LOCK",
    "AdvisoryLock",
    "PostgresJobs",
    "lock_key",
    "run_values",
]

_RUN_PROGRESS = """
UPDATE backfill_runs SET calls = calls + %(calls)s, errors = errors + %(errors)s,
  inserted = inserted + %(inserted)s, updated = updated + %(updated)s,
  unchanged = unchanged + %(unchanged)s
WHERE id = %(run_id)s
"""

_SYMBOL_PROGRESS = """
UPDATE backfill_run_symbols SET
  checkpoint = GREATEST(checkpoint, %(through)s::date),
  calls = calls + %(calls)s,
  inserted = inserted + %(inserted)s, updated = updated + %(updated)s,
  unchanged = unchanged + %(unchanged)s,
  status = COALESCE(%(status)s::text, status),
  error = CASE WHEN %(status)s::text IS NULL THEN error ELSE %(error)s::text END
WHERE run_id = %(run_id)s AND symbol = %(symbol)s
"""

# Ends runs: the given one, or (``ids`` null) every one still running; returns their ids.
_END_RUNS = """
WITH r AS (
  UPDATE backfill_runs SET status = %(status)s, finished_at = %(at)s, message = %(message)s
  WHERE (%(ids)s::bigint[] IS NULL AND status = 'running') OR id = ANY(%(ids)s::bigint[])
  RETURNING id
),
s AS (
  UPDATE backfill_run_symbols SET status = 'interrupted'
  WHERE run_id IN (SELECT id FROM r) AND status IN ('pending', 'running')
)
SELECT id FROM r ORDER BY id
"""

_CHECKED_FROM = (
    "UPDATE symbols SET checked_from = LEAST(checked_from, %(checked_from)s::date)"
    " WHERE symbol = %(symbol)s"
)
_FAILED = "UPDATE symbol_status SET last_error = %(error)s::text WHERE symbol = %(symbol)s"
_FETCHED = (
    "UPDATE symbol_status SET last_fetch = %(at)s, last_error = NULL WHERE symbol = %(symbol)s"
)

_WATCH_COLUMNS = [f.name for f in fields(WatchEntry)]
RUN_COLUMNS = [f.name for f in fields(RunRecord) if f.name != "symbols"]
_RUN_COLUMNS = RUN_COLUMNS
_SYMBOL_COLUMNS = [f.name for f in fields(RunSymbol)]


def _utc(value: Any) -> Any:
    """Timestamps in UTC (they arrive in the session's time zone); other values as they are."""
    return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) else value


def _values(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A row as {column: value}, to build a value type from."""
    return {c: _utc(v) for c, v in zip(columns, row, strict=True)}


def run_values(row: Sequence[Any]) -> dict[str, Any]:
    """A ``backfill_runs`` row read as :data:`RUN_COLUMNS`, as :class:`RunRecord` fields."""
    return _values(RUN_COLUMNS, row)


class PostgresJobs(PostgresLocks):
    """Watchlist, runs, service state, claims and (through :class:`PostgresLocks`) locks on
    PostgreSQL (mixed into the store)."""

    if TYPE_CHECKING:  # provided by PostgresStore
        _pool: AsyncConnectionPool

        @property
        def description(self) -> str: ...

        async def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]: ...

    @contextlib.asynccontextmanager
    async def _transaction(
        self, *, lock: bool = True
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection in a transaction (holding the write lock unless told not to)."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if lock:
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield conn
        except (psycopg.OperationalError, PoolClosed, PoolTimeout) as exc:
            raise DatabaseUnreachable(f"{self.description}: {first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"{self.description}: {first_line(exc)}") from exc

    # -- watchlist --------------------------------------------------------------------------

    async def watchlist(self) -> list[WatchEntry]:
        """Every row of the watchlist, ordered by symbol."""
        sql = f"SELECT {', '.join(_WATCH_COLUMNS)} FROM symbols ORDER BY symbol"
        return [WatchEntry(**_values(_WATCH_COLUMNS, r)) for r in await self._fetch(sql, {})]

    async def save_watch(self, entries: Sequence[WatchEntry]) -> None:
        """Insert or update rows, keeping an existing row's ``checked_from``/``actions_checked``."""
        if not entries:
            return
        rows = [tuple(getattr(e, c) for c in _WATCH_COLUMNS) for e in entries]
        rows.sort(key=lambda r: str(r[0]))  # one lock order for every writer
        async with self._transaction() as conn, conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO symbols ({', '.join(_WATCH_COLUMNS)})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (symbol) DO UPDATE SET"
                " active = EXCLUDED.active, origin = EXCLUDED.origin, years = EXCLUDED.years,"
                " added_at = EXCLUDED.added_at",
                rows,
            )

    async def mark_actions_checked(self, symbols: Sequence[str], day: dt.date) -> None:
        """Record that corporate actions of ``symbols`` were fetched up to ``day``."""
        if not symbols:
            return
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE symbols SET actions_checked = %(day)s WHERE symbol = ANY(%(symbols)s)",
                {"day": day, "symbols": list(symbols)},
            )

    # -- runs -------------------------------------------------------------------------------

    async def create_run(
        self,
        *,
        trigger: str,
        provider: str,
        at: dt.datetime,
        symbols: Sequence[tuple[str, dt.date | None, dt.date | None]],
        message: str | None = None,
    ) -> int:
        """Start a run with one ``pending`` row per symbol; its id."""
        async with self._transaction(lock=False) as conn:
            cur = await conn.execute(
                "INSERT INTO backfill_runs (started_at, status, trigger, provider, message)"
                " VALUES (%s, 'running', %s, %s, %s) RETURNING id",
                (at, trigger, provider, message),
            )
            row = await cur.fetchone()
            assert row is not None  # INSERT … RETURNING returns the row
            run_id = int(row[0])
            await conn.execute(
                "INSERT INTO backfill_run_symbols (run_id, symbol, status, start_date, end_date)"
                " SELECT %(id)s, u.symbol, 'pending', u.lo, u.hi"
                " FROM unnest(%(symbols)s::text[], %(lo)s::date[], %(hi)s::date[])"
                " AS u(symbol, lo, hi)",
                {
                    "id": run_id,
                    "symbols": [s for s, _, _ in symbols],
                    "lo": [lo for _, lo, _ in symbols],
                    "hi": [hi for _, _, hi in symbols],
                },
            )
        return run_id

    async def save_progress(self, checkpoint: Checkpoint, *, at: dt.datetime) -> None:
        """Apply a checkpoint that comes with no bars, in one transaction."""
        async with self._transaction() as conn:
            await self._apply_checkpoint(conn, checkpoint, at, {})

    async def _apply_checkpoint(
        self,
        conn: psycopg.AsyncConnection[Any],
        checkpoint: Checkpoint,
        at: dt.datetime,
        counts: Mapping[str, tuple[int, int, int]],
    ) -> None:
        """Apply ``checkpoint`` in the caller's transaction; ``counts`` is what the write did.

        Raises :class:`StorageError` when the run does not exist (the transaction rolls back).
        """
        run, rows = checkpoint_params(checkpoint, counts)
        cur = await conn.execute(_RUN_PROGRESS, run)
        if cur.rowcount == 0:
            msg = f"{self.description}: backfill run {checkpoint.run_id} does not exist"
            raise StorageError(msg)
        rows = [{**r, "at": at} for r in rows]
        async with conn.cursor() as c:
            for sql, selected in (
                (_SYMBOL_PROGRESS, rows),
                (_CHECKED_FROM, [r for r in rows if r["checked_from"] is not None]),
                (_FAILED, [r for r in rows if r["failed"]]),
                (_FETCHED, [r for r in rows if r["fetched"]]),
            ):
                if selected:
                    await c.executemany(sql, selected)

    async def finish_run(
        self, run_id: int, *, status: str, at: dt.datetime, message: str | None = None
    ) -> None:
        """End a run; its unfinished symbols become ``interrupted``."""
        await self._end_runs([run_id], status, at, message)

    async def mark_interrupted(self, *, at: dt.datetime, message: str) -> list[int]:
        """End every ``running`` run as ``interrupted``; their ids."""
        return await self._end_runs(None, "interrupted", at, message)

    async def _end_runs(
        self, ids: list[int] | None, status: str, at: dt.datetime, message: str | None
    ) -> list[int]:
        async with self._transaction() as conn:
            cur = await conn.execute(
                _END_RUNS, {"ids": ids, "status": status, "at": at, "message": message}
            )
            return [int(r[0]) for r in await cur.fetchall()]

    async def read_run(self, run_id: int) -> RunRecord | None:
        """One run with its symbols (by symbol), or None."""
        async with self._transaction(lock=False) as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur = await conn.execute(
                f"SELECT {', '.join(_RUN_COLUMNS)} FROM backfill_runs WHERE id = %s", (run_id,)
            )
            row = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT {', '.join(_SYMBOL_COLUMNS)} FROM backfill_run_symbols"
                " WHERE run_id = %s ORDER BY symbol",
                (run_id,),
            )
            symbols = await cur.fetchall()
        if row is None:
            return None
        return RunRecord(
            **_values(_RUN_COLUMNS, row),
            symbols=tuple(RunSymbol(**_values(_SYMBOL_COLUMNS, s)) for s in symbols),
        )

    async def list_runs(self, *, limit: int = 20, trigger: str | None = None) -> list[RunRecord]:
        """The latest runs, newest first, without their symbols."""
        rows = await self._fetch(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM backfill_runs"
            " WHERE %(trigger)s::text IS NULL OR trigger = %(trigger)s"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"trigger": trigger, "limit": limit},
        )
        return [RunRecord(**_values(_RUN_COLUMNS, r)) for r in rows]

    # -- service state and claims -----------------------------------------------------------

    async def get_state(self, key: str) -> str | None:
        """A stored service-state value."""
        sql = "SELECT value FROM service_state WHERE key = %(key)s"
        rows = await self._fetch(sql, {"key": key})
        return rows[0][0] if rows else None

    async def set_state(self, key: str, value: str | None, *, at: dt.datetime) -> None:
        """Store (or with None, delete) a service-state value."""
        async with self._transaction(lock=False) as conn:
            if value is None:
                await conn.execute("DELETE FROM service_state WHERE key = %s", (key,))
            else:
                await conn.execute(
                    "INSERT INTO service_state (key, value, updated_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
                    " updated_at = EXCLUDED.updated_at",
                    (key, value, at),
                )

    async def claim(
        self, job: str, fire_time: dt.datetime, *, holder: str, at: dt.datetime
    ) -> bool:
        """Claim one firing of ``job``; True for exactly one caller per (job, fire_time)."""
        if fire_time.tzinfo is None:
            msg = "fire time must be timezone-aware"
            raise ValueError(msg)
        async with self._transaction(lock=False) as conn:
            cur = await conn.execute(
                "INSERT INTO job_claims (job, fire_time, holder, claimed_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (job, fire_time) DO NOTHING",
                (job, fire_time, holder, at),
            )
            return cur.rowcount == 1

    async def last_claim(self, job: str) -> dt.datetime | None:
        """The latest claimed fire time of ``job``."""
        sql = "SELECT MAX(fire_time) FROM job_claims WHERE job = %(job)s"
        rows = await self._fetch(sql, {"job": job})
        return _utc(rows[0][0]) if rows else None
