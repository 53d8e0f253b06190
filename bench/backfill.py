"""Backfill benchmark: our backfill against the original plan's, from a local Polygon server.

Run (defaults: 500 symbols x 5 years, SQLite, one round, no added latency)::

    uv run python bench/backfill.py [--symbols 500] [--years 5] \
        [--backend sqlite|postgresql|both] [--pg-url postgresql://127.0.0.1:5432/postgres] \
        [--concurrency 4] [--repeat 1] [--latency 0]

The vendor is ``python -m marketdata fake-polygon`` in its own process (a real vendor is another
machine: the server must not share this process's GIL), on a free 127.0.0.1 port, with no rate
limit on either side (``polygon_calls_per_minute=0``). It still shares the machine's cores with
the code measured. ``--latency`` is passed as the server's ``--slow``: a delay before every
answer, like a network round trip (requests in flight overlap their delays). The server is
ready once it answers a grouped-daily request for its last session, untimed; that request also
simulates every symbol, and the simulator keeps the histories of at most ``cache_size``
(``MarketSimulator``'s default, 256) symbols, so with that many symbols or fewer data
generation is timed against neither side. With more (the default 500) nothing can be warmed:
requests for more symbols than the cache holds (grouped bars, splits and dividends of the whole
universe) bypass it, and one-symbol range requests in symbol order evict each other from it, so
every answer simulates its data in the server process, during the runs. Each case starts from a
fresh database whose schema is created before its clock starts:

* original plan: one ``PolygonClient.daily_bars`` call per symbol, one symbol after another,
  each answer written through ``write_bars`` (same validation and storage as ours; no planner,
  no concurrency, no checkpoints, no corporate actions);
* marketdata backfill: ``backfiller(...).run(Target())``, the full run as the CLI makes it
  (lock, run record, planner, splits and dividends, concurrent requests, checkpoints).

Then the server is restarted (untimed) with ``--today`` one session later and both databases
are brought up to date: the original plan again with one call per symbol, ours with a second
run. Calls are the HTTP requests the client made, retries and pages included (the server is out
of reach): ``PolygonClient.calls`` for the original plan, the run's ``progress.calls`` for ours.
The daily-update table adds what the planner alone plans for watchlists of 15 and 5,000 symbols
whose last stored bar is the previous session.
PostgreSQL runs use throw-away databases named ``marketdata_bench_<random>``, dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import inspect
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

from marketdata import calendar
from marketdata.providers.polygon import PolygonClient
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.backfill import Target, years_before
from marketdata.service.plan import SymbolState, make_plan
from marketdata.service.quality import write_bars
from marketdata.service.runs import backfiller
from marketdata.settings import Settings
from marketdata.storage import open_store
from marketdata.storage.base import Store, UpsertCounts

KEY = "bench"
TODAY = dt.date(2026, 11, 20)  # a Friday: the server's last session at first
NOW = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)  # the first runs' clock (Saturday)
NEXT = calendar.sessions(TODAY + dt.timedelta(days=1), TODAY + dt.timedelta(days=10))[0].item()
LATER = dt.datetime.combine(NEXT + dt.timedelta(days=1), dt.time(12), dt.UTC)  # update clock
ORIGINAL = "Original plan (1 call per symbol, sequential)"
OURS = "marketdata backfill"
CACHE_SIZE: int = inspect.signature(MarketSimulator).parameters["cache_size"].default
READY_ATTEMPTS, READY_PAUSE = 600, 0.1  # up to about a minute for the server to answer
console = Console() if sys.stdout.isatty() else Console(width=130)
Tally = tuple[UpsertCounts, int]  # new rows of a pass, HTTP requests it made


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``python -m marketdata fake-polygon`` in its own process, restarted to change its day."""

    def __init__(self, symbols: Sequence[str], latency: float, log: Path) -> None:
        self.symbols = tuple(symbols)
        self.latency = latency
        self.log_path = log
        self.url = ""
        self.today: dt.date | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve(self, today: dt.date) -> float | None:
        """Serve up to ``today``: (re)start unless already so; seconds to ready, else None."""
        if self._proc is not None and self.today == today:
            return None
        self.stop()
        began = time.perf_counter()
        port = free_port()
        self.url, self.today = f"http://127.0.0.1:{port}", today
        command = [
            *(sys.executable, "-m", "marketdata", "fake-polygon", "--host", "127.0.0.1"),
            *("--port", str(port), "--symbols", ",".join(self.symbols)),
            *("--today", today.isoformat(), "--api-key", KEY, "--slow", f"{self.latency:g}"),
        ]
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_ready(today)
        return time.perf_counter() - began

    def _wait_ready(self, today: dt.date) -> None:
        """Poll grouped bars of ``today`` until answered (this also warms the simulator)."""
        assert self._proc is not None
        path = f"/v2/aggs/grouped/locale/us/market/stocks/{today}"
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            for _ in range(READY_ATTEMPTS):
                if (code := self._proc.poll()) is not None:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    msg = f"fake-polygon exited with {code}:\n{tail}"
                    raise RuntimeError(msg)
                try:
                    answer = client.get(path, params={"adjusted": "false"})
                except httpx.TransportError:
                    time.sleep(READY_PAUSE)
                    continue
                answer.raise_for_status()
                if (count := answer.json().get("resultsCount")) != len(self.symbols):
                    msg = f"fake-polygon served {count} bars for {today}, not {len(self.symbols)}"
                    raise RuntimeError(msg)
                return
        msg = f"fake-polygon did not answer on {self.url}"
        raise RuntimeError(msg)

    def stop(self) -> None:
        """Terminate the server and wait for it (killed if it takes more than 30 s)."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    """One timed case: new bars stored, HTTP requests the client made, wall seconds."""

    backend: str
    run: str  # "backfill" or "daily update"
    name: str
    bars: int
    calls: int
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Bench:
    """What every case shares: the server, the symbols and the wanted window."""

    server: ServerProcess
    symbols: tuple[str, ...]
    start: dt.date
    years: int
    concurrency: int
    pg_url: str
    tmp: Path


@asynccontextmanager
async def fresh_store(bench: Bench, backend: str) -> AsyncIterator[tuple[str, Store]]:
    """A new, empty database (schema created) and its URL; removed at the end."""
    if backend == "sqlite":
        url = f"sqlite:///{bench.tmp / f'{secrets.token_hex(4)}.db'}"
    else:
        name = f"marketdata_bench_{secrets.token_hex(4)}"
        url = urlsplit(bench.pg_url)._replace(path=f"/{name}").geturl()
        with psycopg.connect(bench.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        store = await open_store(url)
        try:
            yield url, store
        finally:
            await store.aclose()
    finally:
        if backend != "sqlite":
            with psycopg.connect(bench.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def original_pass(
    bench: Bench, store: Store, start: dt.date, end: dt.date, at: dt.datetime
) -> Tally:
    """The original plan: one range call per symbol, sequential, each answer written."""
    client = PolygonClient(api_key=KEY, base_url=bench.server.url, calls_per_minute=0)
    counts = UpsertCounts()
    try:
        for symbol in bench.symbols:
            bars = await client.daily_bars(symbol, start, end)
            counts += await write_bars(store, bars, source=client.name, at=at)
    finally:
        await client.aclose()
    return counts, client.calls


async def ours_pass(bench: Bench, store: Store, url: str, at: dt.datetime) -> Tally:
    """One full backfill run, as ``marketdata backfill`` makes it."""
    settings = Settings(
        database_url=url,
        polygon_api_key=KEY,
        polygon_base_url=bench.server.url,
        polygon_calls_per_minute=0,
        symbols=bench.symbols,
        backfill_years=bench.years,
        backfill_concurrency=bench.concurrency,
    )
    outcome = await backfiller(store, settings, clock=lambda: at).run(Target())
    if outcome.status != "succeeded":
        msg = f"backfill run ended {outcome.status}: {outcome.message}"
        raise RuntimeError(msg)
    return outcome.progress.counts, outcome.progress.calls


async def timed(case: tuple[str, str, str], side: AsyncIterator[Tally]) -> Case:
    """Time the next pass of ``side``, with the requests it counted."""
    began = time.perf_counter()
    counts, calls = await anext(side)
    seconds = time.perf_counter() - began
    return Case(*case, counts.inserted, calls, seconds)


async def original_side(bench: Bench, backend: str) -> AsyncGenerator[Tally, None]:
    """A fresh database (first step, untimed), the original plan's backfill, its update."""
    async with fresh_store(bench, backend) as (_, store):
        yield UpsertCounts(), 0
        yield await original_pass(bench, store, bench.start, TODAY, NOW)
        yield await original_pass(bench, store, TODAY, NEXT, LATER)


