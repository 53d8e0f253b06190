"""``marketdata backup [--to DIR]``, ``backup verify``, ``backup list`` and ``restore``.

The commands parse options, call :mod:`marketdata.service.backup_run` (the same code the
scheduled backup runs) with a status line for the long steps, and render the result; the
``*_table`` functions are pure (result in, rich table out).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.box import SIMPLE
from rich.markup import escape
from rich.table import Table

from marketdata.cli._common import EXIT_PARTIAL, err, out, settings_of
from marketdata.errors import NotFound, SchemaOutOfDate
from marketdata.storage.urls import DatabaseUrl

if TYPE_CHECKING:
    from marketdata.service.backup import Comparison, Manifest
    from marketdata.service.backup_files import Entry
    from marketdata.service.backup_run import BackupOutcome
    from marketdata.storage import Store

# The database drivers and the service modules are imported inside the commands (fast --help).

backup_app = typer.Typer(no_args_is_help=False)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} TB"  # pragma: no cover - the loop returns at GB


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _verified(manifest: Manifest) -> str:
    if manifest.verified is None:
        return "[yellow]not run[/yellow]"
    return "[green]yes[/green]" if manifest.verified else "[red]FAILED[/red]"


def comparison_table(comparison: Comparison, *, title: str) -> Table:
    """One row per table: rows in the manifest, rows restored, and whether they match."""
    table = Table(title=title, title_justify="left")
    table.add_column("Table", style="bold", no_wrap=True)
    table.add_column("Rows (manifest)", justify="right")
    table.add_column("Rows (restored)", justify="right")
    table.add_column("Result")
    for check in comparison.tables:
        status = check.status
        style = "green" if status == "match" else "red"
        table.add_row(
            check.table,
            f"{check.expected.rows:,}" if check.expected else "—",
            f"{check.actual.rows:,}" if check.actual else "—",
            f"[{style}]{status}[/{style}]",
        )
    if not comparison.revision_matches:
        table.add_row(
            "schema revision",
            comparison.expected_revision or "none",
            comparison.actual_revision or "none",
            "[red]mismatch[/red]",
        )
    return table


def backups_table(entries: list[Entry], *, directory: Path) -> Table:
    """The backups, oldest first: name (its UTC time), size, verified, why retention keeps
    each."""
    table = Table(title=f"Backups in {escape(str(directory))}", title_justify="left", box=SIMPLE)
    table.add_column("Backup (UTC time)", no_wrap=True)
    table.add_column("Size", justify="right", no_wrap=True)
    table.add_column("Verified", no_wrap=True)
    table.add_column("Kept because", overflow="fold", min_width=16)
    for e in entries:
        m = e.manifest
        kept = escape(e.kept.replace(", ", "\n")) if e.kept else "[dim]pruned next time[/dim]"
        size = _size(m.file_size) if e.present else "[red]file missing[/red]"
        table.add_row(m.name, size, _verified(m), kept)
    return table


def _comparison_json(comparison: Comparison | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    return {
        "matches": comparison.matches,
        "schema_revision": {
            "manifest": comparison.expected_revision,
            "restored": comparison.actual_revision,
        },
        "tables": {
            c.table: {
                "status": c.status,
                "manifest_rows": c.expected.rows if c.expected else None,
                "restored_rows": c.actual.rows if c.actual else None,
            }
            for c in comparison.tables
        },
    }


@contextmanager
def _status(text: str) -> Iterator[Callable[[str], None]]:
    """A status line on stderr; yields the function that updates it (thread-safe)."""
    with err.status(text) as line:

        def update(message: str) -> None:
            line.update(escape(message))

        yield update


# -- backup -------------------------------------------------------------------------------------


@backup_app.callback(invoke_without_command=True)
def backup(
    ctx: typer.Context,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Directory to write into (default MARKETDATA_BACKUP_DIR, data_dir/backups).",
            show_default=False,
        ),
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip restoring the copy into a scratch database.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Back up the database now (verified); `backup verify` and `backup list` check backups.

    Safe while the service writes: the copy (SQLite online backup or pg_dump), a manifest with
    every table's row count and checksum, then a restore into a scratch database to verify it;
    older backups are then pruned by retention (MARKETDATA_BACKUP_KEEP_DAILY/WEEKLY).

    Exit status: 0 backed up and verified, 3 the verification found differences, 1 error.

    Example: marketdata backup --to /mnt/backups
    """
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import replace

    from marketdata.service.backup_files import BackupConfig
    from marketdata.service.backup_run import take_backup
    from marketdata.storage import open_store

    settings = settings_of(ctx)
    db = DatabaseUrl.parse(settings.database_url)
    config = BackupConfig.from_settings(settings)
    if to is not None:
        config = replace(config, directory=to)
    if db.backend == "sqlite" and not db.sqlite_path.is_file():
        raise NotFound(f"no database at {db.sqlite_path}: nothing to back up")

    async def go(progress: Callable[[str], None]) -> BackupOutcome:
        store: Store | None = None
        try:
            store = await open_store(settings.database_url, create_schema=False)
        except SchemaOutOfDate as exc:
            err.print(f"[yellow]note:[/yellow] {escape(str(exc))}; the result is not recorded")
        try:
            return await take_backup(
                db,
                config,
                at=dt.datetime.now(dt.UTC),
                verify=not no_verify,
                store=store,
                progress=progress,
            )
        finally:
            if store is not None:
                await store.aclose()

    with _status(f"backing up {escape(db.display)}") as progress:
        outcome = asyncio.run(go(progress))
    _emit_backup(outcome, as_json=as_json)
    if outcome.verify_error is not None:
        raise typer.Exit(1)
    if not outcome.ok:
        raise typer.Exit(EXIT_PARTIAL)


