"""Ingest benchmark: our import path against a raw baseline, on SQLite and PostgreSQL.

Run (defaults: 1,000 symbols x 1,260 business days, both backends, 10 M-row peak-RSS check)::

    uv run python bench/ingest.py [--symbols 1000] [--days 1260] \
        [--backend sqlite|postgresql|both] [--pg-url postgresql://127.0.0.1/postgres] \
        [--chunk-rows 200000] [--rss-rows 10000000 | --no-rss]

"ours" times ``import_files`` from the CSV file to committed rows in a fresh database (schema
created before the clock starts). The raw baseline loads the same rows, already parsed, into a
bare copy of ``bars``: one binary COPY on PostgreSQL (pgpq encoding + COPY + commit), one
``executemany`` transaction on SQLite. Target: ours >= 0.5x raw on each backend. The peak RSS of
a 10 M-row import into SQLite is measured in a child process (target < 500 MB). PostgreSQL runs
use throw-away databases named ``marketdata_bench_<random>``, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import re
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pgpq
import polars as pl
import psycopg
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from marketdata.providers.files import open_bar_file
from marketdata.service.ingest import ImportReport, import_files
from marketdata.storage import open_store
from marketdata.storage.urls import DatabaseUrl

COLUMNS = (
    "symbol, date, open, high, low, close, volume, vwap, transactions, "
    "source, quality, flags, validated, ingested_at"
)
ARROW_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("date", pa.date32()),
        *[(c, pa.float64()) for c in ("open", "high", "low", "close", "volume", "vwap")],
        ("transactions", pa.int64()),
        ("source", pa.string()),
        ("quality", pa.float64()),
        ("flags", pa.int64()),
        ("validated", pa.bool_()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)
SQLITE_PRAGMAS = (
    "journal_mode = WAL",
    "synchronous = NORMAL",
    "foreign_keys = ON",
    "busy_timeout = 10000",
    "temp_store = MEMORY",
    "cache_size = -65536",
)
console = Console() if sys.stdout.isatty() else Console(width=120)


def generate(first: int, count: int, days: int, seed: int = 20_260_101) -> pl.DataFrame:
    """Symbols ``first+1 .. first+count`` x ``days`` business days, sorted by (symbol, date)."""
    rng = np.random.default_rng([seed, first])
    shape = (count, days)
    dates = np.busday_offset(np.datetime64("2000-01-03"), np.arange(days), roll="forward")
    close = rng.uniform(5, 500, (count, 1)) * np.exp(np.cumsum(rng.normal(0, 0.02, shape), 1))
    open_ = close * np.exp(rng.normal(0, 0.01, shape))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, shape))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, shape))
    names = np.array([f"S{i:04d}" for i in range(first + 1, first + count + 1)])
    return pl.DataFrame(
        {
            "symbol": np.repeat(names, days),
            "date": np.tile(dates, count),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": rng.lognormal(13, 1, count * days),
            "vwap": (low + (high - low) * rng.uniform(0.2, 0.8, shape)).ravel(),
            "transactions": rng.integers(100, 200_000, count * days),
        }
    ).sort("symbol", "date")


def write_csv_in_blocks(path: Path, symbols: int, days: int, block: int = 100) -> None:
    """Write a big CSV block by block, never holding all rows in memory."""
    with path.open("wb") as out:
        for first in range(0, symbols, block):
            part = generate(first, min(block, symbols - first), days)
            part.write_csv(out, include_header=first == 0)


async def run_ours(url: str, csv: Path, chunk_rows: int) -> tuple[float, float, ImportReport]:
    """Seconds of the first import and of a re-import of the same file (all unchanged)."""
    store = await open_store(url)  # creates the schema, before the clock
    try:
        t0 = time.perf_counter()
        first = await import_files(
            store, [open_bar_file(csv)], at=dt.datetime.now(dt.UTC), chunk_rows=chunk_rows
        )
        t1 = time.perf_counter()
        again = await import_files(
            store, [open_bar_file(csv)], at=dt.datetime.now(dt.UTC), chunk_rows=chunk_rows
        )
        t2 = time.perf_counter()
    finally:
        await store.aclose()
    rows = first.counts.inserted
    if first.rejected_count or again.counts.unchanged != rows:
        msg = f"unexpected import counts: {first.counts} then {again.counts}"
        raise RuntimeError(msg)
    return t1 - t0, t2 - t1, first


def with_write_columns(frame: pl.DataFrame, at: dt.datetime) -> pl.DataFrame:
    return frame.with_columns(
        source=pl.lit("file:raw"),
        quality=pl.lit(None, pl.Float64),
        flags=pl.lit(0, pl.Int64),
        validated=pl.lit(False),  # noqa: FBT003
        ingested_at=pl.lit(at).cast(pl.Datetime("us", "UTC")),
    )


def raw_postgres(conninfo: str, frame: pl.DataFrame) -> float:
    """One binary COPY of all rows into a bare copy of ``bars``: encode + COPY + commit."""
    table = with_write_columns(frame, dt.datetime.now(dt.UTC)).to_arrow().cast(ARROW_SCHEMA)
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE raw_bars (LIKE bars INCLUDING ALL)")
        conn.commit()
        t0 = time.perf_counter()
        encoder = pgpq.ArrowToPostgresBinaryEncoder(table.schema)
        with conn.cursor().copy(f"COPY raw_bars ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encoder.write_header())
            for batch in table.to_batches(max_chunksize=65_536):
                copy.write(encoder.write_batch(batch))
            copy.write(encoder.finish())
        conn.commit()
        seconds = time.perf_counter() - t0
        stored = conn.execute("SELECT count(*) FROM raw_bars").fetchone()
    if not stored or stored[0] != frame.height:
        raise RuntimeError(f"raw COPY stored {stored} rows, expected {frame.height}")
    return seconds


def raw_sqlite(schema_db: Path, target: Path, frame: pl.DataFrame) -> float:
    """One ``executemany`` transaction of pre-built tuples into a bare copy of ``bars``."""
    with sqlite3.connect(schema_db) as src:
        (ddl,) = src.execute("SELECT sql FROM sqlite_master WHERE name = 'bars'").fetchone()
    db = sqlite3.connect(target, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            db.execute(f"PRAGMA {pragma}")
        db.execute(re.sub(r'^CREATE TABLE\s+"?bars"?', "CREATE TABLE raw_bars", ddl))
        rows = (
            with_write_columns(frame, dt.datetime.now(dt.UTC))
            .with_columns(
                pl.col("date").dt.to_string("%Y-%m-%d"),
                pl.col("validated").cast(pl.Int8),
                pl.col("ingested_at").dt.to_string("%Y-%m-%dT%H:%M:%S.%6f+00:00"),
            )
            .rows()
        )
        marks = ", ".join("?" * 14)
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(f"INSERT INTO raw_bars ({COLUMNS}) VALUES ({marks})", rows)  # noqa: S608
        db.execute("COMMIT")
        seconds = time.perf_counter() - t0
        (stored,) = db.execute("SELECT count(*) FROM raw_bars").fetchone()
    finally:
        db.close()
    if stored != frame.height:
        raise RuntimeError(f"raw executemany stored {stored} rows, expected {frame.height}")
    return seconds


def bench_sqlite(tmp: Path, csv: Path, frame: pl.DataFrame, chunk_rows: int) -> list[tuple]:
    ours_db = tmp / "ours.db"
    first, again, _ = asyncio.run(run_ours(f"sqlite:///{ours_db}", csv, chunk_rows))
    raw = raw_sqlite(ours_db, tmp / "raw.db", frame)
    return [("sqlite", first, again, raw, "executemany, pre-built tuples")]


def bench_postgres(pg_url: str, csv: Path, frame: pl.DataFrame, chunk_rows: int) -> list[tuple]:
    admin = DatabaseUrl.parse(pg_url)
    name = f"marketdata_bench_{secrets.token_hex(4)}"
    db = admin.with_database(name)
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = db.url.render_as_string(hide_password=False)
        first, again, _ = asyncio.run(run_ours(url, csv, chunk_rows))
        raw = raw_postgres(db.conninfo, frame)
    finally:
        with psycopg.connect(admin.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return [("postgresql", first, again, raw, "binary COPY, pre-parsed Arrow")]


def rss_child(csv: Path, db: Path, chunk_rows: int) -> None:
    """In the child process: import ``csv`` into a new SQLite file, print peak RSS as JSON."""

    async def run() -> int:
        store = await open_store(f"sqlite:///{db}")
        try:
            report = await import_files(
                store, [open_bar_file(csv)], at=dt.datetime.now(dt.UTC), chunk_rows=chunk_rows
            )
        finally:
            await store.aclose()
        return report.counts.inserted

    t0 = time.perf_counter()
    rows = asyncio.run(run())
    seconds = time.perf_counter() - t0
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "seconds": seconds, "maxrss_kib": kib}))  # noqa: T201


def measure_rss(tmp: Path, rows: int, chunk_rows: int) -> dict[str, float]:
    days = min(5_000, rows)
    symbols = max(1, rows // days)
    csv = tmp / "rss.csv"
    console.print(f"Writing {symbols * days:,} rows ({symbols:,} x {days:,}) for the RSS run…")
    write_csv_in_blocks(csv, symbols, days)
    cmd = [sys.executable, __file__, "--rss-child", str(csv), str(tmp / "rss.db")]
    done = subprocess.run(  # noqa: S603  # our own script
        [*cmd, "--chunk-rows", str(chunk_rows)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--symbols", type=int, default=1_000)
    p.add_argument("--days", type=int, default=1_260)
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default="postgresql://127.0.0.1/postgres")
    p.add_argument("--chunk-rows", type=int, default=200_000)
    p.add_argument("--rss-rows", type=int, default=10_000_000)
    p.add_argument("--no-rss", action="store_true")
    p.add_argument("--rss-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child, args.chunk_rows)
        return 0

    versions = ", ".join(f"{n} {md.version(n)}" for n in ("polars", "pgpq", "psycopg", "pyarrow"))
    console.print(
        f"[bold]Ingest benchmark[/]  {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}\n{versions}\n"
        f"N = {args.symbols:,} symbols x D = {args.days:,} days = "
        f"{args.symbols * args.days:,} rows, chunk_rows = {args.chunk_rows:,}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="marketdata_bench_"))
    results: list[tuple] = []
    rss: dict[str, float] | None = None
    try:
        frame = generate(0, args.symbols, args.days)
        csv = tmp / "bars.csv"
        frame.write_csv(csv)
        console.print(f"CSV: {csv.stat().st_size / 1e6:,.0f} MB, {frame.height:,} rows")
        if args.backend in ("sqlite", "both"):
            results += bench_sqlite(tmp, csv, frame, args.chunk_rows)
        if args.backend in ("postgresql", "both"):
            results += bench_postgres(args.pg_url, csv, frame, args.chunk_rows)
        del frame
        if not args.no_rss:
            rss = measure_rss(tmp, args.rss_rows, args.chunk_rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = args.symbols * args.days
    table = Table(title="Ingest throughput (raw baseline gets a head start: data already parsed)")
    for col in ("backend", "path", "rows", "seconds", "rows/s", "ours / raw", "≥ 0.5× raw"):
        table.add_column(col, justify="left" if col in ("backend", "path") else "right")
    for backend, first, again, raw, raw_path in results:
        ratio = raw / first
        met = "[green]yes[/]" if ratio >= 0.5 else "[red]no[/]"  # noqa: PLR2004
        r, n = f"{rows:,}", "—"
        table.add_row(backend, "ours: import_files(CSV)", r, f"{first:.2f}", rate(rows, first),
                      f"{ratio:.2f}×", met)
        table.add_row(backend, f"raw: {raw_path}", r, f"{raw:.2f}", rate(rows, raw), n, n)
        table.add_row(backend, "ours: re-import (all unchanged)", r, f"{again:.2f}",
                      rate(rows, again), f"{raw / again:.2f}×", "(info)")
    console.print(table)
    if rss is not None:
        mb = rss["maxrss_kib"] / 1024
        ok = "[green]yes[/]" if mb < 500 else "[red]no[/]"  # noqa: PLR2004
        console.print(
            f"Peak RSS importing {int(rss['rows']):,} rows into SQLite (child process): "
            f"{mb:,.0f} MB — target < 500 MB met: {ok}  "
            f"({rss['seconds']:.1f} s, {rate(int(rss['rows']), rss['seconds'])} rows/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
