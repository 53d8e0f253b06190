"""Exporting stored bars: one CSV or Parquet file, or a portable Parquet dataset.

Symbols are read one at a time, so memory stays bounded by the largest symbol's history.
Floats are written in their shortest exact form, so every value survives a round trip bit for
bit. A file's name decides its format unless one is given (:func:`output_format`):
``.csv``, ``.csv.gz`` (gzip-compressed CSV), ``.parquet`` or ``.pq``; a format that
contradicts the name is refused, so every export imports back.

A **dataset** (``export --format parquet --out DIR``) is a Hive-partitioned directory that
pandas, polars, pyarrow, DuckDB and Spark read as one table, and ``marketdata import DIR``
loads back (how a database moves from SQLite to PostgreSQL)::

    DIR/symbol=AAPL/part-0.parquet     date, open, high, low, close, volume, vwap, transactions
    DIR/symbol=BRK.B/part-0.parquet
    DIR/_splits.parquet                the symbols' splits and dividends (import layout)
    DIR/_dividends.parquet
    DIR/_marketdata.json               manifest: version, time, symbols and row counts

The symbol lives only in the directory name, as Hive, Spark, pandas and pyarrow write it:
a ``symbol`` column inside the files as well makes pyarrow and pandas refuse the dataset (the
two types clash). Names are percent-encoded where a character is unsafe in a path (``A/B`` is
``symbol=A%2FB``), which every Hive reader decodes. Metadata names start with ``_``, which
Hive-style readers skip. The manifest is written first marked incomplete and completed last,
so an interrupted export is recognised: import refuses it and ``--overwrite`` replaces it.

The layout's names, the checks on the directory exported into and reading a dataset back
(its manifest, its splits and dividends) live in :mod:`marketdata.service.dataset` and are
re-exported here.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import polars as pl
import pyarrow.parquet as pq

from marketdata import __version__
from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.errors import InputError, NotFound
from marketdata.service.dataset import (
    DATASET_FORMAT,
    DATASET_VERSION,
    DIVIDENDS_FILE,
    MANIFEST,
    PART_COLUMNS,
    PART_FILE,
    PARTITION_KEY,
    SPLITS_FILE,
    DatasetState,
    Manifest,
    check_directory,
    dataset_state,
    import_actions,
    partition_name,
    prepare_directory,
    read_manifest,
)
from marketdata.storage.base import Store

__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "DIVIDENDS_FILE",
    "FORMAT_NAMES",
    "MANIFEST",
    "PARTITION_KEY",
    "PART_COLUMNS",
    "PART_FILE",
    "SPLITS_FILE",
    "DatasetReport",
    "DatasetState",
    "ExportFormat",
    "Manifest",
    "check_directory",
    "dataset_state",
    "export_dataset",
    "export_symbols",
    "import_actions",
    "is_dataset_target",
    "output_format",
    "partition_name",
    "prepare_directory",
    "read_manifest",
    "stored_symbols",
]

ExportFormat = Literal["csv", "parquet"]


#: What a file name's ending says: (format, gzip-compressed). Checked in this order.
_SUFFIXES: tuple[tuple[str, ExportFormat, bool], ...] = (
    (".csv.gz", "csv", True),
    (".csv", "csv", False),
    (".parquet", "parquet", False),
    (".pq", "parquet", False),
    (".gz", "csv", True),
)
#: How formats are named in messages.
FORMAT_NAMES: dict[ExportFormat, str] = {"csv": "CSV", "parquet": "Parquet"}
#: gzip level for ``.csv.gz``: gzip's own default, several times faster than level 9.
_GZIP_LEVEL = 6


def output_format(out: Path, fmt: ExportFormat | None) -> tuple[ExportFormat, bool]:
    """(format, gzip) for writing ``out``; ``fmt`` is the one asked for, ``None`` if none was.

    With no format asked for, the name decides (``.csv``, ``.csv.gz`` or ``.gz``, ``.parquet``
    or ``.pq``), and any other name is CSV. A format that contradicts the name is an
    :class:`InputError`, as is a gzip name for Parquet (Parquet is compressed inside).
    """
    name = out.name.lower()
    implied = next(((f, z) for suffix, f, z in _SUFFIXES if name.endswith(suffix)), None)
    if implied and implied[1] and name[: -len(".gz")].endswith((".parquet", ".pq")):
        msg = (
            f"--out {out.name}: Parquet is not gzip-compressed (it is compressed inside): "
            f"name the file {out.name[: -len('.gz')]}"
        )
        raise InputError(msg)
    if implied is None:
        return fmt or "csv", False
    if fmt is not None and fmt != implied[0]:
        wanted = ".parquet or .pq" if fmt == "parquet" else ".csv or .csv.gz"
        msg = (
            f"--format {fmt} contradicts --out {out.name} (a {FORMAT_NAMES[implied[0]]} name): "
            f"drop --format, or name the file with {wanted}"
        )
        raise InputError(msg)
    return implied


def _arrow_schema(columns: dict[str, pl.DataType]) -> Any:
    return pl.DataFrame(schema=columns).to_arrow().schema


async def _check_stored(store: Store, symbols: Sequence[str]) -> None:
    known = {s.symbol for s in await store.symbol_statuses(symbols)}
    missing = [s for s in symbols if s not in known]
    if missing:
        msg = f"no bars stored for {', '.join(missing)}"
        raise NotFound(msg)


async def export_symbols(
    store: Store,
    symbols: Sequence[str],
    *,
    fmt: ExportFormat,
    out: Path | IO[bytes],
    start: dt.date | None = None,
    end: dt.date | None = None,
    progress: Callable[[str, int], None] | None = None,
    compress: bool = False,
) -> int:
    """Write the bars of ``symbols`` to ``out`` (a path, or a binary stream for CSV).

    ``compress`` gzips a CSV file (``.csv.gz``; see :func:`output_format`). Returns the number
    of rows written. A symbol with no stored bars raises :class:`NotFound` before anything is
    written.
    """
    await _check_stored(store, symbols)
    if fmt == "parquet" and not isinstance(out, Path):
        msg = "Parquet output needs a file: pass --out PATH"
        raise InputError(msg)
    if isinstance(out, Path) and out.is_dir():
        msg = f"{out} is a directory: a CSV export is one file (--format parquet writes a dataset)"
        raise InputError(msg)
    schema = _arrow_schema(BAR_SCHEMA)
    total = 0
    writer: pq.ParquetWriter | None = None
    handle: IO[bytes] | gzip.GzipFile | None = None
    try:
        if fmt == "parquet":
            assert isinstance(out, Path)  # checked above
            writer = pq.ParquetWriter(out, schema, compression="zstd")
        elif isinstance(out, Path) and compress:
            # mtime 0: the same bars give the same bytes
            handle = gzip.GzipFile(out, "wb", compresslevel=_GZIP_LEVEL, mtime=0)
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


# -- datasets ---------------------------------------------------------------------------------


def is_dataset_target(out: Path, fmt: ExportFormat) -> bool:
    """Whether ``--out`` asks for a dataset: Parquet into a directory, or a new suffix-less path.

    ``bars.parquet`` (or any existing file, or a name with a suffix) stays one file.
    """
    return fmt == "parquet" and (out.is_dir() or (not out.exists() and not out.suffix))


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetReport:
    """What a dataset export wrote."""

    path: Path
    symbols: int
    rows: int
    splits: int
    dividends: int


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (a reader never sees half of it)."""
    temporary = out / f"{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    temporary.replace(out / MANIFEST)


