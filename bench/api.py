"""API benchmark: our read API against the original plan's, on SQLite and PostgreSQL.

Run (defaults: 500 symbols x 5 years, 300 requests per case, /status at 10,000 symbols)::

    uv run python bench/api.py [--backend sqlite|postgresql|both] [--symbols 500] [--years 5] \
        [--requests 300] [--warmup 20] [--concurrency 4] [--status-symbols 10000] \
        [--status-requests 100] [--pg-url postgresql://127.0.0.1:5432/postgres] [--quick]

Each backend gets a fresh database (a temporary SQLite file; a throw-away PostgreSQL database
``marketdata_bench_<random>``, dropped after), filled untimed with ``--symbols`` simulated
symbols x ``--years`` of daily bars through ``write_bars`` (validated and scored, as a backfill
stores them). Two servers then read it, each a uvicorn process of its own on 127.0.0.1:

* ours: ``python -m marketdata serve`` (the real app; scheduler off, no simulated seeding,
  ``MARKETDATA_API_MAX_ROWS=100000`` so one answer holds the whole history);
* baseline: ``bench/baseline_api.py``, the original plan's style (SQLAlchemy 2 ORM over the
  same ``bars`` table, a sync session per request, one pydantic ``BarOut`` per bar,
  ``response_model``); JSON only, as the plan had no CSV or Parquet.

Both answer ``GET /api/v1/historical/{symbol}`` for the whole stored history of a random
symbol (the same seeded sequence for every case), raw bars (``adjusted=none``: the baseline
does not adjust). Before timing, one symbol's answers are compared (dates and closes of our
JSON, CSV and Parquet against the baseline's JSON) and every case is warmed up. Latency is
measured in this process around each request of one keep-alive ``httpx`` client, one request
at a time (p50, p99; req/s of that pass); a second pass with ``--concurrency`` clients in
threads gives throughput. Client and servers share the machine's cores. Target: our p50 at
most 1/10 of the baseline's.

``/api/v1/status`` reads only maintained summaries (``symbol_status``, the watchlist,
``backfill_runs``), never ``bars``. So rather than storing bars for ``--status-symbols``
symbols, ``symbol_status`` gets one row per extra symbol, copied from a real symbol's row (the
summary a symbol with the same history would have), every symbol is put on the watchlist and a
year of finished daily runs is recorded. Its latency is measured like the bar reads; the
server's own mean time comes from the app's Prometheus histogram
(``marketdata_http_request_duration_seconds``). Target: at most 5 ms of server time (the
issue's measure).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import importlib.metadata as md
import io
import os
import platform
import random
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import polars as pl
import psycopg
from rich.console import Console
from rich.table import Table

from marketdata.calendar import last_completed_session
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.backfill import years_before
from marketdata.service.quality import write_bars
from marketdata.storage import open_store
from marketdata.storage.jobs import WatchEntry

BENCH_DIR = Path(__file__).resolve().parent
HISTORICAL = "/api/v1/historical/{}"
STATUS = "/api/v1/status"
STATUS_TARGET_MS = 5.0
RATIO_TARGET = 0.10
READY_SECONDS = 60.0
RUNS = 250  # finished daily runs recorded for /status (about a year)
DEFAULTS = {
    "symbols": 500,
    "years": 5,
    "requests": 300,
    "warmup": 20,
    "status_symbols": 10_000,
    "status_requests": 100,
}
QUICK = {
    "symbols": 20,
    "years": 1,
    "requests": 30,
    "warmup": 5,
    "status_symbols": 500,
    "status_requests": 10,
}
#: Each case: its label, the server that answers it and the query string.
CASES = (
    ("ours JSON", "ours", "adjusted=none&format=json"),
    ("ours CSV", "ours", "adjusted=none&format=csv"),
    ("ours Parquet", "ours", "adjusted=none&format=parquet"),
    ("ours JSON, adjusted=splits", "ours", "format=json"),  # the default: reads splits too
    ("baseline JSON (ORM, pydantic)", "baseline", ""),
)
TARGETED = {case for case, _, query in CASES if "adjusted=none" in query}
BASELINE = CASES[-1][0]
STATUS_CASE = "ours /status"
console = Console() if sys.stdout.isatty() else Console(width=150)


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(**extra: str) -> dict[str, str]:
    """This environment without marketdata's and the vendor's variables, plus ``extra``."""
    prefixes = ("MARKETDATA_", "POLYGON_", "MASSIVE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **extra}


@contextmanager
def serving(name: str, command: Sequence[str], env: dict[str, str], tmp: Path) -> Iterator[str]:
    """Run ``command`` (a server on the port it names) until the block ends; its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / f"{name}.log"
    args = [a.replace("{port}", str(port)) for a in command]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(proc, url, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll ``/health`` until it answers 200; fail with the log's tail if the server died."""
    deadline = time.monotonic() + READY_SECONDS
    with httpx.Client(base_url=url, timeout=5) as client:
        while time.monotonic() < deadline:
            if (code := proc.poll()) is not None:
                tail = log.read_text(errors="replace")[-3000:]
                msg = f"server exited with {code}:\n{tail}"
                raise RuntimeError(msg)
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    msg = f"no answer from {url}/health in {READY_SECONDS:g} s"
    raise RuntimeError(msg)


# -- data -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Data:
    """What a filled database holds."""

    names: tuple[str, ...]  # every symbol known to /status; bars for the first ``with_bars``
    with_bars: int
    start: dt.date
    end: dt.date


async def fill(url: str, data: Data, at: dt.datetime) -> int:
    """Bars of the first ``data.with_bars`` symbols via ``write_bars``, the watchlist, runs."""
    store = await open_store(url)
    stored = 0
    try:
        simulator = MarketSimulator(seed=0, cache_size=0)
        for frame in simulator.iter_bars(data.names[: data.with_bars], data.start, data.end):
            stored += (await write_bars(store, frame, source="bench", at=at)).inserted
        added = at - dt.timedelta(days=400)
        await store.save_watch([WatchEntry(symbol=s, added_at=added) for s in data.names])
        for day in range(RUNS, 0, -1):
            began = at.replace(hour=2, minute=0) - dt.timedelta(days=day)
            run = await store.create_run(
                trigger="scheduled", provider="polygon", at=began, symbols=[]
            )
            finished = began + dt.timedelta(seconds=40)
            await store.finish_run(run, status="succeeded", at=finished)
    finally:
        await store.aclose()
    return stored


def copy_statuses(url: str, backend: str, data: Data) -> None:
    """One ``symbol_status`` row per symbol without bars, copied from a symbol with bars."""
    pairs = [(s, data.names[i % data.with_bars]) for i, s in enumerate(data.names)]
    pairs = pairs[data.with_bars :]
    columns = (
        "first_date, last_date, bar_count, validated_count, gap_count, last_fetch, last_error,"
        " updated_at, source"
    )
    sql = (
        f"INSERT INTO symbol_status (symbol, {columns}) SELECT {{0}}, {columns}"
        " FROM symbol_status WHERE symbol = {0}"
    )
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.executemany(sql.format("?"), pairs)
    else:
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            cur.executemany(sql.format("%s"), pairs)


@contextmanager
def fresh_database(backend: str, pg_url: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """A new, empty database: (our URL, the baseline's SQLAlchemy URL); removed at the end."""
    if backend == "sqlite":
        path = tmp / f"{secrets.token_hex(4)}.db"
        url = f"sqlite:///{path}"
        yield url, url
        return
    name = f"marketdata_bench_{secrets.token_hex(4)}"
    url = urlsplit(pg_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url, "postgresql+psycopg" + url[url.index(":") :]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- load -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One case: latencies one request at a time, then throughput with several clients."""

    case: str
    latencies: list[float]  # seconds per request, sequential pass
    sequential_seconds: float
    concurrent_seconds: float
    concurrent_requests: int
    body_bytes: int  # median
    server_ms: float | None  # mean time in our app (its metrics) of the sequential pass

    def ms(self, q: float) -> float:
        """The ``q`` percentile of the latencies, in milliseconds."""
        return float(np.percentile(self.latencies, q)) * 1000

    @property
    def mean_ms(self) -> float:
        """The mean latency, in milliseconds."""
        return float(np.mean(self.latencies)) * 1000

    @property
    def rate(self) -> float:
        """Requests per second of the sequential pass."""
        return len(self.latencies) / self.sequential_seconds

    @property
    def concurrent_rate(self) -> float:
        """Requests per second with several clients."""
        return self.concurrent_requests / self.concurrent_seconds


def fetch(client: httpx.Client, path: str) -> httpx.Response:
    """GET ``path``; any answer but 200 is an error naming it."""
    answer = client.get(path)
    if answer.status_code != 200:
        msg = f"GET {path}: {answer.status_code} {answer.text[:300]}"
        raise RuntimeError(msg)
    return answer


def sequential(url: str, paths: Sequence[str]) -> tuple[list[float], float, int]:
    """Latency of each request, one at a time on one keep-alive client; wall; median size."""
    latencies, sizes = [], []
    with httpx.Client(base_url=url, timeout=120) as client:
        fetch(client, paths[0])  # connect, untimed
        began = time.perf_counter()
        for path in paths:
            t0 = time.perf_counter()
            answer = fetch(client, path)
            latencies.append(time.perf_counter() - t0)
            sizes.append(len(answer.content))
        wall = time.perf_counter() - began
    return latencies, wall, int(np.median(sizes))


def concurrent(url: str, paths: Sequence[str], clients: int) -> float:
    """Seconds for ``clients`` keep-alive clients in threads to make all ``paths`` requests."""
    shares = [paths[i::clients] for i in range(clients)]
    start = threading.Barrier(clients + 1)

    def run(share: Sequence[str]) -> float:
        with httpx.Client(base_url=url, timeout=120) as client:
            fetch(client, share[0])  # connect, untimed
            start.wait()
            for path in share:
                fetch(client, path)
            return time.perf_counter()

    with ThreadPoolExecutor(clients) as pool:
        ends = [pool.submit(run, share) for share in shares if share]
        start.wait()
        began = time.perf_counter()
        return max(f.result() for f in ends) - began


def measure(
    case: str, url: str, paths: Sequence[str], args: argparse.Namespace, route: str | None
) -> Result:
    """Warm-up, then both passes of one case; with ``route``, our server's own mean time of
    the sequential pass (from its metrics)."""
    if args.warmup:
        sequential(url, paths[: args.warmup])
    before = server_time(url, route) if route else None
    latencies, wall, size = sequential(url, paths)
    server_ms = None
    if route and before:
        seconds, count = server_time(url, route)
        if count - before[1] == len(paths) + 1:  # the untimed first request too
            server_ms = (seconds - before[0]) / (count - before[1]) * 1000
    clients = max(1, min(args.concurrency, len(paths)))
    rate = (concurrent(url, paths, clients), len(paths))
    return Result(case, latencies, wall, *rate, size, server_ms)


def server_time(url: str, route: str) -> tuple[float, int]:
    """(seconds, requests) recorded for ``route`` in our app's request-duration histogram."""
    text = httpx.get(f"{url}/metrics", timeout=60).text
    figures = {}
    label = f'route="{re.escape(route)}"'
    for kind in ("sum", "count"):
        pattern = (
            rf"^marketdata_http_request_duration_seconds_{kind}\{{[^}}]*{label}[^}}]*\}} (\S+)$"
        )
        found = re.search(pattern, text, re.MULTILINE)
        figures[kind] = float(found.group(1)) if found else 0.0
    return figures["sum"], int(figures["count"])


def check_same(ours: str, baseline: str, symbol: str, expected: int) -> None:
    """Our JSON, CSV and Parquet hold the baseline's bars (dates and closes) for ``symbol``."""
    path = HISTORICAL.format(symbol)
    with httpx.Client(timeout=120) as client:
        theirs = fetch(client, f"{baseline}{path}").json()["bars"]
        want = [(b["date"], b["close"]) for b in theirs]
        mine = fetch(client, f"{ours}{path}?adjusted=none&format=json").json()["bars"]
        frames: dict[str, pl.DataFrame | list[tuple[str, float]]] = {
            "json": [(b["date"], b["close"]) for b in mine],
            "csv": pl.read_csv(fetch(client, f"{ours}{path}?adjusted=none&format=csv").content),
            "parquet": pl.read_parquet(
                io.BytesIO(fetch(client, f"{ours}{path}?adjusted=none&format=parquet").content)
            ),
        }
    for fmt, answer in frames.items():
        got = (
            list(zip(answer["date"].cast(pl.String), answer["close"], strict=True))
            if isinstance(answer, pl.DataFrame)
            else answer
        )
        if got != want or len(want) != expected:
            msg = f"{symbol}: ours ({fmt}, {len(got)} bars) differs from the baseline's {len(want)}"
            raise RuntimeError(msg)


# -- one backend ------------------------------------------------------------------------------


def bench_backend(backend: str, args: argparse.Namespace, tmp: Path) -> list[Result]:
    """Fill a fresh database, serve it twice, time every case and /status."""
    now = dt.datetime.now(dt.UTC)
    end = last_completed_session(now)
    count = max(args.status_symbols, args.symbols)
    names = tuple(f"S{i:05d}" for i in range(count))
    data = Data(names, args.symbols, years_before(end, args.years) + dt.timedelta(days=1), end)
    with ExitStack() as stack:
        url, sa_url = stack.enter_context(fresh_database(backend, args.pg_url, tmp))
        began = time.perf_counter()
        stored = asyncio.run(fill(url, data, now))
        copy_statuses(url, backend, data)
        console.print(
            f"[bold]{backend}[/]: {stored:,} bars of {args.symbols:,} symbols "
            f"({data.start} … {data.end}, {stored / args.symbols:,.0f} each) + "
            f"{count - args.symbols:,} status-only symbols, {RUNS} runs: "
            f"filled in {time.perf_counter() - began:.1f} s (untimed)"
        )
        ours_env = server_env(
            MARKETDATA_SCHEDULER="false",
            MARKETDATA_SIMULATE="false",
            MARKETDATA_API_MAX_ROWS="100000",
            MARKETDATA_SYMBOLS=names[0],
        )
        ours_cmd = [sys.executable, "-m", "marketdata", "--database-url", url, "serve"]
        ours_cmd += ["--host", "127.0.0.1", "--port", "{port}"]
        base_env = server_env(BENCH_BASELINE_DATABASE_URL=sa_url)
        base_cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "--factory"]
        base_cmd += ["baseline_api:create_app", "--host", "127.0.0.1", "--port", "{port}"]
        urls = {
            "ours": stack.enter_context(serving(f"ours-{backend}", ours_cmd, ours_env, tmp)),
            "baseline": stack.enter_context(serving(f"base-{backend}", base_cmd, base_env, tmp)),
        }
        check_same(urls["ours"], urls["baseline"], names[0], stored // args.symbols)

        picks = random.Random(0).choices(names[: args.symbols], k=args.requests)
        results = []
        for case, server, query in CASES:
            suffix = f"?{query}" if query else ""
            paths = [HISTORICAL.format(s) + suffix for s in picks]
            route = HISTORICAL.format("{symbol}") if server == "ours" else None
            results.append(measure(case, urls[server], paths, args, route))
        with httpx.Client(base_url=urls["ours"], timeout=60) as client:
            status = fetch(client, STATUS).json()
        if status["symbols"] != count:
            msg = f"/status counts {status['symbols']} symbols, expected {count:,}"
            raise RuntimeError(msg)
        label = f"{STATUS_CASE}, {count:,} symbols"
        paths = [STATUS] * args.status_requests
        results.append(measure(label, urls["ours"], paths, args, STATUS))
    return results


def verdict_of(met: bool) -> str:
    return "[green]met[/]" if met else "[red]not met[/]"


def render(backend: str, results: Sequence[Result], args: argparse.Namespace) -> Table:
    """The table of one backend: every case against the baseline's p50, /status vs 5 ms."""
    base = next(r for r in results if r.case == BASELINE).ms(50)
    clients = args.concurrency
    status_only = max(args.status_symbols, args.symbols) - args.symbols
    table = Table(
        title=f"{backend}: one symbol's whole history per request; latency seen by the client",
        caption="ms; server mean: time inside our app (its request histogram), 1-client pass.\n"
        f"/status: {status_only:,} of its symbols have a symbol_status row (copied from a "
        "stored symbol's) and a watchlist row but no bars; /status never reads bars.",
    )
    columns = ("Case", "p50 ms", "p99 ms", "mean ms", "server mean", "req/s 1 client")
    for col in (*columns, f"req/s {clients} clients", "KB", "p50 ÷ base", "target"):
        table.add_column(col, justify="left" if col == "Case" else "right", no_wrap=col == "Case")
    for r in results:
        server = "—" if r.server_ms is None else f"{r.server_ms:.2f}"
        figures = [f"{r.ms(50):.2f}", f"{r.ms(99):.2f}", f"{r.mean_ms:.2f}", server]
        figures += [f"{r.rate:,.0f}"]
        figures += [f"{r.concurrent_rate:,.0f}", f"{r.body_bytes / 1000:,.0f}"]
        if r.case.startswith(STATUS_CASE):
            # The target is server time: the app's own request histogram.
            met = r.server_ms is not None and r.server_ms <= STATUS_TARGET_MS
            verdict = verdict_of(met)
            table.add_row(r.case, *figures, "—", f"server ≤ {STATUS_TARGET_MS:g} ms: {verdict}")
        elif r.case == BASELINE:
            table.add_row(r.case, *figures, "1", "—")
        else:
            ratio = r.ms(50) / base
            verdict = verdict_of(ratio <= RATIO_TARGET) if r.case in TARGETED else "(info)"
            table.add_row(r.case, *figures, f"{ratio:.3f}", f"≤ {RATIO_TARGET:.2f}: {verdict}")
    return table


def versions(pg_url: str, backends: Sequence[str]) -> str:
    """Library versions, SQLite's and (when used) the PostgreSQL server's."""
    names = ("fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "polars", "httpx")
    text = ", ".join(f"{n} {md.version(n)}" for n in (*names, "psycopg"))
    text += f", SQLite {sqlite3.sqlite_version}"
    if "postgresql" in backends:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        text += f", PostgreSQL {row[0] if row else '?'}"
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    for flag in DEFAULTS:
        p.add_argument(f"--{flag.replace('_', '-')}", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=4, help="clients of the throughput pass")
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default="postgresql://127.0.0.1:5432/postgres")
    p.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = p.parse_args()
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if min(args.symbols, args.years, args.requests, args.status_requests, args.concurrency) < 1:
        p.error("--symbols, --years, --requests, --status-requests, --concurrency must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    backends = [b for b in ("sqlite", "postgresql") if args.backend in (b, "both")]

    console.print(
        f"[bold]API benchmark[/]  uv run python bench/api.py {' '.join(sys.argv[1:])}\n"
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n"
        f"{versions(args.pg_url, backends)}\n"
        f"{args.symbols:,} symbols x {args.years} years; {args.requests:,} requests per case "
        f"after {args.warmup} warm-up, random symbols (seed 0), raw bars (adjusted=none); "
        f"throughput pass with {args.concurrency} clients; /status at "
        f"{max(args.status_symbols, args.symbols):,} symbols, {args.status_requests:,} requests; "
        "each server one uvicorn process, INFO logs (access log on)"
    )
    tmp = Path(tempfile.mkdtemp(prefix="marketdata_bench_"))
    tables = []
    try:
        for backend in backends:
            tables.append(render(backend, bench_backend(backend, args, tmp), args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for table in tables:
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
