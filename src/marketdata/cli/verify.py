"""``marketdata verify``: compare stored bars with Yahoo or a file, field by field.

:func:`register` adds the command to the Typer app. The command parses options, calls
:func:`marketdata.service.verify.verify_symbols` and renders its report; the ``*_table`` and
``one_sided`` functions are pure (report in, rich renderable out).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from marketdata.cli._common import EXIT_PARTIAL, date_option, err, out, settings_of
from marketdata.errors import InputError

if TYPE_CHECKING:
    from marketdata.service.verify import BarSource, SymbolResult, VerifyReport

# polars, httpx and the database drivers are imported inside the command (fast --help).

FileAdjusted = Literal["none", "splits", "all"]

#: One-sided sessions listed per symbol before "… and N more".
SHOWN_DATES = 10
_ADJUSTED = {"none": "raw", "splits": "split-adjusted", "all": "split- and dividend-adjusted"}


def _tolerance(value: float) -> float:
    if not 0 < value < 1:
        msg = f"{value:g} is not between 0 and 1 (exclusive); 0.005 means 0.5 %"
        raise typer.BadParameter(msg)
    return value


def _value(field: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if field == "volume" else f"{value:.10g}"


def _relative(value: float) -> str:
    """A relative difference in --tolerance's units (a fraction), to three figures."""
    return f"{value:.3g}" if value != float("inf") else "∞ (missing or zero)"


def summary_table(report: VerifyReport) -> Table:
    """One row per symbol: what was compared and how well it agreed."""
    table = Table(
        title=f"Ours vs {escape(report.against)}: both {_ADJUSTED[report.adjusted]}, "
        f"tolerance {report.tolerance:g}",
        title_justify="left",
    )
    table.add_column("Symbol", style="bold", no_wrap=True)
    table.add_column("Range", no_wrap=True)
    table.add_column("Compared", justify="right")
    table.add_column("Within tolerance", justify="right")
    table.add_column("Only ours", justify="right")
    table.add_column("Only theirs", justify="right")
    table.add_column("Worst difference", overflow="fold")
    for r in report.results:
        span = f"{r.start} – {r.end}" if r.start and r.end else "—"
        check = r.check
        if check is None:
            table.add_row(r.symbol, span, "—", "—", "—", "—", f"[red]{escape(r.error or '')}[/red]")
            continue
        share, top = check.share_within, (check.worst[0] if check.worst else None)
        style = "green" if check.agrees else "yellow"
        within = f"{check.within:,} ({share:.2%})" if share is not None else "—"
        table.add_row(
            r.symbol,
            span,
            f"{check.compared:,}",
            f"[{style}]{within}[/{style}]",
            f"{len(check.only_ours):,}",
            f"{len(check.only_theirs):,}",
            f"{top.field} {top.date} {_relative(top.relative)}" if top else "—",
        )
    return table


def worst_table(result: SymbolResult) -> Table:
    """The largest differences of one symbol, worst first."""
    check = result.check
    tolerance = check.tolerance if check else 0.0
    table = Table(title=f"{result.symbol}: worst differences", title_justify="left")
    table.add_column("Date", no_wrap=True)
    table.add_column("Field")
    table.add_column("Ours", justify="right")
    table.add_column("Theirs", justify="right")
    table.add_column("Rel. diff", justify="right")
    for d in check.worst if check else ():
        style = "red" if d.relative > tolerance else ""
        table.add_row(
            d.date.isoformat(),
            d.field,
            _value(d.field, d.ours),
            _value(d.field, d.theirs),
            f"[{style}]{_relative(d.relative)}[/{style}]" if style else _relative(d.relative),
        )
    return table


def one_sided(result: SymbolResult, *, limit: int = SHOWN_DATES) -> Text:
    """The sessions only one side has, ``limit`` per side at most."""
    text = Text()
    check = result.check
    if check is None:
        return text
    for side, dates in (("only in ours", check.only_ours), ("only in theirs", check.only_theirs)):
        if not dates:
            continue
        shown = ", ".join(d.isoformat() for d in dates[:limit])
        more = f" … and {len(dates) - limit:,} more" if len(dates) > limit else ""
        text.append(f"{result.symbol}: {len(dates):,} session(s) {side}: {shown}{more}\n")
    return text


