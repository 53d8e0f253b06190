"""Simulated data: a first run without an API key still has something true-to-life to serve.

Rules (the service's, not the store's):

- simulated bars are written only into a database with no bars at all, with source
  ``synthetic``; a database holding real data never gets simulated bars;
- a symbol never mixes simulated and real bars: before the first real write of a symbol, its
  simulated history is purged (:func:`replace_synthetic`);
- the simulated history comes with its splits and dividends, and with a few deliberate faults
  (:func:`plant_faults`: a broken bar, a missing session, a volume spike, a zero-volume day) so
  that validation, gap detection and the dashboard have something to show.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Literal

import polars as pl

from marketdata.providers.simulator import MarketSimulator
from marketdata.service.quality import write_bars
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
    return mode_of(synthetic=await store.has_source(SYNTHETIC), stored=await store.has_source())


def mode_of(*, synthetic: bool, stored: bool) -> DataMode:
    """``simulated`` if any symbol holds synthetic bars, ``empty`` with none stored, else
    ``real``."""
    if synthetic:
        return "simulated"
    return "real" if stored else "empty"


async def seed_if_empty(
    store: Store,
    *,
    symbols: Sequence[str],
    years: int,
    today: dt.date,
    at: dt.datetime,
    seed: int = 0,
    faults: bool = True,
) -> UpsertCounts | None:
    """Fill an empty database with ``years`` of simulated bars; ``None`` if it holds any bars.

    The simulator's splits and dividends are stored too; with ``faults``, a few bars are
    broken on purpose (:func:`plant_faults`).
    """
    if await store.has_source():
        return None
    start = today - dt.timedelta(days=round(365.25 * years))
    simulator = MarketSimulator(seed=seed)
    names = list(symbols)
    await store.upsert_splits(simulator.splits(names, start, today), source=SYNTHETIC, at=at)
    await store.upsert_dividends(simulator.dividends(names, start, today), source=SYNTHETIC, at=at)
    frame = simulator.bars(names, start, today)
    if faults:
        frame = plant_faults(frame)
    counts = await write_bars(store, frame, source=SYNTHETIC, at=at)
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


def plant_faults(bars: pl.DataFrame) -> pl.DataFrame:
    """``bars`` with four deliberate faults, at fixed places so they are easy to find.

    Counting sessions back from each symbol's last bar: on the 2nd symbol (sorted), the bar 10
    sessions back has its high below its low; on the 3rd, the bar 20 back is removed (a missing
    session); on the 4th, the bar 30 back trades 50× its volume; on the 5th, the bar 40 back
    has zero volume. Symbols or histories too short for a fault simply do without it.
    """
    names = bars["symbol"].unique().sort().to_list()
    back = pl.col("date").rank("ordinal", descending=True).over("symbol") - 1

    def at(position: int, sessions_back: int) -> pl.Expr:
        if position >= len(names):
            return pl.lit(False)
        hit: pl.Expr = (pl.col("symbol") == names[position]) & (back == sessions_back)
        return hit

    broken, missing, spike, silent = at(1, 10), at(2, 20), at(3, 30), at(4, 40)
    return bars.filter(~missing).with_columns(
        pl.when(broken).then(pl.col("low") * 0.99).otherwise(pl.col("high")).alias("high"),
        pl.when(spike)
        .then(pl.col("volume") * 50)
        .when(silent)
        .then(0.0)
        .otherwise(pl.col("volume"))
        .alias("volume"),
    )
