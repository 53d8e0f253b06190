"""Simulated data: a first run without an API key still has something true-to-life to serve.

Rules (the service's, not the store's):

- simulated bars are written only into a database with no bars at all, with source
  ``synthetic``; a database holding real data never gets simulated bars;
- a symbol never mixes simulated and real bars: before the first real write of a symbol, its
  simulated history is purged (:func:`replace_synthetic`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Literal

from marketdata.providers.simulator import MarketSimulator
from marketdata.storage.base import Store, UpsertCounts

log = logging.getLogger(__name__)

SYNTHETIC: Literal["synthetic"] = "synthetic"
DataMode = Literal["simulated", "real", "empty"]

#: Said wherever simulated data is shown (log, /health, the root page).
SIMULATED_NOTICE = (
    "SIMULATED DATA: no POLYGON_API_KEY is set, so marketdata is serving synthetic bars "
    "(source 'synthetic'). To switch to real data, set POLYGON_API_KEY (or MASSIVE_API_KEY) "
    "and run `marketdata backfill`; real bars replace the simulated ones symbol by symbol."
)


async def data_mode(store: Store) -> DataMode:
    """``simulated`` if any symbol holds synthetic bars, ``empty`` with no bars, else ``real``."""
    if await store.has_source(SYNTHETIC):
        return "simulated"
    return "real" if await store.symbol_statuses() else "empty"


async def seed_if_empty(
    store: Store,
    *,
    symbols: Sequence[str],
    years: int,
    today: dt.date,
    at: dt.datetime,
    seed: int = 0,
) -> UpsertCounts | None:
    """Fill an empty database with ``years`` of simulated bars; ``None`` if it holds any bars."""
    if await store.symbol_statuses():
        return None
    start = today - dt.timedelta(days=round(365.25 * years))
    frame = MarketSimulator(seed=seed).bars(list(symbols), start, today)
    counts = await store.upsert_bars(frame, source=SYNTHETIC, at=at)
    log.warning(SIMULATED_NOTICE, extra={"event": "simulated_data_seeded", "bars": counts.inserted})
    return counts


async def replace_synthetic(store: Store, symbols: Iterable[str]) -> list[str]:
    """Purge simulated bars of ``symbols`` before real data is written; the symbols purged."""
    wanted = sorted(set(symbols))
    if not wanted or not await store.has_source(SYNTHETIC):
        return []
    purged = [s.symbol for s in await store.symbol_statuses(wanted) if s.source == SYNTHETIC]
    for symbol in purged:
        await store.purge_symbol(symbol)
    if purged:
        log.info(
            "replaced simulated bars of %s with real data",
            ", ".join(purged),
            extra={"event": "simulated_replaced", "symbols": purged},
        )
    return purged
