"""The storage interface every backend implements, and the values it returns.

Storage is one narrow, async interface; SQL lives only in the backends. Writes are idempotent
upserts keyed by (symbol, date): loading the same bars twice changes nothing, and a load that
changes a stored bar keeps the old values in ``bar_revisions``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from marketdata.bars import (
    BAR_SCHEMA,
    DIVIDEND_SCHEMA,
    LOG_SCHEMA,
    SCORE_SCHEMA,
    SPLIT_SCHEMA,
    VALUE_COLUMNS,
)
from marketdata.storage.jobs import (
    Checkpoint,
    RunRecord,
    StoreLock,
    WatchEntry,
)

#: Columns a frame handed to :meth:`Store.upsert_bars` may carry besides the bar columns;
#: absent ones default to "not validated yet".
VALIDATION_DEFAULTS: dict[str, tuple[pl.DataType, object]] = {
    "quality": (pl.Float64(), None),
    "flags": (pl.Int64(), 0),
    "validated": (pl.Boolean(), False),
}

_VALUES = {c: BAR_SCHEMA[c] for c in ("date", *VALUE_COLUMNS)}
_VALIDATION = {name: dtype for name, (dtype, _) in VALIDATION_DEFAULTS.items()}
_INSTANT = pl.Datetime("us", "UTC")

#: Columns of :meth:`Store.read_bars` results, in order.
READ_SCHEMA: dict[str, pl.DataType] = {**_VALUES, **_VALIDATION, "ingested_at": _INSTANT}

#: Columns of :meth:`Store.read_revisions` results, in order.
REVISION_SCHEMA: dict[str, pl.DataType] = {
    **_VALUES,
    "source": pl.String(),
    **_VALIDATION,
    "ingested_at": _INSTANT,
    "revised_at": _INSTANT,
    "revised_by": pl.String(),
}


#: Per-symbol date spans asked of :meth:`Store.read_neighbourhood`.
SPAN_SCHEMA: dict[str, pl.DataType] = {"symbol": pl.String(), "lo": pl.Date(), "hi": pl.Date()}

#: Columns of :meth:`Store.read_neighbourhood` results: the symbol, then :data:`READ_SCHEMA`.
NEIGHBOUR_SCHEMA: dict[str, pl.DataType] = {"symbol": pl.String(), **READ_SCHEMA}

#: Columns of :meth:`Store.read_marks` results.
MARK_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "date": pl.Date(),
    "validated": pl.Boolean(),
}

#: Columns of :meth:`Store.rule_counts` results.
RULE_COUNT_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "rule": pl.String(),
    "severity": pl.String(),
    "count": pl.Int64(),
}

#: Columns of stored splits and dividends as read back: the vendor columns plus provenance.
STORED_SPLIT_SCHEMA: dict[str, pl.DataType] = {**SPLIT_SCHEMA, "source": pl.String()}
STORED_DIVIDEND_SCHEMA: dict[str, pl.DataType] = {**DIVIDEND_SCHEMA, "source": pl.String()}


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertCounts:
    """What a write did: new bars, changed bars (revision kept), identical bars (untouched)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
        )

    @property
    def total(self) -> int:
        """Rows handled."""
        return self.inserted + self.updated + self.unchanged


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolStatus:
    """The maintained per-symbol summary (never computed by scanning ``bars``)."""

    symbol: str
    first_date: dt.date | None
    last_date: dt.date | None
    bar_count: int
    validated_count: int
    gap_count: int
    last_fetch: dt.datetime | None
    last_error: str | None
    updated_at: dt.datetime
    source: str | None = None  # source of the latest write (``synthetic`` for simulated data)
    watched: bool = False  # on the watchlist (as last synchronised by the service)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusTotals:
    """Totals over the status table (part of :meth:`Store.status_snapshot`)."""

    symbols: int  # stored or watched
    bars: int
    validated: int
    missing_sessions: int
    stale: int  # watched, and nothing stored or the last stored session is before the given day


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusSnapshot:
    """Everything one status page reads, taken together (:meth:`Store.status_snapshot`)."""

    totals: StatusTotals
    stale: list[str]  # as :meth:`Store.stale_symbols`
    rows: list[SymbolStatus]  # as :meth:`Store.status_rows`
    last_run: RunRecord | None
    calls: int  # as :meth:`Store.calls_since`
    has_source: bool  # as :meth:`Store.has_source` for the source asked about


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
        not the vendor's). When ``log`` is given (:data:`LOG_SCHEMA`), it replaces the
        ``validation_log`` rows of every (symbol, date) in ``frame``. A ``checkpoint`` is
        applied in the same transaction (see :meth:`save_progress`), with each symbol's
        inserted/updated/unchanged counts from this write added to its run row.
        """
        ...

    async def write_scores(
        self, scores: pl.DataFrame, *, log: pl.DataFrame, at: dt.datetime
    ) -> int:
        """Re-score stored bars (:data:`SCORE_SCHEMA`) and replace their log rows; bars changed.

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
        """Logged rule hits of ``symbol`` in [start, end] as :data:`LOG_SCHEMA`, by date."""
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


