"""``marketdata db``: apply or inspect the database schema's migrations.

:func:`register` adds the ``db`` group (``upgrade``, ``current``) to the root app.
"""

from __future__ import annotations

import typer

from marketdata.cli._common import out, settings_of
from marketdata.storage.urls import DatabaseUrl

db_app = typer.Typer(help="Database schema: apply or inspect migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply all pending migrations (safe to run any time)."""
    from marketdata.storage import opening
    from marketdata.storage.migrate import current_revision, upgrade

    db = DatabaseUrl.parse(settings_of(ctx).database_url)
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

    db = DatabaseUrl.parse(settings_of(ctx).database_url)
    with opening(db):
        current = current_revision(db)
        kind = bars_kind(db) if current else None
    head = head_revision()
    state = "up to date" if current == head else "behind: run `marketdata db upgrade`"
    out.print(f"{db.display}: revision {current or 'none'} (needs {head}) — {state}")
    if kind:
        out.print(f"bars is stored as a {kind}")


def register(app: typer.Typer) -> None:
    """Add the ``db`` group to the root app."""
    app.add_typer(db_app, name="db")