async def export_dataset(
    store: Store,
    symbols: Sequence[str],
    *,
    out: Path,
    at: dt.datetime,
    start: dt.date | None = None,
    end: dt.date | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> DatasetReport:
    """Write ``symbols`` as a Hive-partitioned Parquet dataset in ``out`` (see the module doc).

    Splits and dividends of the symbols are written whole (a split after ``end`` still
    adjusts the bars before it). A symbol with no stored bars raises :class:`NotFound`.
    """
    symbols = list(dict.fromkeys(symbols))  # a symbol named twice is written once
    await _check_stored(store, symbols)
    prepare_directory(out, overwrite=overwrite)
    manifest: dict[str, Any] = {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "complete": False,
        "marketdata_version": __version__,
        "exported_at": at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "partitioning": {"flavor": "hive", "key": PARTITION_KEY, "file": PART_FILE},
        "columns": {c: str(BAR_SCHEMA[c]) for c in PART_COLUMNS},
    }
    _write_manifest(out, manifest)
    schema = _arrow_schema({c: BAR_SCHEMA[c] for c in PART_COLUMNS})
    written: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        bars = (await store.read_bars(symbol, start=start, end=end)).select(PART_COLUMNS)
        if bars.height:
            directory = out / partition_name(symbol)
            try:
                directory.mkdir()
            except FileExistsError:
                folded = directory.name.casefold()
                other = next(
                    (s for s, e in written.items() if e["path"].casefold() == folded), "another"
                )
                msg = (
                    f"{symbol} and {other} differ only in letter case, and the file system "
                    f"of {out} does not tell them apart: export them separately"
                )
                raise InputError(msg) from None
            pq.write_table(bars.to_arrow().cast(schema), directory / PART_FILE, compression="zstd")
            written[symbol] = {
                "path": directory.name,
                "rows": bars.height,
                "first_date": bars["date"][0].isoformat(),
                "last_date": bars["date"][-1].isoformat(),
            }
        if progress:
            progress(symbol, bars.height)
    chosen = pl.col("symbol").is_in(list(symbols))
    splits = (await store.read_splits()).filter(chosen).select(list(SPLIT_SCHEMA))
    dividends = (await store.read_dividends()).filter(chosen).select(list(DIVIDEND_SCHEMA))
    splits.write_parquet(out / SPLITS_FILE, compression="zstd")
    dividends.write_parquet(out / DIVIDENDS_FILE, compression="zstd")
    rows = sum(entry["rows"] for entry in written.values())
    manifest.update(
        complete=True,
        rows=rows,
        symbols=written,
        actions={
            "splits": {"path": SPLITS_FILE, "rows": splits.height},
            "dividends": {"path": DIVIDENDS_FILE, "rows": dividends.height},
        },
    )
    _write_manifest(out, manifest)
    return DatasetReport(
        path=out,
        symbols=len(written),
        rows=rows,
        splits=splits.height,
        dividends=dividends.height,
    )