async def ours_side(bench: Bench, backend: str) -> AsyncGenerator[Tally, None]:
    """A fresh database (first step, untimed), our backfill run, the next day's run."""
    async with fresh_store(bench, backend) as (url, store):
        yield UpsertCounts(), 0
        yield await ours_pass(bench, store, url, NOW)
        yield await ours_pass(bench, store, url, LATER)


async def one_round(bench: Bench, backend: str) -> list[Case]:
    """Backfill both sides on the first day, then update both after the next session."""
    await asyncio.to_thread(bench.server.serve, TODAY)  # untimed (re)start, unless serving it
    sides = [(ORIGINAL, original_side(bench, backend)), (OURS, ours_side(bench, backend))]
    try:
        for _, side in sides:
            await anext(side)  # the databases and their schemas, before any clock
        cases = [await timed((backend, "backfill", name), side) for name, side in sides]
        await asyncio.to_thread(bench.server.serve, NEXT)  # untimed restart, a session later
        cases += [await timed((backend, "daily update", n), side) for n, side in sides]
    finally:
        for _, side in sides:
            await side.aclose()  # closes (and drops) the databases
    return cases


def best_of(rounds: Sequence[Case]) -> list[Case]:
    """Per (backend, run, case): the fastest round (bars and calls are the same in each)."""
    best: dict[tuple[str, str, str], Case] = {}
    for case in rounds:
        key = (case.backend, case.run, case.name)
        if key not in best or case.seconds < best[key].seconds:
            best[key] = case
    return list(best.values())


