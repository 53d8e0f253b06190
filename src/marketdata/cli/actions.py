"""``marketdata actions``: load and list splits and dividends (adjusted reads use them)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from marketdata.cli._common import out, settings_of, with_store
from marketdata.symbols import normalize_symbols

if TYPE_CHECKING:
    import polars as pl

    from marketdata.service.actions import ActionsReport
    from marketdata.storage import Store

actions_app = typer.Typer(
    help="Corporate actions: load splits and dividends from a file or the provider, list them.",
    no_args_is_help=True,
)


def _report(report: ActionsReport) -> None:
    out.print(
        f"splits: {report.splits:,} given, {report.splits_changed:,} new or changed; "
        f"dividends: {report.dividends:,} given, {report.dividends_changed:,} new or changed"
    )
    if report.rescored:
        out.print(f"re-validated: {', '.join(report.rescored)}")


@actions_app.command("import")
def import_actions(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="CSV, Parquet or Polygon JSON files of splits (symbol, execution_date, "
            "split_from, split_to) or dividends (symbol, ex_dividend_date, cash_amount, …).",
            show_default=False,
        ),
    ],
) -> None:
    """Store splits and dividends from files, then re-validate the symbols they touch.

    Symbols are upper-cased (``brk.b`` is BRK.B); a file with an invalid one is refused whole.
    """
    import polars as pl

    from marketdata.providers.parsing import normalize_symbol_column
    from marketdata.service.actions import read_actions_file, store_actions

    settings = settings_of(ctx)
    parsed = [  # every file is checked first
        tuple(normalize_symbol_column(kind, name=str(path)) for kind in read_actions_file(path))
        for path in files
    ]
    splits = pl.concat([s for s, _ in parsed], how="vertical_relaxed")
    dividends = pl.concat([d for _, d in parsed], how="vertical_relaxed")
    source = "file:" + ",".join(p.name for p in files)
    report = with_store(
        settings,
        lambda store: store_actions(
            store, splits=splits, dividends=dividends, source=source, at=dt.datetime.now(dt.UTC)
        ),
    )
    _report(report)


@actions_app.command("fetch")
def fetch(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None,
        typer.Argument(help="Symbols (default: every stored symbol).", show_default=False),
    ] = None,
    provider: Annotated[
        Literal["polygon", "synthetic"] | None,
        typer.Option(help="Where from (default: polygon with a key, else synthetic)."),
    ] = None,
    since: Annotated[
        dt.datetime | None,
        typer.Option(help="Only actions on or after this date.", formats=["%Y-%m-%d"]),
    ] = None,
) -> None:
    """Fetch splits and dividends from the provider, store them, re-validate what changed."""
    from marketdata.service.actions import fetch_actions
    from marketdata.service.sources import open_provider

    settings = settings_of(ctx)
    source = open_provider(settings, provider)

    async def run(store: Store) -> ActionsReport:
        try:
            names = normalize_symbols(symbols or ()) or [
                s.symbol for s in await store.symbol_statuses()
            ]
            return await fetch_actions(
                store,
                source,
                names,
                at=dt.datetime.now(dt.UTC),
                since=since.date() if since else None,
            )
        finally:
            await source.aclose()

    _report(with_store(settings, run))


@actions_app.command("list")
def list_actions(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None, typer.Argument(help="Only these symbols.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show stored splits and dividends."""
    settings = settings_of(ctx)

    names = normalize_symbols(symbols or ()) or None

    async def run(store: Store) -> tuple[pl.DataFrame, pl.DataFrame]:
        return await store.read_splits(names), await store.read_dividends(names)

    splits, dividends = with_store(settings, run)
    if as_json:
        payload = {
            "splits": json.loads(splits.write_json()),
            "dividends": json.loads(dividends.write_json()),
        }
        out.print_json(json.dumps(payload))
        return
    if splits.is_empty() and dividends.is_empty():
        out.print("No corporate actions stored. Load some with: marketdata actions fetch")
        return
    for title, frame in (("Splits", splits), ("Dividends", dividends)):
        if frame.is_empty():
            continue
        table = Table(title=f"{title} ({frame.height:,})", title_justify="left")
        for column in frame.columns:
            table.add_column(column)
        for row in frame.iter_rows():
            table.add_row(*("—" if v is None else str(v) for v in row))
        out.print(table)
