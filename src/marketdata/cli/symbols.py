"""``marketdata symbols list|add|remove``: the watchlist the backfill keeps current."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from marketdata.cli._common import out, settings_of, with_store

if TYPE_CHECKING:
    from marketdata.service.watchlist import Change, Watched, Watchlist
    from marketdata.storage import Store, SymbolStatus

symbols_app = typer.Typer(
    help=(
        "The watchlist: the symbols `marketdata backfill` and the daily run keep complete. "
        "It starts as MARKETDATA_SYMBOLS (default: 15 large US stocks)."
    ),
    no_args_is_help=True,
)

SymbolArgs = Annotated[
    list[str],
    typer.Argument(
        help="Symbols: letters, digits, '.' or '-' (e.g. AAPL BRK.B); case is ignored.",
        show_default=False,
    ),
]


def _config(ctx: typer.Context) -> Watchlist:
    from marketdata.service.watchlist import Watchlist

    settings = settings_of(ctx)
    return Watchlist(symbols=settings.symbols, years=settings.backfill_years)


@symbols_app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the watched symbols with their stored history."""
    from marketdata.service.watchlist import watched

    config = _config(ctx)

    async def read(store: Store) -> tuple[list[Watched], dict[str, SymbolStatus]]:
        entries = await watched(store, config, at=dt.datetime.now(dt.UTC))
        statuses = await store.symbol_statuses([w.symbol for w in entries])
        return entries, {s.symbol: s for s in statuses}

    entries, statuses = with_store(settings_of(ctx), read)
    if as_json:
        payload = []
        for w in entries:
            s = statuses.get(w.symbol)
            payload.append(
                {
                    "symbol": w.symbol,
                    "origin": w.origin,
                    "years": w.years,
                    "added_at": w.added_at.isoformat(),
                    "first_date": s.first_date.isoformat() if s and s.first_date else None,
                    "last_date": s.last_date.isoformat() if s and s.last_date else None,
                    "bar_count": s.bar_count if s else 0,
                    "last_error": s.last_error if s else None,
                }
            )
        out.print_json(json.dumps(payload))
        return
    if not entries:
        out.print("The watchlist is empty. Add symbols with: marketdata symbols add AAPL MSFT")
        return
    table = Table(title=f"Watchlist ({len(entries)} symbols)")
    for name, justify in (
        ("Symbol", "left"),
        ("From", "left"),
        ("Years", "right"),
        ("First", "left"),
        ("Last", "left"),
        ("Bars", "right"),
        ("Last error", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for w in entries:
        s = statuses.get(w.symbol)
        table.add_row(
            w.symbol,
            "MARKETDATA_SYMBOLS" if w.origin == "config" else "added",
            str(w.years),
            str(s.first_date) if s and s.first_date else "—",
            str(s.last_date) if s and s.last_date else "—",
            f"{s.bar_count:,}" if s else "0",
            (s.last_error or "") if s else "",
        )
    out.print(table)


@symbols_app.command()
def add(
    ctx: typer.Context,
    symbols: SymbolArgs,
    years: Annotated[
        int | None,
        typer.Option(
            "--years",
            min=1,
            max=60,
            help="Years of history to keep (default MARKETDATA_BACKFILL_YEARS, 5).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Watch symbols: the next backfill (or the daily run) fetches their history.

    Example: marketdata symbols add NVDA BRK.B --years 10
    """
    from marketdata.service import watchlist

    config = _config(ctx)
    changes = with_store(
        settings_of(ctx),
        lambda store: watchlist.add(
            store, symbols, years=years, config=config, at=dt.datetime.now(dt.UTC)
        ),
    )
    _report(changes, done="watching", same="already watched")
    if any(c.changed for c in changes):
        out.print("Fetch their history now with: marketdata backfill")


@symbols_app.command()
def remove(
    ctx: typer.Context,
    symbols: SymbolArgs,
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also delete their stored bars, revisions and actions."),
    ] = False,
) -> None:
    """Stop watching symbols; their stored bars stay unless --purge."""
    from marketdata.service import watchlist

    config = _config(ctx)
    changes = with_store(
        settings_of(ctx),
        lambda store: watchlist.remove(
            store, symbols, purge=purge, config=config, at=dt.datetime.now(dt.UTC)
        ),
    )
    _report(changes, done="no longer watching", same="was not watched")
    for c in changes:
        if purge:
            out.print(f"{c.symbol}: deleted {c.purged_bars:,} stored bar(s)")
    if not purge:
        out.print("Stored bars were kept (delete them with --purge).")


def _report(changes: list[Change], *, done: str, same: str) -> None:
    for c in changes:
        out.print(f"{c.symbol}: {done if c.changed else same}")