def planned_update_calls(count: int, years: int, overlap: int) -> tuple[int, int, int]:
    """(planned calls, range-only calls, grouped-only calls) of a daily update of ``count``."""
    previous = calendar.sessions(TODAY - dt.timedelta(days=10), TODAY)[-1].item()
    states = [
        SymbolState(
            symbol=f"T{i:04d}",
            start=years_before(NEXT, years),
            end=NEXT,
            first_date=years_before(NEXT, years),
            last_date=previous,
        )
        for i in range(count)
    ]
    plan = make_plan(states, overlap=overlap)
    return plan.calls, plan.range_only_calls, plan.grouped_only_calls


async def run_all(args: argparse.Namespace, backends: list[str]) -> list[Case]:
    symbols = tuple(f"S{i:04d}" for i in range(args.symbols))
    start = years_before(TODAY, args.years)
    tmp = Path(tempfile.mkdtemp(prefix="marketdata_bench_"))
    rounds: list[Case] = []
    try:
        with ServerProcess(symbols, args.latency, tmp / "fake-polygon.log") as server:
            ready = await asyncio.to_thread(server.serve, TODAY)
            warmed = (
                "simulator warmed"
                if len(symbols) <= CACHE_SIZE
                else f"simulator not warmed: {len(symbols):,} symbols > its cache of {CACHE_SIZE}"
            )
            console.print(f"Server up in {ready or 0:.1f} s (untimed); {warmed}")
            bench = Bench(server, symbols, start, args.years, args.concurrency, args.pg_url, tmp)
            for backend in backends:  # a small untimed round first: imports, connections
                await one_round(dataclasses.replace(bench, symbols=symbols[:5]), backend)
                for _ in range(max(1, args.repeat)):
                    rounds += await one_round(bench, backend)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return best_of(rounds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    concurrency = Settings.model_fields["backfill_concurrency"].default
    for flag, default in (("--symbols", 500), ("--years", 5), ("--repeat", 1)):
        p.add_argument(flag, type=int, default=default)
    p.add_argument("--concurrency", type=int, default=concurrency)
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    p.add_argument("--pg-url", default="postgresql://127.0.0.1:5432/postgres")
    p.add_argument(
        "--latency", type=float, default=0.0, help="seconds the server waits before every answer"
    )
    args = p.parse_args()
    if args.latency < 0:
        p.error("--latency must be >= 0")
    backends = [b for b in ("sqlite", "postgresql") if args.backend in (b, "both")]
    overlap = Settings.model_fields["backfill_overlap"].default

    console.print(
        f"[bold]Backfill benchmark[/]  uv run python bench/backfill.py {' '.join(sys.argv[1:])}\n"
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}\n"
        f"{args.symbols:,} symbols x {args.years} years to {TODAY} from a local FakePolygon "
        f"in its own process, latency {args.latency:g} s per answer, no rate limit; "
        f"concurrency {args.concurrency}, best of {args.repeat}; daily update to {NEXT}"
    )
    cases = asyncio.run(run_all(args, backends))

    table = Table(title="Backfill, end to end (Calls: HTTP requests the client made)")
    for col in ("Backend", "Run", "Case", "Bars", "Calls", "Seconds", "Bars/s", "× original"):
        table.add_column(col, justify="left" if col in ("Backend", "Run", "Case") else "right")
    base = {(c.backend, c.run): c.seconds for c in cases if c.name == ORIGINAL}
    for c in cases:
        speedup = f"{base[(c.backend, c.run)] / c.seconds:.2f}×"
        figures = (f"{c.bars:,}", f"{c.calls:,}", f"{c.seconds:.2f}", f"{c.bars / c.seconds:,.0f}")
        table.add_row(c.backend, c.run, c.name, *figures, speedup)
    console.print(table)

    table = Table(title=f"Calls for a daily update (last stored bar {TODAY}, new session {NEXT})")
    for col in ("Watchlist", "Original plan", "marketdata", "Range-only", "Grouped-only", "How"):
        table.add_column(col, justify="left" if col in ("Watchlist", "How") else "right")
    for count in sorted({15, args.symbols, 5_000}):
        planned, ranges, grouped = planned_update_calls(count, args.years, overlap)
        row = (f"{count:,} symbols", f"{count:,}", f"{planned:,}", f"{ranges:,}", f"{grouped:,}")
        table.add_row(*row, f"planner only (bar calls, overlap {overlap})")
        for c in cases:
            if count == args.symbols and c.run == "daily update" and c.name == OURS:
                how = f"measured run on {c.backend}: bars + splits + dividends"
                table.add_row(*row[:2], f"{c.calls:,}", "—", "—", how)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
