"""The storage interface every backend implements.

Storage is one narrow, async interface; SQL lives only in the backends. Writes are idempotent
upserts keyed by (symbol, date): loading the same bars twice changes nothing, and a load that
changes a stored bar keeps the old values in ``bar_revisions``.

The values the interface returns and the schemas of its frames live in
:mod:`marketdata.storage.records`, and the frame preparation both backends share in
:mod:`marketdata.storage.prepare`; this module re-exports them (see ``__all__``), so they may
be imported from here as before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import polars as pl

from marketdata.storage.jobs import (
    Checkpoint,
    RunRecord,
    StoreLock,
    WatchEntry,
)
from marketdata.storage.prepare import (
    disjoint_from_stored,
    has_scores,
    prepare_dividends,
    prepare_log,
    prepare_scores,
    prepare_splits,
    prepare_write,
    status_deltas,
)
from marketdata.storage.records import (
    MARK_SCHEMA,
    NEIGHBOUR_SCHEMA,
    READ_SCHEMA,
    REVISION_SCHEMA,
    RULE_COUNT_SCHEMA,
    SPAN_SCHEMA,
    STORED_DIVIDEND_SCHEMA,
    STORED_SPLIT_SCHEMA,
    VALIDATION_DEFAULTS,
    StatusSnapshot,
    StatusTotals,
    SymbolStatus,
    UpsertCounts,
)

__all__ = [
    "MARK_SCHEMA",
    "NEIGHBOUR_SCHEMA",
    "READ_SCHEMA",
    "REVISION_SCHEMA",
    "RULE_COUNT_SCHEMA",
    "SPAN_SCHEMA",
    "STORED_DIVIDEND_SCHEMA",
    "STORED_SPLIT_SCHEMA",
    "VALIDATION_DEFAULTS",
    "StatusSnapshot",
    "StatusTotals",
    "Store",
    "SymbolStatus",
    "UpsertCounts",
    "disjoint_from_stored",
    "has_scores",
    "prepare_dividends",
    "prepare_log",
    "prepare_scores",
    "prepare_splits",
    "prepare_write",
    "status_deltas",
]


class Store(Protocol):
    """What the service layer may ask of a database."""

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        ...

    @property
    def description(self) -> str:
        """Where the data lives, for humans (no password)."""
        ...

    async def upsert_bars(
        self,
        frame: pl.DataFrame,
        *,
        source: str,
        at: dt.datetime,
        log: pl.DataFrame | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> UpsertCounts:
        """Write ``frame`` (bar columns, unique (symbol, date)) in one transaction.

        When ``frame`` carries scores (``quality``, ``flags``, ``validated``), a stored bar
        whose values are unchanged still takes the new scores (no revision: scores are ours,
        not the vendor's). When ``log`` is given (:data:`~marketdata.bars.LOG_SCHEMA`), it
        replaces the ``validation_log`` rows of every (symbol, date) in ``frame``. A
        ``checkpoint`` is applied in the same transaction (see :meth:`save_progress`), with each
        symbol's inserted/updated/unchanged counts from this write added to its run row.
        """
        ...

    async def write_scores(
        self, scores: pl.DataFrame, *, log: pl.DataFrame, at: dt.datetime
    ) -> int:
        """Re-score stored bars (:data:`~marketdata.bars.SCORE_SCHEMA`) and replace their log
        rows; bars changed.

        Rows naming bars that are not stored are ignored.
        """
        ...

    async def read_marks(
        self, symbols: Sequence[str], *, start: dt.date, end: dt.date
    ) -> pl.DataFrame:
        """Which sessions of ``symbols`` in [start, end] hold a bar and whether it passed
        validation (:data:`MARK_SCHEMA`, by symbol and date): the coverage map's one read,
        without the prices."""
        ...

    async def read_neighbourhood(self, spans: pl.DataFrame, *, rows: int) -> pl.DataFrame:
        """Stored bars around each span (:data:`SPAN_SCHEMA`): those in [lo, hi], plus up to
        ``rows`` bars before ``lo`` and ``rows`` after ``hi``; as :data:`NEIGHBOUR_SCHEMA`,
        ordered by symbol and date."""
        ...

    async def read_validation_log(
        self, symbol: str, *, start: dt.date | None = None, end: dt.date | None = None
    ) -> pl.DataFrame:
        """Logged rule hits of ``symbol`` in [start, end] as
        :data:`~marketdata.bars.LOG_SCHEMA`, by date."""
        ...

    async def rule_counts(self, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """How often each rule fired per symbol (:data:`RULE_COUNT_SCHEMA`)."""
        ...

    async def set_gap_counts(self, counts: pl.DataFrame) -> None:
        """Store per-symbol missing-session counts (columns ``symbol``, ``gap_count``)."""
        ...

    async def upsert_splits(self, frame: pl.DataFrame, *, source: str, at: dt.datetime) -> int:
        """Store splits (:data:`~marketdata.bars.SPLIT_SCHEMA`); rows new or changed."""
        ...

    async def upsert_dividends(self, frame: pl.DataFrame, *, source: str, at: dt.datetime) -> int:
        """Store dividends (:data:`~marketdata.bars.DIVIDEND_SCHEMA`); rows new or changed."""
        ...

    async def read_splits(self, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """Stored splits (:data:`STORED_SPLIT_SCHEMA`) by symbol and date; all when None."""
        ...

    async def read_dividends(self, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """Stored dividends (:data:`STORED_DIVIDEND_SCHEMA`) by symbol and date."""
        ...

    async def read_bars(
        self,
        symbol: str,
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
        validated_only: bool = False,
        min_quality: float | None = None,
        as_of: dt.datetime | None = None,
    ) -> pl.DataFrame:
        """Stored bars of ``symbol`` in [start, end], oldest first, as :data:`READ_SCHEMA`.

        With ``as_of``, the bars as this database knew them then (from ``bar_revisions``):
        bars first written later are absent, bars changed later show their earlier values.
        """
        ...

    async def read_revisions(self, symbol: str) -> pl.DataFrame:
        """Earlier versions of ``symbol``'s bars, oldest revision first."""
        ...

    async def symbol_statuses(self, symbols: Sequence[str] | None = None) -> list[SymbolStatus]:
        """Per-symbol summaries of stored symbols (those with bars), ordered by symbol; all of
        them when ``symbols`` is None."""
        ...

    # -- the status table's watched flags and its totals, for the status page ---------------

    async def watched_symbols(self) -> list[str]:
        """Symbols whose status row is flagged watched, ordered."""
        ...

    async def set_watched(
        self, symbols: Sequence[str], *, watched: bool = True, only: bool = False, at: dt.datetime
    ) -> None:
        """Flag ``symbols`` watched (True; a symbol with no bars gets an empty status row) or
        not (False). With ``only`` (and ``watched``), every other symbol is unflagged. Empty
        rows no longer watched are deleted. One transaction."""
        ...

    async def status_rows(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        behind_before: dt.date | None = None,
    ) -> list[SymbolStatus]:
        """Stored or watched symbols' rows (empty ones for watched symbols without bars), by
        symbol, after ``after``, at most ``limit``; with ``behind_before`` only the stale ones
        (as counted in :meth:`status_snapshot`'s totals)."""
        ...

    async def calls_since(self, at: dt.datetime) -> int:
        """Upstream calls made by backfill runs started at or after ``at``."""
        ...

    async def status_snapshot(
        self,
        *,
        behind_before: dt.date,
        stale_limit: int,
        after: str | None,
        limit: int,
        stale_only: bool,
        calls_since: dt.datetime,
        source: str,
    ) -> StatusSnapshot:
        """One status page's reads in one go (one worker-thread hop on SQLite, one pipelined
        round trip on PostgreSQL): counts and sums over every stored or watched symbol, whose
        ``stale`` counts the watched ones with nothing stored or a last stored session before
        ``behind_before``; up to ``stale_limit`` of those, the most behind first (nothing
        stored, then by last session, then by symbol); :meth:`status_rows` (only the stale
        ones with ``stale_only``); the latest run; :meth:`calls_since`; :meth:`has_source`."""
        ...

    async def purge_symbol(self, symbol: str) -> int:
        """Delete every bar, revision, validation row, split and dividend of ``symbol`` and
        empty its status (a watched symbol keeps an empty, watched status row); rows gone."""
        ...

    async def has_source(self, source: str | None = None) -> bool:
        """Whether any symbol's latest write came from ``source`` (None: whether any symbol is
        stored at all); one indexed lookup in the status table."""
        ...

    # -- watchlist, backfill runs, service state, claims, locks ------------------------------

    async def watchlist(self) -> list[WatchEntry]:
        """Every row of the watchlist (active or not), ordered by symbol."""
        ...

    async def save_watch(self, entries: Sequence[WatchEntry]) -> None:
        """Insert or update rows: ``active``, ``origin``, ``years`` and ``added_at`` are set;
        ``checked_from`` and ``actions_checked`` of an existing row are kept."""
        ...

    async def mark_actions_checked(self, symbols: Sequence[str], day: dt.date) -> None:
        """Record that splits and dividends of ``symbols`` were fetched up to ``day``."""
        ...

    async def create_run(
        self,
        *,
        trigger: str,
        provider: str,
        at: dt.datetime,
        symbols: Sequence[tuple[str, dt.date | None, dt.date | None]],
        message: str | None = None,
    ) -> int:
        """Start a run (status ``running``) with one ``pending`` row per (symbol, start, end);
        its id."""
        ...

    async def save_progress(self, checkpoint: Checkpoint, *, at: dt.datetime) -> None:
        """Apply a checkpoint that comes with no bars, in one transaction.

        Adds ``calls``/``errors`` to the run; per symbol, moves ``checkpoint`` forward to
        ``through`` (never back), adds ``calls``, sets ``status``/``error`` when given, lowers
        the watchlist's ``checked_from`` to the given one (never raises it), and stamps
        ``symbol_status.last_fetch`` (success) or ``last_error`` (failure) where that row exists.
        """
        ...

    async def finish_run(
        self, run_id: int, *, status: str, at: dt.datetime, message: str | None = None
    ) -> None:
        """End a run; its symbols still ``pending``/``running`` become ``interrupted``."""
        ...

    async def mark_interrupted(self, *, at: dt.datetime, message: str) -> list[int]:
        """End every ``running`` run as ``interrupted`` (the caller holds the backfill lock, so
        they are dead); their ids."""
        ...

    async def read_run(self, run_id: int) -> RunRecord | None:
        """One run with its symbols (by symbol), or None."""
        ...

    async def list_runs(self, *, limit: int = 20, trigger: str | None = None) -> list[RunRecord]:
        """The latest runs, newest first, without their symbols."""
        ...

    async def get_state(self, key: str) -> str | None:
        """A stored service-state value."""
        ...

    async def set_state(self, key: str, value: str | None, *, at: dt.datetime) -> None:
        """Store (or with None, delete) a service-state value."""
        ...

    async def claim(
        self, job: str, fire_time: dt.datetime, *, holder: str, at: dt.datetime
    ) -> bool:
        """Claim one firing of a scheduled job; True for exactly one caller per (job, fire_time)."""
        ...

    async def last_claim(self, job: str) -> dt.datetime | None:
        """The latest fire time of ``job`` that was claimed."""
        ...

    async def acquire_lock(self, name: str, *, holder: str, ttl: float = 60.0) -> StoreLock | None:
        """Take the named lock, or None if someone alive holds it.

        PostgreSQL: a session advisory lock on a dedicated connection (freed if the process
        dies). SQLite: a lease row renewed every ``ttl / 3`` seconds, taken over when it expired
        or its holder's process on this host is gone.
        """
        ...

    async def ping(self) -> None:
        """Raise :class:`~marketdata.errors.StorageError` unless the database answers."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
