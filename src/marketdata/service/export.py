"""Exporting stored bars to CSV or Parquet in the import layout (import → export round-trips).

Symbols are read one at a time, so memory stays bounded by the largest symbol's history.
Floats are written in their shortest exact form, so every value survives a round trip bit for
bit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Literal

import polars as pl
import pyarrow.parquet as pq

from marketdata.bars import BAR_SCHEMA
from marketdata.errors import InputError, NotFound
from marketdata.storage.base import Store

ExportFormat = Literal["csv", "parquet"]


async def export_symbols(
    store: Store,
    symbols: Sequence[str],
    *,
    fmt: ExportFormat,
    out: Path | IO[bytes],
    start: dt.date | None = None,
    end: dt.date | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> int:
    """Write the bars of ``symbols`` to ``out`` (a path, or a binary stream for CSV).

    Returns the number of rows written. A symbol with no stored bars raises :class:`NotFound`
    before anything is written.
    """
    known = {s.symbol for s in await store.symbol_statuses(symbols)}
    missing = [s for s in symbols if s not in known]
    if missing:
        msg = f"no bars stored for {', '.join(missing)}"
        raise NotFound(msg)
    if fmt == "parquet" and not isinstance(out, Path):
        msg = "Parquet output needs a file: pass --out PATH"
        raise InputError(msg)
    schema = pl.DataFrame(schema=BAR_SCHEMA).to_arrow().schema
    total = 0
    writer: pq.ParquetWriter | None = None
    handle: IO[bytes] | None = None
    try:
        if fmt == "parquet":
            assert isinstance(out, Path)  # checked above
            writer = pq.ParquetWriter(out, schema, compression="zstd")
        else:
            handle = out.open("wb") if isinstance(out, Path) else out
        for index, symbol in enumerate(symbols):
            bars = await store.read_bars(symbol, start=start, end=end)
            frame = bars.select(
                pl.lit(symbol, pl.String).alias("symbol"),
                *(pl.col(c) for c in BAR_SCHEMA if c != "symbol"),
            )
            if writer is not None:
                writer.write_table(frame.to_arrow().cast(schema))
            elif handle is not None:
                handle.write(frame.write_csv(include_header=index == 0).encode())
            total += frame.height
            if progress:
                progress(symbol, frame.height)
    finally:
        if writer is not None:
            writer.close()
        if handle is not None and isinstance(out, Path):
            handle.close()
    return total


async def stored_symbols(store: Store) -> list[str]:
    """Every symbol with bars, in order."""
    return [s.symbol for s in await store.symbol_statuses() if s.bar_count > 0]
