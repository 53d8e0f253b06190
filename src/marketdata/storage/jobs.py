"""Values the storage layer keeps for the backfill engine and the scheduler.

The watchlist, backfill runs with their per-symbol progress, small pieces of service state,
trigger claims (each scheduled trigger runs once) and locks (one backfill at a time). The
service decides what these mean; storage only keeps them, atomically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import polars as pl

#: Status of a run: ``running`` until it ends ``succeeded`` (every symbol done), ``partial``
#: (some symbols failed), ``failed`` (nothing could be done) or ``interrupted`` (stopped by the
#: user, or found dead after a crash).
RunStatus = Literal["running", "succeeded", "partial", "failed", "interrupted"]
#: Status of one symbol within a run.
SymbolRunStatus = Literal["pending", "running", "done", "failed", "interrupted"]
#: Where a watchlist entry came from: ``MARKETDATA_SYMBOLS`` or ``marketdata symbols add``.
Origin = Literal["config", "user"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchEntry:
    """One row of the watchlist (``symbols`` table)."""

    symbol: str
    active: bool = True
    origin: Origin = "user"
    years: int | None = None  # history wanted; None = the configured default
    added_at: dt.datetime
    checked_from: dt.date | None = None  # the vendor was asked back to here (no need again)
    actions_checked: dt.date | None = None  # splits/dividends fetched up to this day


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolProgress:
    """What one written chunk means for one symbol of a run."""

    symbol: str
    through: dt.date | None = None  # latest session now written (the checkpoint); None keeps
    checked_from: dt.date | None = None  # the vendor answered for sessions from here on
    calls: int = 0  # upstream calls spent on this symbol alone (range requests)
    status: SymbolRunStatus | None = None  # new status; None keeps the current one
    error: str | None = None  # why the symbol failed (with status "failed")


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """Progress saved in the same transaction as the bars it describes."""

    run_id: int
    calls: int = 0  # upstream calls this chunk took, added to the run
    errors: int = 0  # failures to add to the run's error count
    symbols: tuple[SymbolProgress, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSymbol:
    """Progress of one symbol in a run (``backfill_run_symbols``)."""

    symbol: str
    status: str
    start_date: dt.date | None
    end_date: dt.date | None
    checkpoint: dt.date | None
    calls: int
    inserted: int
    updated: int
    unchanged: int
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One backfill run (``backfill_runs``), with its symbols when asked for."""

    id: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    trigger: str
    provider: str
    calls: int
    inserted: int
    updated: int
    unchanged: int
    errors: int
    message: str | None
    symbols: tuple[RunSymbol, ...] = ()


class StoreLock(Protocol):
    """A named lock held in the database until released (or its holder dies)."""

    @property
    def name(self) -> str:
        """The lock's name."""
        ...

    async def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...


def written_by_symbol(
    frame: pl.DataFrame, changed: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, tuple[int, int, int]]:
    """Per symbol of a written ``frame``: (inserted, updated, unchanged), for checkpoints.

    ``changed`` gives (inserted, updated) per symbol, a symbol absent from it changed nothing;
    None means every row was inserted.
    """
    out: dict[str, tuple[int, int, int]] = {}
    for symbol, rows in frame.group_by("symbol").len().iter_rows():
        inserted, updated = (rows, 0) if changed is None else changed.get(symbol, (0, 0))
        out[symbol] = (inserted, updated, rows - inserted - updated)
    return out


def checkpoint_params(
    checkpoint: Checkpoint, counts: Mapping[str, tuple[int, int, int]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Bound parameters for applying ``checkpoint`` after a write that did ``counts``.

    The run's (``run_id``, ``calls``, ``errors`` and the write's totals), then one set per
    symbol of the checkpoint: its progress, what the write did to it (zeros when it had no
    rows), and which ``symbol_status`` stamp it gets (``failed``: the error; ``fetched``: the
    fetch time).
    """
    run = {
        "run_id": checkpoint.run_id,
        "calls": checkpoint.calls,
        "errors": checkpoint.errors,
        **{k: sum(c[i] for c in counts.values()) for i, k in enumerate(_COUNTS)},
    }
    symbols = [
        {
            "run_id": checkpoint.run_id,
            "symbol": p.symbol,
            "through": p.through,
            "checked_from": p.checked_from,
            "calls": p.calls,
            **dict(zip(_COUNTS, counts.get(p.symbol, (0, 0, 0)), strict=True)),
            "status": p.status,
            "error": p.error,
            "failed": p.status == "failed",
            "fetched": p.status != "failed"
            and (p.through is not None or p.checked_from is not None),
        }
        for p in checkpoint.symbols
    ]
    return run, symbols


_COUNTS = ("inserted", "updated", "unchanged")
