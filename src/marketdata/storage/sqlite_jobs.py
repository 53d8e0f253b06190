"""SQLite side of the backfill engine and scheduler: watchlist, runs, state, claims.

Kept apart from the bar modules (writes, scores, reads, actions) so each module holds
one concern. :class:`SQLiteJobs` is a mixin of :class:`~marketdata.storage.sqlite.SQLiteStore`:
its statements run on the store's single worker thread like every other one, and
:meth:`SQLiteJobs._apply_checkpoint` runs inside the bar write's own transaction.
Leases (named locks) live in :mod:`marketdata.storage.sqlite_leases`.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from marketdata.errors import StorageError
from marketdata.storage.jobs import (
    Checkpoint,
    RunRecord,
    RunSymbol,
    WatchEntry,
    checkpoint_params,
)
from marketdata.storage.sqlite_leases import SQLiteLeases, immediate, iso_ts

T = TypeVar("T")

log = logging.getLogger(__name__)

_WATCH_COLUMNS = [f.name for f in fields(WatchEntry)]
RUN_COLUMNS = [f.name for f in fields(RunRecord) if f.name != "symbols"]
_RUN_COLUMNS = RUN_COLUMNS
_SYMBOL_COLUMNS = [f.name for f in fields(RunSymbol)]
_DATES = {"start_date", "end_date", "checkpoint", "checked_from", "actions_checked"}
_STAMPS = {"started_at", "finished_at", "added_at", "fire_time"}

_RUN_PROGRESS = """
UPDATE backfill_runs SET calls = calls + :calls, errors = errors + :errors,
  inserted = inserted + :inserted, updated = updated + :updated,
  unchanged = unchanged + :unchanged
WHERE id = :run_id
"""

_SYMBOL_PROGRESS = """
UPDATE backfill_run_symbols SET
  checkpoint = CASE WHEN :through IS NOT NULL AND (checkpoint IS NULL OR :through > checkpoint)
                    THEN :through ELSE checkpoint END,
  calls = calls + :calls,
  inserted = inserted + :inserted, updated = updated + :updated,
  unchanged = unchanged + :unchanged,
  status = COALESCE(:status, status),
  error = CASE WHEN :status IS NULL THEN error ELSE :error END
WHERE run_id = :run_id AND symbol = :symbol
"""

_CHECKED_FROM = """
UPDATE symbols SET checked_from = :checked_from
WHERE symbol = :symbol AND (checked_from IS NULL OR checked_from > :checked_from)
"""


def _dump(value: Any) -> Any:
    """A value as SQLite keeps it: dates and timestamps as ISO text."""
    if isinstance(value, dt.datetime):
        return iso_ts(value)
    return value.isoformat() if isinstance(value, dt.date) else value


def _parse(column: str, value: Any) -> Any:
    """A stored value as Python has it: ISO text dates and timestamps parsed, 0/1 as bool."""
    if value is None:
        return None
    if column in _DATES:
        return dt.date.fromisoformat(value)
    if column in _STAMPS:
        return dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    return bool(value) if column == "active" else value


def _values(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A row as {column: parsed value}, to build a value type from."""
    return {c: _parse(c, v) for c, v in zip(columns, row, strict=True)}


def run_values(row: Sequence[Any]) -> dict[str, Any]:
    """A ``backfill_runs`` row read as :data:`RUN_COLUMNS`, as :class:`RunRecord` fields."""
    return _values(RUN_COLUMNS, row)


