"""``marketdata validate`` and ``marketdata gaps``: re-score stored bars, list missing sessions."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from marketdata.cli._common import err, out, settings_of, with_store
from marketdata.errors import InputError, NotFound
from marketdata.symbols import normalize_symbols

if TYPE_CHECKING:
    from marketdata.service.quality import SymbolQuality
    from marketdata.storage import Store
    from marketdata.validation import GapRange

SymbolsArg = Annotated[
    list[str] | None, typer.Argument(help="Only these symbols (default: all).", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def validate(ctx: typer.Context, symbols: SymbolsArg = None, as_json: JsonOpt = False) -> None:
    """Re-score stored bars with the current rules and thresholds, and summarise.

    Every bar gets its flags, quality score and validated mark again and the validation log
    is rewritten; missing sessions are recounted against the XNYS calendar. Run it after
    changing thresholds or loading corporate actions by hand (``actions import`` does it).
    A named symbol without bars is an error, before anything is re-scored.
    """
    from marketdata.cli import render
    from marketdata.service.quality import revalidate

    settings = settings_of(ctx)
    wanted = normalize_symbols(symbols or [])

    async def run(store: Store) -> list[SymbolQuality]:
        names = [s.symbol for s in await store.symbol_statuses(wanted or None)]
        _check_stored(wanted, names)
        if not names:
            return []
        with Progress(
            TextColumn("validating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("", total=len(names))
            return await revalidate(
                store,
                names,
                at=dt.datetime.now(dt.UTC),
                progress=lambda q: bar.update(task, advance=1, description=q.symbol),
            )

    results = with_store(settings, run)
    if as_json:
        out.print_json(json.dumps([render.quality_dict(q) for q in results]))
        return
    if not results:
        out.print("No bars stored yet. Load some with: marketdata import FILE")
        return
    out.print(render.quality_table(results))
    out.print(render.gap_lines(results))


def gaps(
    ctx: typer.Context,
    symbols: Annotated[list[str], typer.Argument(help="Symbols to check.", show_default=False)],
    start: Annotated[
        dt.datetime | None,
        typer.Option(help="Only gaps ending on/after this date.", formats=["%Y-%m-%d"]),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(help="Only gaps starting on/before this date.", formats=["%Y-%m-%d"]),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List missing sessions (XNYS sessions between a symbol's first and last stored bar)."""
    from marketdata.service.quality import symbol_gaps

    settings = settings_of(ctx)
    first = start.date() if start else None
    last = end.date() if end else None
    if first and last and first > last:
        raise InputError(f"--start {first} is after --end {last}")
    names = normalize_symbols(symbols)

    async def run(store: Store) -> dict[str, list[GapRange]]:
        _check_stored(names, [s.symbol for s in await store.symbol_statuses(names)])
        return {s: await symbol_gaps(store, s, start=first, end=last) for s in names}

    result = with_store(settings, run)
    if as_json:
        payload = {
            symbol: [
                {"start": g.start.isoformat(), "end": g.end.isoformat(), "sessions": g.sessions}
                for g in ranges
            ]
            for symbol, ranges in result.items()
        }
        out.print_json(json.dumps(payload))
        return
    for symbol, ranges in result.items():
        if not ranges:
            out.print(f"[green]{symbol}: no missing sessions[/green]")
            continue
        total = sum(g.sessions for g in ranges)
        out.print(
            f"[bold]{symbol}[/bold]: {total:,} missing session(s) in {len(ranges):,} range(s)"
        )
        for g in ranges:
            span = g.start.isoformat() if g.start == g.end else f"{g.start} … {g.end}"
            out.print(f"  {span}  ({g.sessions} session(s))")


def _check_stored(named: list[str], stored: list[str]) -> None:
    """:class:`NotFound` naming the symbols of ``named`` that have no bars (``stored``)."""
    found = set(stored)
    missing = [name for name in named if name not in found]
    if missing:
        raise NotFound(f"no bars stored for {', '.join(missing)}")


def register(app: typer.Typer) -> None:
    """Add the commands to the root app."""
    app.command()(validate)
    app.command()(gaps)
