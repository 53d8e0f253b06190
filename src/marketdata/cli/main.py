"""The ``marketdata`` command: thin commands over the service layer.

Each command builds what it needs from the one :class:`~marketdata.settings.Settings` object,
calls the same service function the API uses, and renders the result. :func:`main` turns any
:class:`~marketdata.errors.MarketDataError` into one clear line on stderr and exit status 1.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer
from rich.markup import escape

from marketdata import __version__, logs
from marketdata.cli import backfill, backup, quality, verify
from marketdata.cli._common import Group, err, load_settings, out, use_plain_flags
from marketdata.cli._common import settings_of as _settings
from marketdata.cli._common import with_store as _with_store
from marketdata.cli.actions import actions_app
from marketdata.cli.symbols import symbols_app
from marketdata.errors import InputError, MarketDataError, NotFound
from marketdata.storage.urls import DatabaseUrl
from marketdata.symbols import normalize_symbols

# Heavy modules (polars, pyarrow, the database drivers, alembic) are imported inside the
# commands that need them, so `--help` and `--version` answer at once.

T = TypeVar("T")

ExportFormat = Literal["csv", "parquet"]


app = typer.Typer(
    name="marketdata",
    help=(
        "Own a clean, verified copy of US daily stock bars: backfill them from Polygon or "
        "import files, check, store (SQLite or PostgreSQL), export and serve them.\n\n"
        "Settings come from MARKETDATA_* environment variables or a .env file; see README."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=Group,
    epilog=(
        "Exit status: 0 success, 1 error, 2 usage error, 3 finished with problems (rejected "
        "rows, failed symbols, differences), 130 interrupted."
    ),
)
db_app = typer.Typer(help="Database schema: apply or inspect migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _version(value: bool) -> None:
    if value:
        out.print(f"marketdata {__version__}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="sqlite:///path.db or postgresql://user@host:port/db "
            "(default: MARKETDATA_DATABASE_URL, else a SQLite file under ./data).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Own a clean, verified copy of US daily stock bars."""
    del version
    settings = load_settings(database_url=database_url)
    logs.configure(settings.log_level, secrets=settings.secret_values(), fmt=settings.log_format)
    ctx.obj = settings


# -- import -----------------------------------------------------------------------------------


@app.command("import")
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

    settings = _settings(ctx)
    transfer.run_import(
        settings,
        files,
        strict=strict,
        chunk_rows=chunk_rows or settings.import_chunk_rows,
        as_json=as_json,
    )


# -- export -----------------------------------------------------------------------------------


@app.command()
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
        _settings(ctx),
        symbols or [],
        all_=all_,
        fmt=fmt,
        out_path=out_path,
        start=start.date() if start else None,
        end=end.date() if end else None,
        overwrite=overwrite,
    )


# -- status -----------------------------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None, typer.Argument(help="Only these symbols.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh the table in place until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.5, help="Seconds between refreshes with --watch.")
    ] = 5.0,
    count: Annotated[
        int | None, typer.Option(min=1, hidden=True, help="Stop --watch after N views.")
    ] = None,
) -> None:
    """Show per-symbol coverage from the maintained summaries (never scans the bars).

    Named symbols without bars are reported on stderr after the others (exit status 1).

    Example: marketdata status --watch --interval 2
    """
    from marketdata.cli import render
    from marketdata.cli import watch as watching

    settings = _settings(ctx)
    names = normalize_symbols(symbols or [])
    if watch:
        if as_json:
            raise InputError("--watch refreshes the table; it does not combine with --json")
        watching.run(settings, names or None, interval=interval, count=count)
        return
    statuses, rules = _with_store(settings, lambda store: watching.read_status(store, names))
    stored = {s.symbol for s in statuses}
    missing = [name for name in names if name not in stored]
    if as_json:
        payload = [
            {
                "symbol": s.symbol,
                "first_date": s.first_date.isoformat() if s.first_date else None,
                "last_date": s.last_date.isoformat() if s.last_date else None,
                "bar_count": s.bar_count,
                "validated_count": s.validated_count,
                "validation_rate": round(s.validated_count / s.bar_count, 6)
                if s.bar_count
                else None,
                "gap_count": s.gap_count,
                "rules": rules.get(s.symbol, {}),
                "last_fetch": s.last_fetch.isoformat() if s.last_fetch else None,
                "last_error": s.last_error,
            }
            for s in statuses
        ]
        out.print_json(json.dumps(payload))
    elif statuses:
        out.print(render.status_table(statuses, rules))
        out.print(render.status_totals(statuses, rules))
    elif not names:
        out.print(watching.NO_BARS)
    if missing:
        raise NotFound(f"no bars stored for {', '.join(missing)}")


