"""The ``marketdata`` command: thin commands over the service layer.

Each command builds what it needs from the one :class:`~marketdata.settings.Settings` object,
calls the same service function the API uses, and renders the result. :func:`main` turns any
:class:`~marketdata.errors.MarketDataError` into one clear line on stderr and exit status 1.

This module holds the root app (its options and ``status``); the other commands live in their
own modules, each adding its commands to :data:`app` with ``register(app)``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from marketdata import __version__, logs
from marketdata.cli import backfill, backup, db, quality, serve, transfer_commands, verify
from marketdata.cli._common import Group, err, load_settings, out, use_plain_flags
from marketdata.cli._common import settings_of as _settings
from marketdata.cli._common import with_store as _with_store
from marketdata.cli.actions import actions_app
from marketdata.cli.symbols import symbols_app
from marketdata.errors import InputError, MarketDataError, NotFound
from marketdata.symbols import normalize_symbols

# Heavy modules (polars, pyarrow, the database drivers, alembic) are imported inside the
# commands that need them, so `--help` and `--version` answer at once.


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


# -- status -----------------------------------------------------------------------------------


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


# -- commands, in `--help` order (commands as registered, then groups as registered) -----------

transfer_commands.register(app)  # import, export
app.command()(status)
db.register(app)  # the first group
serve.register(app)  # serve, fake-polygon
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
