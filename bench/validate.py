"""Validation benchmark: the constraint check and the full rule set on 10 M synthetic bars.

Run (defaults: 4,000 symbols x the sessions of 2016-2025 = 10.06 M bars, best of 3)::

    uv run python bench/validate.py [--symbols 4000] [--start 2016-01-01] [--end 2025-12-31] \
        [--repeat 3] [--seed 1] [--no-shuffled]

Bars, splits and dividends come from ``MarketSimulator`` (raw prices, real splits), built
before any clock starts. The baseline is the obvious one-expression numpy check of the same
row-local constraints (it returns one bool per row, where ``check_constraints`` returns which
rules failed). ``validate`` runs every rule (row-local, calendar, duplicates, jumps explained
by the splits and dividends passed, volume, stale bars) and builds the scores and the log; it
is timed on the simulator's (symbol, date)-sorted frame and, unless ``--no-shuffled``, on the
same rows shuffled. The original plan measured 119,948 bars/s for validation; the targets are
>= 12 M bars/s for the constraint check and >= 1 M bars/s for the full rule set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from marketdata.calendar import sessions
from marketdata.providers.simulator import MarketSimulator
from marketdata.validation import check_constraints, validate

PLAN = 119_948  # bars/s of validation in the original plan
TARGETS = {"constraints": 12_000_000, "full": 1_000_000}
BAR_VALUES = ("open", "high", "low", "close", "volume", "vwap")
Floats = npt.NDArray[np.float64]


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def baseline(o: Floats, h: Floats, lo: Floats, c: Floats, v: Floats, w: Floats) -> np.ndarray:
    """The obvious numpy check: True where a row breaks any row-local constraint."""
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (
            np.isfinite(o)
            & np.isfinite(h)
            & np.isfinite(lo)
            & np.isfinite(c)
            & (o > 0)
            & (h > 0)
            & (lo > 0)
            & (c > 0)
            & (h >= np.maximum(o, c))
            & (lo <= np.minimum(o, c))
            & (h >= lo)
            & (v >= 0)
            & np.isfinite(v)
            & (np.isnan(w) | ((w >= lo * 0.995) & (w <= h * 1.005)))
        )
    return ~ok


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The fastest of ``repeat`` timed calls, in seconds."""
    times = []
    for _ in range(max(1, repeat)):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> int:
    """Build the data, time each case, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=4_000)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2016, 1, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2025, 12, 31))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-shuffled", action="store_true", help="skip the shuffled run")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 110))

    symbols = [f"SYM{i:05d}" for i in range(args.symbols)]
    rows = args.symbols * sessions(args.start, args.end).size
    console.print(
        f"[bold]Validation benchmark[/]  {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"polars {metadata.version('polars')}\n"
        f"{args.symbols:,} symbols x {args.start} to {args.end} = {rows:,} bars, "
        f"best of {args.repeat}"
    )
    began = time.perf_counter()
    sim = MarketSimulator(seed=args.seed)
    bars = sim.bars(symbols, args.start, args.end).rechunk()
    splits = sim.splits(symbols, args.start, args.end)
    dividends = sim.dividends(symbols, args.start, args.end)
    console.print(
        f"Simulated in {time.perf_counter() - began:.1f} s: {bars.height:,} bars "
        f"({bars.estimated_size() / 2**20:,.0f} MB), {splits.height:,} splits, "
        f"{dividends.height:,} dividends"
    )
    columns = [bars.get_column(c).fill_null(np.nan).to_numpy() for c in BAR_VALUES]
    validate(bars[:1000], splits=splits, dividends=dividends)  # calendar and imports, untimed

    results: list[tuple[str, str, float]] = []
    seconds = best_of(args.repeat, lambda: baseline(*columns))
    results.append(("baseline: one numpy expression", "constraints", seconds))
    seconds = best_of(args.repeat, lambda: check_constraints(*columns))
    results.append(("ours: check_constraints", "constraints", seconds))
    outcome = validate(bars, splits=splits, dividends=dividends)
    seconds = best_of(args.repeat, lambda: validate(bars, splits=splits, dividends=dividends))
    results.append(("ours: validate, all rules (sorted input)", "full", seconds))
    if not args.no_shuffled:
        shuffled = bars.sample(fraction=1.0, shuffle=True, seed=args.seed)
        seconds = best_of(
            args.repeat, lambda: validate(shuffled, splits=splits, dividends=dividends)
        )
        results.append(("ours: validate, all rules (shuffled input)", "full", seconds))
        del shuffled

    base = results[0][2]
    table = Table(title=f"Validation throughput, {bars.height:,} bars")
    for column in ("case", "seconds", "bars/s", "× baseline", "× plan", "target bars/s", "met"):
        table.add_column(column, justify="left" if column == "case" else "right")
    table.add_row("original plan (measured)", "—", f"{PLAN:,}", "—", "1.0×", "—", "—")
    for case, kind, secs in results:
        rate = bars.height / secs
        target = TARGETS[kind]
        met = "[green]yes[/]" if rate >= target else "[red]no[/]"
        table.add_row(
            case,
            f"{secs:.3f}",
            f"{rate:,.0f}",
            f"{base / secs:.2f}×",
            f"{rate / PLAN:,.0f}×",
            f"≥ {target:,}" if not case.startswith("baseline") else "—",
            met if not case.startswith("baseline") else "—",
        )
    console.print(table)
    counts = outcome.log.group_by("rule").len().sort("rule")
    fired = ", ".join(f"{rule} {count:,}" for rule, count in counts.iter_rows())
    console.print(f"Rules fired: {fired or 'none'}")
    console.print(f"Peak RSS (VmHWM): {peak_rss_mb():,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