# -- db ---------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply all pending migrations (safe to run any time)."""
    from marketdata.storage import opening
    from marketdata.storage.migrate import current_revision, upgrade

    db = DatabaseUrl.parse(_settings(ctx).database_url)
    with opening(db):
        before = current_revision(db)
        after = upgrade(db)
    if before == after:
        out.print(f"{db.display} is up to date (revision {after}).")
    else:
        out.print(f"{db.display} upgraded from {before or 'empty'} to revision {after}.")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and the one this version needs."""
    from marketdata.storage import opening
    from marketdata.storage.migrate import bars_kind, current_revision, head_revision

    db = DatabaseUrl.parse(_settings(ctx).database_url)
    with opening(db):
        current = current_revision(db)
        kind = bars_kind(db) if current else None
    head = head_revision()
    state = "up to date" if current == head else "behind: run `marketdata db upgrade`"
    out.print(f"{db.display}: revision {current or 'none'} (needs {head}) — {state}")
    if kind:
        out.print(f"bars is stored as a {kind}")


# -- serve ------------------------------------------------------------------------------------


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (default MARKETDATA_HOST, 127.0.0.1).", show_default=False),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default MARKETDATA_PORT, 8000).", show_default=False)
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes; they share the database, and each scheduled run happens "
            "once among them.",
        ),
    ] = 1,
) -> None:
    """Serve the REST API (docs at /docs) and run the scheduler (the daily backfill).

    Set MARKETDATA_SCHEDULER=false to serve only (e.g. when `marketdata worker` runs apart).
    """
    import os

    import uvicorn  # only this command needs the server

    from marketdata.api.app import create_app, prepare_database

    settings = _settings(ctx)
    # Fail fast, with one clear line, before the server starts; seed simulated data once here
    # rather than racing in every worker.
    _with_store(settings, lambda store: prepare_database(store, settings, announce=False))
    bind_host = host or settings.host
    bind_port = port or settings.port
    err.print(
        f"serving {escape(DatabaseUrl.parse(settings.database_url).display)} on "
        f"http://{bind_host}:{bind_port} with {workers} worker(s)  (API docs: /docs)"
    )
    if workers == 1:
        uvicorn.run(
            create_app(settings),
            host=bind_host,
            port=bind_port,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's logs go through marketdata.logs (JSON or text)
        )
        return
    # Workers are separate processes that read their settings from the environment: hand
    # them the command line's database.
    os.environ["MARKETDATA_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "marketdata.api.app:app_from_environment",
        factory=True,
        workers=workers,
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # each worker configures marketdata.logs in app_from_environment
    )


@app.command("fake-polygon")
def fake_polygon(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 9100,
    seed: Annotated[int, typer.Option(help="Simulator seed: same seed, same market.")] = 0,
    symbols: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated universe (default: the 15-symbol watchlist).", show_default=False
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Key callers must send (default POLYGON_API_KEY, else any non-empty key).",
            show_default=False,
        ),
    ] = None,
    today: Annotated[
        dt.datetime | None,
        typer.Option(
            help="Last session served (default: the last completed session).",
            formats=["%Y-%m-%d"],
            show_default=False,
        ),
    ] = None,
    page_size: Annotated[
        int | None,
        typer.Option(min=1, help="Results per page, to force pagination.", show_default=False),
    ] = None,
    rate_limit: Annotated[
        int | None,
        typer.Option(min=1, help="Calls per minute before answering 429.", show_default=False),
    ] = None,
    retry_after: Annotated[
        float | None,
        typer.Option(help="Seconds sent in Retry-After with 429s.", show_default=False),
    ] = None,
    throttle_first: Annotated[
        int, typer.Option(min=0, help="Answer the first N data requests with 429.")
    ] = 0,
    error_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of 5xx answers.")
    ] = 0.0,
    plan_start: Annotated[
        dt.datetime | None,
        typer.Option(
            help="Answer 403 'timeframe' before this date (the free plan keeps ~2 years).",
            formats=["%Y-%m-%d"],
            show_default=False,
        ),
    ] = None,
    slow: Annotated[float, typer.Option(min=0.0, help="Seconds of delay per answer.")] = 0.0,
) -> None:
    """Run a local Polygon/Massive look-alike serving simulated data (for tests and demos).

    Point marketdata at it with POLYGON_BASE_URL=http://127.0.0.1:9100 and any API key.
    """
    import uvicorn

    from marketdata.calendar import last_completed_session
    from marketdata.providers.simulator import DEFAULT_SYMBOLS
    from marketdata.testing import FakePolygon, FakePolygonConfig, Faults

    settings = _settings(ctx)
    key = api_key or (
        settings.polygon_api_key.get_secret_value() if settings.polygon_api_key else None
    )
    universe = (
        tuple(s.strip() for s in symbols.split(",") if s.strip()) if symbols else DEFAULT_SYMBOLS
    )
    config = FakePolygonConfig(
        api_key=key,
        seed=seed,
        symbols=universe,
        today=today.date() if today else last_completed_session(dt.datetime.now(dt.UTC)),
        faults=Faults(
            page_size=page_size,
            rate_limit=rate_limit,
            retry_after=retry_after,
            throttle_next=throttle_first,
            error_rate=error_rate,
            plan_start=plan_start.date() if plan_start else None,
            slow_seconds=slow,
        ),
    )
    err.print(
        f"fake Polygon on http://{host}:{port}: {len(universe)} simulated symbols up to "
        f"{config.today}; {'key required' if key else 'any non-empty key accepted'}"
    )
    uvicorn.run(FakePolygon(config).app, host=host, port=port, log_level="info", access_log=False)


# -- commands defined in their own modules ------------------------------------------------------

backfill.register(app)
backup.register(app)
quality.register(app)
verify.register(app)
app.add_typer(actions_app, name="actions")
app.add_typer(symbols_app, name="symbols")
use_plain_flags(app)


def main() -> None:
    """Entry point: run the app, turning marketdata errors into one line and exit 1."""
    try:
        app()
    except MarketDataError as exc:
        message = escape(logs.redact_url_passwords(str(exc)))
        err.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True)
        sys.exit(1)