def prepare_write(frame: pl.DataFrame, *, source: str, at: dt.datetime) -> pl.DataFrame:
    """The frame in the column order of ``bars``, with defaults filled in.

    Raises ``ValueError`` when (symbol, date) repeats: the caller decides which row wins.
    """
    if at.tzinfo is None:
        msg = "ingestion time must be timezone-aware"
        raise ValueError(msg)
    if frame.select(pl.struct("symbol", "date").is_duplicated().any()).item():
        msg = "frame has duplicate (symbol, date) rows"
        raise ValueError(msg)
    cols = [pl.col(c).cast(t) for c, t in BAR_SCHEMA.items()]
    cols.append(pl.lit(source, pl.String()).alias("source"))
    for name, (dtype, default) in VALIDATION_DEFAULTS.items():
        expr = pl.col(name) if name in frame.columns else pl.lit(default)
        cols.append(
            expr.cast(dtype).fill_null(default).alias(name)
            if default is not None
            else expr.cast(dtype).alias(name)
        )
    cols.append(pl.lit(at.astimezone(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("ingested_at"))
    return frame.select(cols)


def has_scores(frame: pl.DataFrame) -> bool:
    """Whether ``frame`` carries all three score columns (so they may overwrite stored ones)."""
    return all(name in frame.columns for name in VALIDATION_DEFAULTS)


def prepare_log(log: pl.DataFrame) -> pl.DataFrame:
    """``log`` in :data:`LOG_SCHEMA` column order and types."""
    return log.select(pl.col(c).cast(t) for c, t in LOG_SCHEMA.items())


def prepare_scores(scores: pl.DataFrame) -> pl.DataFrame:
    """``scores`` in :data:`SCORE_SCHEMA`; refuses repeated (symbol, date)."""
    if scores.select(pl.struct("symbol", "date").is_duplicated().any()).item():
        msg = "scores have duplicate (symbol, date) rows"
        raise ValueError(msg)
    return scores.select(pl.col(c).cast(t) for c, t in SCORE_SCHEMA.items())


def prepare_splits(frame: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Splits ready to store: typed, complete, one row per (symbol, date) (the last wins)."""
    out = frame.select(pl.col(c).cast(t) for c, t in SPLIT_SCHEMA.items()).drop_nulls()
    return out.unique(["symbol", "execution_date"], keep="last", maintain_order=True).with_columns(
        pl.lit(source).alias("source")
    )


def prepare_dividends(frame: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Dividends ready to store; a missing type counts as a regular cash dividend (``CD``).

    Only symbol, ex-date and amount are required; absent optional columns are null.
    """
    out = (
        frame.select(
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in DIVIDEND_SCHEMA.items()
        )
        .with_columns(pl.col("dividend_type").fill_null("CD"))
        .drop_nulls(["symbol", "ex_dividend_date", "cash_amount"])
    )
    return out.unique(
        ["symbol", "ex_dividend_date", "dividend_type"], keep="last", maintain_order=True
    ).with_columns(pl.lit(source).alias("source"))


def status_deltas(frame: pl.DataFrame) -> pl.DataFrame:
    """Per-symbol first/last date, count and validated count of newly inserted rows."""
    return frame.group_by("symbol").agg(
        pl.col("date").min().alias("first_date"),
        pl.col("date").max().alias("last_date"),
        pl.len().alias("inserted"),
        pl.col("validated").cast(pl.Int64).sum().alias("validated"),
    )


def disjoint_from_stored(
    frame: pl.DataFrame, stored: dict[str, tuple[dt.date | None, dt.date | None]]
) -> bool:
    """True when no row of ``frame`` can collide with a stored bar.

    ``stored`` maps symbol → (first_date, last_date) from ``symbol_status``; a symbol's bars all
    lie in that range, so a chunk entirely outside it needs no comparison with stored rows.
    """
    spans = frame.group_by("symbol").agg(
        pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi")
    )
    for symbol, lo, hi in spans.iter_rows():
        first, last = stored.get(symbol, (None, None))
        if first is None or last is None:
            continue
        if not (hi < first or lo > last):
            return False
    return True
