"""Simulator benchmark: 10,000 symbols x 20 years of synthetic bars against a numpy baseline.

Run (defaults: 10,000 symbols, 2006-01-01 to 2025-12-31, seed 1)::

    uv run python bench/simulate.py [--symbols 10000] [--start 2006-01-01] [--end 2025-12-31]

Each case runs in its own child process, so its peak RSS (``VmHWM``) is its own; imports and the
one-off calendar build are done before the clock starts. The baseline draws as many standard
normals as there are bars, in one numpy call: the floor for anything that simulates every bar.
"bars()" builds the whole frame (its size is reported: a frame this large is most of the peak);
"iter_bars()" streams it in 128-symbol pieces and drops each one, as an ingest would.
Target: bars() under 20 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata

import numpy as np
from rich.console import Console
from rich.table import Table

from marketdata.calendar import sessions
from marketdata.providers.simulator import MarketSimulator

CASES = {
    "baseline": "baseline: one normal per bar",
    "bars-1": "bars(), 1 worker",
    "bars": "bars(), 2 workers",
    "iter": "iter_bars(), 2 workers",
}


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(case: str, symbols: list[str], start: dt.date, end: dt.date) -> dict[str, float]:
    """Time one case in this process; returns seconds, bars and result size."""
    MarketSimulator(seed=0).bars(["WARMUP"], start, start)  # calendar and imports, untimed
    rows = len(symbols) * sessions(start, end).size
    size = 0.0
    began = time.perf_counter()
    if case == "baseline":
        size = np.random.default_rng(1).standard_normal(rows).nbytes
    elif case == "iter":
        pieces = MarketSimulator(seed=1, workers=2).iter_bars(symbols, start, end)
        assert sum(piece.height for piece in pieces) == rows
    else:
        sim = MarketSimulator(seed=1, workers=1 if case == "bars-1" else 2)
        frame = sim.bars(symbols, start, end)
        size = frame.estimated_size()
        assert frame.height == rows
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "rows": rows, "size_mb": size / 2**20, "peak_mb": peak_rss_mb()}


def child(case: str, args: argparse.Namespace) -> dict[str, float]:
    """Run one case in a fresh interpreter and read back its figures."""
    command = [sys.executable, __file__, "--case", case, "--symbols", str(args.symbols)]
    command += ["--start", args.start.isoformat(), "--end", args.end.isoformat()]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> None:
    """Run every case in a child process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2006, 1, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2025, 12, 31))
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        symbols = [f"SYM{i:05d}" for i in range(args.symbols)]
        print(json.dumps(run_case(args.case, symbols, args.start, args.end)))
        return

    console = Console(width=max(Console().width, 100))
    console.print(
        f"{args.symbols:,} symbols x {args.start} to {args.end}; {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"polars {metadata.version('polars')}"
    )
    results = {case: child(case, args) for case in CASES}
    base = results["baseline"]["seconds"]
    table = Table(title="Synthetic bars")
    for column in ("case", "seconds", "x baseline", "bars/s", "result MB", "peak RSS MB"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for case, r in results.items():
        table.add_row(
            CASES[case],
            f"{r['seconds']:.2f}",
            f"{r['seconds'] / base:.1f}",
            f"{r['rows'] / r['seconds']:,.0f}",
            f"{r['size_mb']:,.0f}" if r["size_mb"] else "-",
            f"{r['peak_mb']:,.0f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