def _emit_backup(outcome: BackupOutcome, *, as_json: bool) -> None:
    m = outcome.manifest
    if as_json:
        payload = {
            "path": str(outcome.path),
            "ok": outcome.ok,
            "manifest": m.to_dict(),
            "verification": _comparison_json(outcome.comparison),
            "verify_error": outcome.verify_error,
            "pruned": list(outcome.pruned),
            "kept": outcome.kept,
        }
        out.print_json(json.dumps(payload))
    else:
        out.print(
            f"backed up {escape(m.source)} to {escape(str(outcome.path))}: "
            f"{_size(m.file_size)}, {len(m.tables)} tables, {m.rows:,} rows "
            f"(schema {m.schema_revision or 'none'})"
        )
        if outcome.comparison is not None and outcome.comparison.matches:
            out.print(
                f"[green]verified:[/green] restored into a scratch database, all "
                f"{len(outcome.comparison.tables)} tables match the manifest"
            )
        elif outcome.comparison is not None:
            out.print(comparison_table(outcome.comparison, title="Verification"))
        elif outcome.verify_error is None:
            out.print("[yellow]not verified[/yellow] (--no-verify)")
        if outcome.pruned:
            out.print(f"pruned {len(outcome.pruned)} old backup(s): {', '.join(outcome.pruned)}")
    if outcome.verify_error is not None:
        err.print(
            "[bold red]error:[/bold red] the backup was written but could not be verified: "
            f"{escape(outcome.verify_error)}"
        )
    elif outcome.comparison is not None and not outcome.comparison.matches:
        err.print(
            "[bold red]error:[/bold red] the restored copy differs from the manifest: "
            f"{escape(outcome.comparison.describe())}; older backups were kept"
        )


# -- backup verify / list -----------------------------------------------------------------------