class SQLiteJobs(SQLiteLeases):
    """Watchlist, runs, service state, claims and leases on SQLite (mixed into the store)."""

    if TYPE_CHECKING:  # provided by SQLiteStore

        @property
        def description(self) -> str: ...

        @property
        def _db(self) -> sqlite3.Connection: ...

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

        def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> int: ...

    # -- watchlist --------------------------------------------------------------------------

    async def watchlist(self) -> list[WatchEntry]:
        """Every row of the watchlist, ordered by symbol."""
        sql = f"SELECT {', '.join(_WATCH_COLUMNS)} FROM symbols ORDER BY symbol"
        rows = await self._run(self._fetch, sql, [])
        return [WatchEntry(**_values(_WATCH_COLUMNS, r)) for r in rows]

    async def save_watch(self, entries: Sequence[WatchEntry]) -> None:
        """Insert or update rows, keeping an existing row's ``checked_from``/``actions_checked``."""
        rows = [tuple(_dump(getattr(e, c)) for c in _WATCH_COLUMNS) for e in entries]
        if rows:
            await self._run(
                self._write_many,
                f"INSERT INTO symbols ({', '.join(_WATCH_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (symbol) DO UPDATE SET active = excluded.active,"
                " origin = excluded.origin, years = excluded.years, added_at = excluded.added_at",
                rows,
            )

    async def mark_actions_checked(self, symbols: Sequence[str], day: dt.date) -> None:
        """Record that corporate actions of ``symbols`` were fetched up to ``day``."""
        if symbols:
            await self._run(
                self._write_many,
                "UPDATE symbols SET actions_checked = ? WHERE symbol = ?",
                [(day.isoformat(), s) for s in symbols],
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
        run = (iso_ts(at), trigger, provider, message)
        rows = [(s, _dump(lo), _dump(hi)) for s, lo, hi in symbols]
        return await self._run(self._create_run, run, rows)

    def _create_run(self, run: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> int:
        with immediate(self._db) as db:
            cur = db.execute(
                "INSERT INTO backfill_runs (started_at, status, trigger, provider, message)"
                " VALUES (?, 'running', ?, ?, ?)",
                run,
            )
            run_id = cur.lastrowid
            assert run_id is not None  # an INSERT into a rowid table always sets it
            db.executemany(
                "INSERT INTO backfill_run_symbols (run_id, symbol, status, start_date, end_date)"
                " VALUES (?, ?, 'pending', ?, ?)",
                [(run_id, *row) for row in rows],
            )
        return int(run_id)

    async def save_progress(self, checkpoint: Checkpoint, *, at: dt.datetime) -> None:
        """Apply a checkpoint that comes with no bars, in one transaction."""
        await self._run(self._save_progress, checkpoint, at)

    def _save_progress(self, checkpoint: Checkpoint, at: dt.datetime) -> None:
        with immediate(self._db) as db:
            self._apply_checkpoint(db, checkpoint, at, {})

    def _apply_checkpoint(
        self,
        db: sqlite3.Connection,
        checkpoint: Checkpoint,
        at: dt.datetime,
        counts: Mapping[str, tuple[int, int, int]],
    ) -> None:
        """Apply ``checkpoint`` in the caller's transaction; ``counts`` is what the write did.

        Raises :class:`StorageError` when the run does not exist (the caller rolls back).
        """
        run, params = checkpoint_params(checkpoint, counts)
        if db.execute(_RUN_PROGRESS, run).rowcount == 0:
            msg = f"{self.description}: backfill run {checkpoint.run_id} does not exist"
            raise StorageError(msg)
        rows = [{k: _dump(v) for k, v in p.items()} | {"at": iso_ts(at)} for p in params]
        db.executemany(_SYMBOL_PROGRESS, rows)
        db.executemany(_CHECKED_FROM, [r for r in rows if r["checked_from"] is not None])
        db.executemany(
            "UPDATE symbol_status SET last_error = :error WHERE symbol = :symbol",
            [r for r in rows if r["failed"]],
        )
        db.executemany(
            "UPDATE symbol_status SET last_fetch = :at, last_error = NULL WHERE symbol = :symbol",
            [r for r in rows if r["fetched"]],
        )

    async def finish_run(
        self, run_id: int, *, status: str, at: dt.datetime, message: str | None = None
    ) -> None:
        """End a run; its unfinished symbols become ``interrupted``."""
        await self._run(self._end_runs, [run_id], status, at, message)

    async def mark_interrupted(self, *, at: dt.datetime, message: str) -> list[int]:
        """End every ``running`` run as ``interrupted``; their ids."""
        return await self._run(self._end_runs, None, "interrupted", at, message)

    def _end_runs(
        self, ids: list[int] | None, status: str, at: dt.datetime, message: str | None
    ) -> list[int]:
        """End runs ``ids`` (None: every ``running`` one) in one transaction; the ids."""
        with immediate(self._db) as db:
            if ids is None:
                running = db.execute("SELECT id FROM backfill_runs WHERE status = 'running'")
                ids = sorted(int(r[0]) for r in running)
            db.executemany(
                "UPDATE backfill_runs SET status = ?, finished_at = ?, message = ? WHERE id = ?",
                [(status, iso_ts(at), message, i) for i in ids],
            )
            db.executemany(
                "UPDATE backfill_run_symbols SET status = 'interrupted'"
                " WHERE run_id = ? AND status IN ('pending', 'running')",
                [(i,) for i in ids],
            )
        return ids

    async def read_run(self, run_id: int) -> RunRecord | None:
        """One run with its symbols (by symbol), or None."""
        return await self._run(self._read_run, run_id)

    def _read_run(self, run_id: int) -> RunRecord | None:
        db = self._db
        db.execute("BEGIN")  # one snapshot for the run and its symbols
        try:
            row = db.execute(
                f"SELECT {', '.join(_RUN_COLUMNS)} FROM backfill_runs WHERE id = ?", (run_id,)
            ).fetchone()
            symbols = db.execute(
                f"SELECT {', '.join(_SYMBOL_COLUMNS)} FROM backfill_run_symbols"
                " WHERE run_id = ? ORDER BY symbol",
                (run_id,),
            ).fetchall()
        finally:
            db.execute("COMMIT")
        if row is None:
            return None
        return RunRecord(
            **_values(_RUN_COLUMNS, row),
            symbols=tuple(RunSymbol(**_values(_SYMBOL_COLUMNS, s)) for s in symbols),
        )

    async def list_runs(self, *, limit: int = 20, trigger: str | None = None) -> list[RunRecord]:
        """The latest runs, newest first, without their symbols."""
        rows = await self._run(
            self._fetch,
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM backfill_runs"
            " WHERE ? IS NULL OR trigger = ? ORDER BY id DESC LIMIT ?",
            [trigger, trigger, limit],
        )
        return [RunRecord(**_values(_RUN_COLUMNS, r)) for r in rows]

    # -- service state and claims -----------------------------------------------------------

    async def get_state(self, key: str) -> str | None:
        """A stored service-state value."""
        rows = await self._run(self._fetch, "SELECT value FROM service_state WHERE key = ?", [key])
        return rows[0][0] if rows else None

    async def set_state(self, key: str, value: str | None, *, at: dt.datetime) -> None:
        """Store (or with None, delete) a service-state value."""
        if value is None:
            await self._run(self._write_many, "DELETE FROM service_state WHERE key = ?", [(key,)])
            return
        await self._run(
            self._write_many,
            "INSERT INTO service_state (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            [(key, value, iso_ts(at))],
        )

    async def claim(
        self, job: str, fire_time: dt.datetime, *, holder: str, at: dt.datetime
    ) -> bool:
        """Claim one firing of ``job``; True for exactly one caller per (job, fire_time)."""
        if fire_time.tzinfo is None:
            msg = "fire time must be timezone-aware"
            raise ValueError(msg)
        inserted = await self._run(
            self._write_many,
            "INSERT INTO job_claims (job, fire_time, holder, claimed_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job, fire_time) DO NOTHING",
            [(job, iso_ts(fire_time), holder, iso_ts(at))],
        )
        return inserted == 1

    async def last_claim(self, job: str) -> dt.datetime | None:
        """The latest claimed fire time of ``job``."""
        sql = "SELECT MAX(fire_time) FROM job_claims WHERE job = ?"
        rows = await self._run(self._fetch, sql, [job])
        return _parse("fire_time", rows[0][0]) if rows else None