def verify(
    ctx: typer.Context,
    symbols: Annotated[list[str], typer.Argument(help="Symbols to verify.", show_default=False)],
    against: Annotated[
        str,
        typer.Option(
            "--against",
            metavar="yahoo|FILE",
            help="yahoo, or a CSV, CSV.gz or Parquet file in the import layout.",
            show_default=False,
        ),
    ],
    start: Annotated[
        dt.datetime | None,
        date_option("First session date (YYYY-MM-DD; default: each symbol's first stored bar)."),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        date_option("Last session date (YYYY-MM-DD; default: each symbol's last stored bar)."),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            help="Largest relative difference |ours − theirs| / |theirs| that still agrees.",
            callback=_tolerance,
        ),
    ] = 0.005,
    file_adjusted: Annotated[
        FileAdjusted | None,
        typer.Option(
            "--file-adjusted",
            help="How the FILE's prices are adjusted: none (raw), splits, or all "
            "(splits and dividends). Default: none.",
            show_default=False,
        ),
    ] = None,
    report_path: Annotated[
        Path | None,
        typer.Option("--report", help="Also write the report as JSON here.", show_default=False),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of tables.")
    ] = False,
    worst: Annotated[
        int, typer.Option(min=0, help="Largest differences listed per symbol (and reported).")
    ] = 5,
) -> None:
    """Compare stored bars with a second source, field by field, and report where they differ.

    Both sides are adjusted alike: Yahoo's prices are split-adjusted, so ours are read with
    splits applied; a FILE is taken as raw unless --file-adjusted says otherwise.

    Exit status: 0 every compared bar within tolerance and no session on one side only,
    3 differences found, 1 a symbol could not be checked (or any other error).

    Example: marketdata verify AAPL MSFT --against yahoo --start 2024-01-01 --report check.json
    """
    from marketdata.providers.yahoo import YahooClient
    from marketdata.service import verify as service
    from marketdata.storage import open_store

    settings = settings_of(ctx)
    if start and end and start > end:
        raise InputError(f"--start {start.date()} is after --end {end.date()}")
    use_yahoo = against.strip().lower() == "yahoo"
    file_source: BarSource | None = None
    if use_yahoo and file_adjusted is not None:
        raise InputError("--file-adjusted describes a FILE; Yahoo's prices are split-adjusted")
    if not use_yahoo:
        if not Path(against).exists():
            raise InputError(f"--against {against}: neither 'yahoo' nor an existing file")
        file_source = service.load_file(
            Path(against),
            symbols,
            adjusted=file_adjusted or "none",
            chunk_rows=settings.import_chunk_rows,
        )
    progress = Progress(
        TextColumn("[bold]verify"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    )
    task = progress.add_task("", total=len(dict.fromkeys(symbols)))

    def on_symbol(result: SymbolResult) -> None:
        progress.update(task, advance=1, description=result.symbol)

    async def go() -> VerifyReport:
        store = await open_store(settings.database_url)
        progress.start()  # once the database is open: failing to open it stays one line
        client = YahooClient(base_url=settings.yahoo_base_url) if use_yahoo else None
        try:
            source = service.YahooSource(client) if client else file_source
            assert source is not None  # one of the two, chosen above
            return await service.verify_symbols(
                store,
                symbols,
                source,
                at=dt.datetime.now(dt.UTC),
                start=start.date() if start else None,
                end=end.date() if end else None,
                tolerance=tolerance,
                worst=worst,
                progress=on_symbol,
            )
        finally:
            if client is not None:
                await client.aclose()
            await store.aclose()

    try:
        report = asyncio.run(go())
    finally:
        if progress.live.is_started:  # stopping prints a line end when not on a terminal
            progress.stop()
    _emit(report, report_path=report_path, as_json=as_json)
    if report.failed:
        raise typer.Exit(1)
    if not report.agrees:
        raise typer.Exit(EXIT_PARTIAL)  # the sources disagree somewhere


def _emit(report: VerifyReport, *, report_path: Path | None, as_json: bool) -> None:
    payload = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    if as_json:
        out.print_json(payload)
    else:
        out.print(summary_table(report))
        for result in report.results:
            if result.check is not None and result.check.outside:  # else the summary says it
                out.print(worst_table(result))
            out.print(one_sided(result), end="")
        if report.source_rejected_rows:
            err.print(
                f"[yellow]warning:[/yellow] {report.source_rejected_rows:,} row(s) of "
                f"{escape(report.against)} were left out (unparsable, or superseded by a later "
                "row for the same symbol and date)"
            )
    for result in report.failed:
        err.print(
            f"[bold red]error:[/bold red] {escape(result.symbol)}: {escape(result.error or '')}"
        )
    if report_path is not None:
        try:
            report_path.write_text(payload + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write the report to {report_path}: {exc.strerror}") from None
        err.print(f"wrote the report to {escape(str(report_path))}")


def register(app: typer.Typer) -> None:
    """Add ``verify`` to ``app``."""
    app.command("verify")(verify)
