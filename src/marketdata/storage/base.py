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

from marketdata.bars import BAR_SCHEMA, VALUE_COLUMNS

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
        self, frame: pl.DataFrame, *, source: str, at: dt.datetime
    ) -> UpsertCounts:
        """Write ``frame`` (bar columns, unique (symbol, date)) in one transaction."""
        ...

    async def read_bars(
        self,
        symbol: str,
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
        validated_only: bool = False,
        min_quality: float | None = None,
    ) -> pl.DataFrame:
        """Stored bars of ``symbol`` in [start, end], oldest first, as :data:`READ_SCHEMA`."""
        ...

    async def read_revisions(self, symbol: str) -> pl.DataFrame:
        """Earlier versions of ``symbol``'s bars, oldest revision first."""
        ...

    async def symbol_statuses(self, symbols: Sequence[str] | None = None) -> list[SymbolStatus]:
        """Per-symbol summaries, ordered by symbol; all symbols when ``symbols`` is None."""
        ...

    async def purge_symbol(self, symbol: str) -> int:
        """Delete every bar, revision, validation row and the status of ``symbol``; rows gone."""
        ...

    async def has_source(self, source: str) -> bool:
        """Whether any symbol's latest write came from ``source`` (reads the status table)."""
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
