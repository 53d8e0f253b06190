"""``marketdata backfill``, ``runs`` and ``worker``: fetch what is missing, watch runs, schedule.

The commands are thin: :mod:`marketdata.service.runs` plans and runs backfills (the same code
the scheduler and the REST API call) and :mod:`marketdata.service.scheduler` fires the daily
run; this module parses options and draws progress bars and summaries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import time
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from marketdata.cli import render_backfill as render
from marketdata.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    date_option,
    err,
    out,
    settings_of,
    with_store,
)
from marketdata.errors import InputError

if TYPE_CHECKING:
    from marketdata.service.backfill import Prepared
    from marketdata.service.execution import Progress as RunProgress
    from marketdata.service.runs import Outcome
    from marketdata.storage import Store
    from marketdata.storage.jobs import RunRecord


def backfill(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None,
        typer.Argument(help="Symbols to backfill (default: the watchlist).", show_default=False),
    ] = None,
    start: Annotated[
        dt.datetime | None,
        date_option("First date (YYYY-MM-DD); also re-asks the vendor for sessions it had none."),
    ] = None,
    end: Annotated[
        dt.datetime | None, date_option("Last date (default: the last completed session).")
    ] = None,
    years: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=60,
            help="Years of history (default: each symbol's, else MARKETDATA_BACKFILL_YEARS).",
            show_default=False,
        ),
    ] = None,
    provider: Annotated[
        Literal["polygon", "synthetic"] | None,
        typer.Option(
            help="Where bars come from (default: polygon with an API key, else synthetic).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the plan (calls, sessions, time); fetch nothing."),
    ] = False,
    strategy: Annotated[
        Literal["auto", "range", "grouped"],
        typer.Option(help="Request mix: fewest calls (auto), per-ticker ranges, or grouped daily."),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fetch every missing session of the watched symbols, with the fewest vendor calls.

    Works out what each symbol lacks up to the last completed session, fetches it under the
    rate limit (POLYGON_CALLS_PER_MINUTE), validates and writes each answer with its progress.
    Safe to stop at any moment (Ctrl-C, kill, power cut): run it again to finish.

    Example: marketdata backfill --dry-run ; marketdata backfill NVDA --years 10
    """
    from marketdata.service.backfill import Prepared, Target
    from marketdata.service.runs import backfiller

    settings = settings_of(ctx)
    if start is not None and years is not None:
        raise InputError("give --start or --years, not both (both set the first date)")
    if start is not None and end is not None and start > end:
        raise InputError(f"--start {start.date()} is after --end {end.date()}")
    target = Target(
        symbols=tuple(symbols or ()),
        start=start.date() if start else None,
        end=end.date() if end else None,
        years=years,
    )
    bars = _progress_bars(disable=as_json)
    tasks: dict[str, TaskID] = {}

    def on_start(run_id: int, prepared: Prepared) -> None:
        plan = prepared.plan
        bars.start()
        tasks["symbols"] = bars.add_task(f"run {run_id} symbols", total=len(plan.symbols), stats="")
        tasks["requests"] = bars.add_task("requests", total=max(plan.calls, 1), stats="")

    def on_progress(progress: RunProgress) -> None:
        stats = (
            f"{progress.counts.total:,} bars · {progress.calls:,} calls · "
            f"{progress.errors} error(s)"
        )
        bars.update(tasks["symbols"], completed=progress.symbols_done + progress.errors)
        bars.update(tasks["requests"], completed=progress.requests_done, stats=stats)

    async def go(store: Store) -> Prepared | Outcome:
        runner = backfiller(store, settings, provider=provider, strategy=strategy)
        if dry_run:
            return await runner.plan(target)
        return await runner.run(target, on_start=on_start, on_progress=on_progress)

    started = time.perf_counter()
    try:
        result = with_store(settings, go)
    except KeyboardInterrupt:
        bars.stop()
        err.print(
            "[yellow]stopped.[/yellow] Everything written so far is kept; run "
            "`marketdata backfill` again to finish."
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        bars.stop()
    elapsed = time.perf_counter() - started
    if isinstance(result, Prepared):
        # Only Polygon is rate-limited; the simulator answers at once.
        rate = settings.polygon_calls_per_minute if result.provider == "polygon" else 0.0
        _print_plan(result, calls_per_minute=rate, as_json=as_json)
        return
    outcome = result
    if as_json:
        out.print_json(json.dumps(render.outcome_dict(outcome, seconds=elapsed)))
    else:
        for line in render.outcome_lines(outcome, seconds=elapsed):
            out.print(line)
    if outcome.status == "failed":
        raise typer.Exit(1)
    if outcome.status == "partial":
        raise typer.Exit(EXIT_PARTIAL)


def _print_plan(prepared: Prepared, *, calls_per_minute: float, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(render.plan_dict(prepared, calls_per_minute=calls_per_minute)))
        return
    for item in render.plan_lines(prepared, calls_per_minute=calls_per_minute):
        out.print(item)


def _progress_bars(*, disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=disable,
        auto_refresh=True,
    )


def runs(
    ctx: typer.Context,
    run_id: Annotated[
        int | None, typer.Argument(help="Show this run's symbols.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Runs to list.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List recent backfill runs, or show one run's per-symbol progress."""
    from marketdata.service.runs import run_history, run_progress

    async def read(store: Store) -> list[RunRecord]:
        if run_id is not None:
            return [await run_progress(store, run_id)]
        return await run_history(store, limit=limit)

    records = with_store(settings_of(ctx), read)
    if as_json:
        payload = [render.run_dict(r) for r in records]
        out.print_json(json.dumps(payload[0] if run_id is not None else payload))
        return
    if run_id is not None:
        out.print(render.run_detail(records[0]))
        return
    if not records:
        out.print("No backfill runs yet. Start one with: marketdata backfill")
        return
    out.print(render.runs_table(records))


def worker(
    ctx: typer.Context,
    once: Annotated[
        bool,
        typer.Option("--once", help="Run the jobs whose latest trigger nobody ran yet, then exit."),
    ] = False,
) -> None:
    """Run the scheduler alone (no API): the daily backfill at MARKETDATA_BACKFILL_CRON.

    Any number of workers and API processes may share one database: each trigger runs once.
    A trigger missed while everything was down runs at start.
    """
    from marketdata.service.periodic import scheduled_jobs
    from marketdata.service.scheduler import Scheduler

    settings = settings_of(ctx)

    async def go(store: Store) -> list[str]:
        scheduler = Scheduler(store)
        for job in scheduled_jobs(store, settings):
            scheduler.add(job)
        if not scheduler.jobs:
            err.print(
                "[yellow]nothing to schedule:[/yellow] no POLYGON_API_KEY and "
                "MARKETDATA_SIMULATE=false"
            )
            return []
        if once:
            return await scheduler.catch_up()
        await scheduler.start()
        info = await scheduler.info()
        for planned in info.jobs:
            when = f"{planned.next_run:%Y-%m-%d %H:%M} UTC" if planned.next_run else "never"
            err.print(
                f"worker: {escape(planned.name)} next at {when} (cron '{escape(planned.cron)}')"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await scheduler.shutdown()
        return []

    ran = with_store(settings, go)
    if once:
        out.print(f"ran: {', '.join(ran)}" if ran else "nothing due (or another process ran it)")
    else:
        err.print("worker stopped")


def register(app: typer.Typer) -> None:
    """Add the commands to the root app."""
    app.command()(backfill)
    app.command()(runs)
    app.command()(worker)
