"""Ingest benchmark: our import path against a raw baseline, on SQLite and PostgreSQL.

Run (defaults: 1,000 symbols x 1,260 business days, both backends, 10 M-row peak-RSS check)::

    uv run python bench/ingest.py [--symbols 1000] [--days 1260] \
        [--backend sqlite|postgresql|both] [--pg-url postgresql://127.0.0.1/postgres] \
        [--chunk-rows 100000] [--repeat 3] [--rss-rows 10000000 | --no-rss]

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
from urllib.parse import urlsplit

import numpy as np
import pgpq
import polars as pl
import psycopg
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from marketdata.providers.files import open_bar_file
from marketdata.service.ingest import ImportReport, import_files
from marketdata.settings import Settings
from marketdata.storage import open_store

# The columns of ``bars``, in order, with the Arrow types of what our path copies.
ARROW_SCHEMA = pa.schema(
    [("symbol", pa.string()), ("date", pa.date32())]
    + [(c, pa.float64()) for c in ("open", "high", "low", "close", "volume", "vwap")]
    + [("transactions", pa.int64()), ("source", pa.string()), ("quality", pa.float64())]
    + [("flags", pa.int64()), ("validated", pa.bool_()), ("ingested_at", pa.timestamp("us", "UTC"))]
)
COLUMNS = ", ".join(ARROW_SCHEMA.names)
BAR_COLUMNS = ARROW_SCHEMA.names[:9]  # the CSV layout: symbol,date,open,…,vwap,transactions
SQLITE_PRAGMAS = "journal_mode=WAL synchronous=NORMAL foreign_keys=ON busy_timeout=10000 "
SQLITE_PRAGMAS += "temp_store=MEMORY cache_size=-65536"  # the same as SQLiteStore's
Result = tuple[str, float, float, float, str]  # backend, ours s, re-import s, raw s, raw path
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
    vwap = low + (high - low) * rng.uniform(0.2, 0.8, shape)
    volume = rng.lognormal(13, 1, shape)
    data = {"symbol": np.repeat(names, days), "date": np.tile(dates, count)}
    for name, values in zip(BAR_COLUMNS[2:8], (open_, high, low, close, volume, vwap), strict=True):
        data[name] = values.ravel()
    data["transactions"] = rng.integers(100, 200_000, count * days)
    return pl.DataFrame(data).sort("symbol", "date")


def write_csv_in_blocks(path: Path, symbols: int, days: int, block: int = 100) -> None:
    """Write a big CSV block by block, never holding all rows in memory."""
    with path.open("wb") as out:
        for first in range(0, symbols, block):
            part = generate(first, min(block, symbols - first), days)
            part.write_csv(out, include_header=first == 0)


async def timed_imports(
    url: str, csv: Path, chunk_rows: int, runs: int
) -> list[tuple[float, ImportReport]]:
    """Import ``csv`` ``runs`` times through ``import_files``: (seconds, report) of each."""
    store = await open_store(url)  # creates the schema, before the clock
    done = []
    try:
        for _ in range(runs):
            t0, at = time.perf_counter(), dt.datetime.now(dt.UTC)
            report = await import_files(store, [open_bar_file(csv)], at=at, chunk_rows=chunk_rows)
            done.append((time.perf_counter() - t0, report))
    finally:
        await store.aclose()
    return done


def run_ours(url: str, csv: Path, chunk_rows: int, rows: int) -> tuple[float, float]:
    """Seconds of the first import and of a re-import of the same file (all unchanged)."""
    (first, one), (again, two) = asyncio.run(timed_imports(url, csv, chunk_rows, 2))
    if one.rejected_count or one.counts.inserted != rows or two.counts.unchanged != rows:
        msg = f"unexpected import counts: {one.counts} then {two.counts}"
        raise RuntimeError(msg)
    return first, again


def with_write_columns(frame: pl.DataFrame, at: dt.datetime) -> pl.DataFrame:
    return frame.with_columns(
        source=pl.lit("file:raw"),
        quality=pl.lit(None, pl.Float64),
        flags=pl.lit(0, pl.Int64),
        validated=pl.lit(False),
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
        for pragma in SQLITE_PRAGMAS.split():
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
        db.executemany(f"INSERT INTO raw_bars ({COLUMNS}) VALUES ({marks})", rows)
        db.execute("COMMIT")
        seconds = time.perf_counter() - t0
        (stored,) = db.execute("SELECT count(*) FROM raw_bars").fetchone()
    finally:
        db.close()
    if stored != frame.height:
        raise RuntimeError(f"raw executemany stored {stored} rows, expected {frame.height}")
    return seconds


def bench_sqlite(tmp: Path, csv: Path, frame: pl.DataFrame, chunk_rows: int) -> list[Result]:
    """One round on fresh SQLite files (removed afterwards)."""
    round_dir = Path(tempfile.mkdtemp(dir=tmp))
    try:
        ours_db = round_dir / "ours.db"
        first, again = run_ours(f"sqlite:///{ours_db}", csv, chunk_rows, frame.height)
        raw = raw_sqlite(ours_db, round_dir / "raw.db", frame)
    finally:
        shutil.rmtree(round_dir, ignore_errors=True)
    return [("sqlite", first, again, raw, "executemany, pre-built tuples")]


def bench_postgres(pg_url: str, csv: Path, frame: pl.DataFrame, chunk_rows: int) -> list[Result]:
    name = f"marketdata_bench_{secrets.token_hex(4)}"
    url = urlsplit(pg_url)._replace(path=f"/{name}").geturl()  # same server, fresh database
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        first, again = run_ours(url, csv, chunk_rows, frame.height)
        raw = raw_postgres(url, frame)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return [("postgresql", first, again, raw, "binary COPY, pre-parsed Arrow")]


def best_of(rounds: list[Result]) -> Result:
    """The fastest time of each path over several rounds of one backend."""
    backend, _, _, _, raw_path = rounds[0]
    return (
        backend,
        min(r[1] for r in rounds),
        min(r[2] for r in rounds),
        min(r[3] for r in rounds),
        raw_path,
    )


def rss_child(csv: Path, db: Path, chunk_rows: int) -> None:
    """In the child process: import ``csv`` into a new SQLite file, print peak RSS as JSON."""
    [(seconds, report)] = asyncio.run(timed_imports(f"sqlite:///{db}", csv, chunk_rows, 1))
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    # ru_maxrss survives exec (a child of a big parent inherits its peak); VmHWM is our own.
    if (status := Path("/proc/self/status")).exists():
        kib = int(re.findall(r"VmHWM:\s+(\d+)", status.read_text())[0])
    print(json.dumps({"rows": report.counts.inserted, "seconds": seconds, "maxrss_kib": kib}))


def measure_rss(tmp: Path, rows: int, chunk_rows: int) -> dict[str, float]:
    days = min(5_000, rows)
    symbols = max(1, rows // days)
    csv = tmp / "rss.csv"
    console.print(f"Writing {symbols * days:,} rows ({symbols:,} x {days:,}) for the RSS run…")
    write_csv_in_blocks(csv, symbols, days)
    cmd = [sys.executable, __file__, "--rss-child", str(csv), str(tmp / "rss.db")]
    done = subprocess.run(
        [*cmd, "--chunk-rows", str(chunk_rows)], capture_output=True, text=True, check=False
    )
    if done.returncode:
        msg = f"RSS child failed ({done.returncode}):\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    chunk_default = Settings.model_fields["import_chunk_rows"].default
    for flag, default in (
        ("--symbols", 1_000),
        ("--days", 1_260),
        ("--chunk-rows", chunk_default),
        ("--repeat", 3),
    ):
        p.add_argument(flag, type=int, default=default)
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default="postgresql://127.0.0.1/postgres")
    p.add_argument("--rss-rows", type=int, default=10_000_000)
    p.add_argument("--no-rss", action="store_true")
    p.add_argument("--rss-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        rss_child(args.rss_child[0], args.rss_child[1], args.chunk_rows)
        return 0

    versions = ", ".join(f"{n} {md.version(n)}" for n in ("polars", "pgpq", "psycopg", "pyarrow"))
    console.print(
        f"[bold]Ingest benchmark[/]  {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}\n{versions}\n"
        f"N = {args.symbols:,} symbols x D = {args.days:,} days = "
        f"{args.symbols * args.days:,} rows, chunk_rows = {args.chunk_rows:,}, "
        f"best of {args.repeat} rounds"
    )
    tmp = Path(tempfile.mkdtemp(prefix="marketdata_bench_"))
    results: list[Result] = []
    rss: dict[str, float] | None = None
    rss_error = ""
    try:
        frame = generate(0, args.symbols, args.days)
        csv = tmp / "bars.csv"
        frame.write_csv(csv)
        console.print(f"CSV: {csv.stat().st_size / 1e6:,.0f} MB, {frame.height:,} rows")
        for backend in ("sqlite", "postgresql"):
            if args.backend not in (backend, "both"):
                continue
            # Fresh databases each round; the best round of each path is reported.
            rounds: list[Result] = []
            for _ in range(max(1, args.repeat)):
                if backend == "sqlite":
                    rounds += bench_sqlite(tmp, csv, frame, args.chunk_rows)
                else:
                    rounds += bench_postgres(args.pg_url, csv, frame, args.chunk_rows)
            results.append(best_of(rounds))
        if not args.no_rss:
            try:
                rss = measure_rss(tmp, args.rss_rows, args.chunk_rows)
            except (RuntimeError, ValueError, OSError) as exc:
                rss_error = str(exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = args.symbols * args.days
    table = Table(title="Ingest throughput (raw baseline gets a head start: data already parsed)")
    for col in ("backend", "path", "rows", "seconds", "rows/s", "ours / raw", "≥ 0.5× raw"):
        table.add_column(col, justify="left" if col in ("backend", "path") else "right")
    for backend, first, again, raw, raw_path in results:
        ratio = raw / first
        met = "[green]yes[/]" if ratio >= 0.5 else "[red]no[/]"
        for path, secs, vs_raw, target in (
            ("ours: import_files(CSV)", first, f"{ratio:.2f}×", met),
            (f"raw: {raw_path}", raw, "—", "—"),
            ("ours: re-import (all unchanged)", again, f"{raw / again:.2f}×", "(info)"),
        ):
            table.add_row(
                backend, path, f"{rows:,}", f"{secs:.2f}", f"{rows / secs:,.0f}", vs_raw, target
            )
    console.print(table)
    if rss is not None:
        mb = rss["maxrss_kib"] / 1024
        ok = "[green]yes[/]" if mb < 500 else "[red]no[/]"
        console.print(
            f"Peak RSS importing {int(rss['rows']):,} rows into SQLite (child process, VmHWM): "
            f"{mb:,.0f} MB — target < 500 MB met: {ok}  "
            f"({rss['seconds']:.1f} s, {rss['rows'] / rss['seconds']:,.0f} rows/s)"
        )
    if rss_error:
        console.print(f"[red]Peak RSS not measured:[/] {rss_error}")
    return 1 if rss_error else 0  # missed targets are reported, not an error


if __name__ == "__main__":
    sys.exit(main())