@backup_app.command("verify")
def verify(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="The backup file (or its manifest).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Restore a backup into a scratch database (a temporary SQLite file, or a temporary
    PostgreSQL database on the configured server, dropped afterwards) and compare every
    table with the manifest. The result is recorded in the manifest.

    Exit status: 0 every table matches, 3 differences, 1 the backup cannot be read.
    """
    from marketdata.service.backup_files import BackupConfig
    from marketdata.service.backup_restore import verify_backup

    settings = settings_of(ctx)
    config = BackupConfig.from_settings(settings)
    with _status(f"verifying {escape(path.name)}") as progress:
        result = asyncio.run(
            verify_backup(
                path,
                config,
                server=DatabaseUrl.parse(settings.database_url),
                at=dt.datetime.now(dt.UTC),
                progress=progress,
            )
        )
    comparison = result.comparison
    if as_json:
        payload = {"backup": result.manifest.name, **(_comparison_json(comparison) or {})}
        out.print_json(json.dumps(payload))
    else:
        out.print(comparison_table(comparison, title=f"{result.manifest.name} vs its manifest"))
        if comparison.matches:
            out.print(f"[green]match:[/green] {len(comparison.tables)} tables")
        else:
            err.print(f"[bold red]mismatch:[/bold red] {escape(comparison.describe())}")
    if not comparison.matches:
        raise typer.Exit(EXIT_PARTIAL)


@backup_app.command("list")
def list_(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Backup directory (default MARKETDATA_BACKUP_DIR).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the backups: when, size, verified, and why retention keeps each."""
    from dataclasses import replace

    from marketdata.service.backup_files import BackupConfig, list_backups

    config = BackupConfig.from_settings(settings_of(ctx))
    if directory is not None:
        config = replace(config, directory=directory)
    entries, problems = list_backups(config, now=dt.datetime.now(dt.UTC))
    for problem in problems:
        err.print(f"[yellow]warning:[/yellow] {escape(problem)}")
    if as_json:
        payload = [
            {
                "path": str(e.path),
                "name": e.manifest.name,
                "created": e.manifest.to_dict()["created"],
                "backend": e.manifest.backend,
                "size": e.manifest.file_size,
                "rows": e.manifest.rows,
                "present": e.present,
                "verified": e.manifest.verified,
                "verify_error": e.manifest.verify_error,
                "kept": e.kept,
            }
            for e in entries
        ]
        out.print_json(json.dumps(payload))
        return
    if not entries:
        where = escape(str(config.directory))
        out.print(f"No backups in {where}. Take one with: marketdata backup")
        return
    out.print(backups_table(entries, directory=config.directory))


# -- restore --------------------------------------------------------------------------------------


def restore(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="The backup file (or its manifest).")
    ],
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database to restore into (default: the configured one). Same backend as "
            "the backup.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the contents of a database that holds data."),
    ] = False,
) -> None:
    """Restore a backup into an empty database and check every table against the manifest.

    Stop the service first (a running backfill refuses the restore). A backup from an older
    schema is upgraded after the check; one from a newer marketdata is refused. To move data
    between SQLite and PostgreSQL use `marketdata export` and `marketdata import` instead.

    Example: marketdata restore data/backups/marketdata-20261125T030000Z.sqlite
    """
    from marketdata.service.backup_files import BackupConfig
    from marketdata.service.backup_restore import restore_backup

    settings = settings_of(ctx)
    target = DatabaseUrl.parse(database_url or settings.database_url)
    config = BackupConfig.from_settings(settings)
    with _status(f"restoring {escape(path.name)}") as progress:
        result = asyncio.run(restore_backup(path, target, config, force=force, progress=progress))
    m = result.manifest
    out.print(
        f"restored {escape(m.name)} (taken {_when(m.created)}) into {escape(result.target)}: "
        f"{len(m.tables)} tables, {m.rows:,} rows, all matching the manifest"
    )
    if result.upgraded_to:
        out.print(
            f"the backup was at schema revision {m.schema_revision}: upgraded to "
            f"{result.upgraded_to}"
        )


def register(app: typer.Typer) -> None:
    """Add ``backup`` (with ``verify`` and ``list``) and ``restore`` to ``app``."""
    app.add_typer(backup_app, name="backup")
    app.command()(restore)
