"""``marketdata import`` and ``export``: the commands that move bars between files and the store.

:func:`register` adds both to the root app. They parse their arguments and hand them to
:func:`marketdata.cli.transfer.run_import` and :func:`~marketdata.cli.transfer.run_export`,
which show progress, call the service layer and report.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

import typer

from marketdata.cli._common import settings_of

ExportFormat = Literal["csv", "parquet"]


# -- import -----------------------------------------------------------------------------------


def import_(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="CSV, CSV.gz or Parquet files with a header: symbol,date,open,high,low,close,"
            "volume[,vwap,transactions] or Polygon flat files' day-aggregates layout; or "
            "directories of them (read recursively, in name order), such as a dataset written "
            "by `export --format parquet --out DIR`.",
            show_default=False,
        ),
    ],
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Reject a whole file, writing nothing, if any row is bad."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            "--chunk-rows",
            min=1000,
            help="Rows per transaction (default MARKETDATA_IMPORT_CHUNK_ROWS, 100,000).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load bars from files; identical rows are left alone, changed rows keep a revision.

    Bad rows (unparsable number or date, empty symbol, wrong number of fields) are reported
    with file and line and skipped. A dataset from `marketdata export` brings its splits and
    dividends too: export from one database and import into another to move between backends.

    Example: marketdata import aapl.csv 2024-01-*.csv.gz exported-dataset/
    """
    from marketdata.cli import transfer

    settings = settings_of(ctx)
    transfer.run_import(
        settings,
        files,
        strict=strict,
        chunk_rows=chunk_rows or settings.import_chunk_rows,
        as_json=as_json,
    )


# -- export -----------------------------------------------------------------------------------


def export(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None, typer.Argument(help="Symbols to export.", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Export every stored symbol.")] = False,
    fmt: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format (default: from the --out name, .parquet/.pq → parquet, "
            "else csv; .csv.gz is gzip).",
            show_default=False,
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file (CSV defaults to standard output). With --format parquet, a "
            "directory (existing, or a new path without a suffix) gets a dataset partitioned "
            "by symbol; a name like bars.parquet gets one file.",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(
            help="First session date (YYYY-MM-DD).", formats=["%Y-%m-%d"], show_default=False
        ),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(
            help="Last session date (YYYY-MM-DD).", formats=["%Y-%m-%d"], show_default=False
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace an earlier dataset export in the --out directory."
        ),
    ] = False,
) -> None:
    """Write stored bars as CSV or Parquet, in the layout `marketdata import` reads.

    Example: marketdata export AAPL BRK.B --format parquet --out bars.parquet

    Example: marketdata export --all --format parquet --out dataset/  (then, on another
    database: marketdata import dataset/)
    """
    from marketdata.cli import transfer

    transfer.run_export(
        settings_of(ctx),
        symbols or [],
        all_=all_,
        fmt=fmt,
        out_path=out_path,
        start=start.date() if start else None,
        end=end.date() if end else None,
        overwrite=overwrite,
    )


def register(app: typer.Typer) -> None:
    """Add ``import`` and ``export`` to the root app."""
    app.command("import")(import_)
    app.command()(export)
