"""The values the storage interface returns, and the column schemas of the frames it passes.

Record dataclasses and frame schemas are part of the contract of
:class:`~marketdata.storage.base.Store` (``Store`` in the notes below); they live here so that
module holds the protocol alone. :mod:`marketdata.storage.base` re-exports every public name,
so either import path works.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA, VALUE_COLUMNS
from marketdata.storage.jobs import RunRecord

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
