"""``marketdata import`` and ``export``: files and Parquet datasets in and out, with progress.

The commands in :mod:`marketdata.cli.main` parse their arguments and call :func:`run_import`
or :func:`run_export`, which show progress on stderr, call the service functions
(:mod:`marketdata.service.ingest`, :mod:`marketdata.service.export`) and report.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from marketdata.cli._common import EXIT_PARTIAL, err, out, with_store
from marketdata.errors import InputError

if TYPE_CHECKING:
    from marketdata.providers.files import BarFile
    from marketdata.service.actions import ActionsReport
    from marketdata.service.export import DatasetReport
    from marketdata.service.ingest import ImportReport
    from marketdata.settings import Settings
    from marketdata.storage import Store

#: Up to this many files an import shows one progress bar per file; beyond, one for all
#: (its unit is then a mix of CSV bytes and Parquet rows: a rough but steady gauge).
MAX_FILE_BARS = 8


def run_import(settings: Settings, paths: Sequence[Path], *, strict: bool, chunk_rows: int) -> None:
    """Import ``paths`` (files, directories of files, exported datasets) and report.

    An exported dataset's splits and dividends are stored before its bars, so the bars are
    scored with them, as they were in the database that exported them.
    """
    from marketdata.cli import render
    from marketdata.service import export, ingest

    manifests = [m for p in paths if p.is_dir() and (m := export.read_manifest(p)) is not None]
    checked = ingest.check_files(paths)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    per_file = len(checked) <= MAX_FILE_BARS
    tasks: dict[str, TaskID] = {}
    if per_file:
        for f in checked:
            tasks[str(f.path)] = progress.add_task(_label(f.path), total=f.size, rows=0)
    else:
        overall = progress.add_task(
            f"{len(checked):,} files", total=sum(f.size for f in checked), rows=0
        )
    reached: dict[str, int] = {}  # position reached in each file, for the overall bar
    done = 0

    def on_progress(bar_file: BarFile, position: int, rows: int) -> None:
        nonlocal done
        key = str(bar_file.path)
        done += position - reached.get(key, 0)
        reached[key] = position
        task = tasks[key] if per_file else overall
        total_rows = progress.tasks[task].fields["rows"] + rows
        progress.update(task, completed=position if per_file else done, rows=total_rows)

    at = dt.datetime.now(dt.UTC)

    async def go(store: Store) -> tuple[list[ActionsReport], ImportReport]:
        actions = [await export.import_actions(store, m, at=at) for m in manifests]
        report = await ingest.import_files(
            store, checked, at=at, chunk_rows=chunk_rows, strict=strict, progress=on_progress
        )
        return actions, report

    started = time.perf_counter()
    with progress:
        actions, report = with_store(settings, go)
        if per_file:
            for f in checked:
                progress.update(tasks[str(f.path)], completed=f.size)
        else:
            progress.update(overall, completed=sum(f.size for f in checked))
    elapsed = time.perf_counter() - started
    out.print(render.import_summary(report, seconds=elapsed))
    for manifest, loaded in zip(manifests, actions, strict=True):
        out.print(
            f"corporate actions of {escape(str(manifest.directory))}: {loaded.splits:,} "
            f"split(s), {loaded.dividends:,} dividend(s); "
            f"{loaded.splits_changed + loaded.dividends_changed:,} new or changed"
        )
    if report.rejected_count:
        err.print(render.rejected_lines(report), soft_wrap=True)
        err.print(
            f"[yellow]warning:[/yellow] {report.rejected_count:,} row(s) rejected and skipped; "
            "the rest was written.",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_PARTIAL)


def _label(path: Path) -> str:
    """A file's name, with its ``symbol=…`` directory when it has one (dataset parts)."""
    return f"{path.parent.name}/{path.name}" if "=" in path.parent.name else path.name


def run_export(
    settings: Settings,
    symbols: Sequence[str],
    *,
    all_: bool,
    fmt: Literal["csv", "parquet"],
    out_path: Path | None,
    start: dt.date | None,
    end: dt.date | None,
    overwrite: bool,
) -> None:
    """Export to one file (CSV or Parquet), standard output (CSV) or a Parquet dataset."""
    from marketdata.service import export

    if not symbols and not all_:
        raise InputError("name at least one symbol, or pass --all")
    if start and end and start > end:
        raise InputError(f"--start {start} is after --end {end}")
    dataset = out_path is not None and export.is_dataset_target(out_path, fmt)
    if dataset:
        assert out_path is not None  # a dataset needs --out
        export.check_directory(out_path, overwrite=overwrite)  # before any work
    progress = Progress(
        TextColumn("[bold]export"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn("symbols, {task.fields[rows]:,} bars"),
        TimeRemainingColumn(),
        console=err,
        disable=out_path is None,  # CSV on stdout: keep the terminal for the data
    )
    task = progress.add_task("export", total=None, rows=0)

    def on_symbol(_: str, rows: int) -> None:
        progress.update(task, advance=1, rows=progress.tasks[task].fields["rows"] + rows)

    async def go(store: Store) -> int | DatasetReport:
        chosen = list(symbols)
        if all_:
            chosen = sorted(set(chosen) | set(await export.stored_symbols(store)))
        progress.update(task, total=len(chosen))
        if dataset:
            assert out_path is not None  # a dataset needs --out
            return await export.export_dataset(
                store,
                chosen,
                out=out_path,
                at=dt.datetime.now(dt.UTC),
                start=start,
                end=end,
                overwrite=overwrite,
                progress=on_symbol,
            )
        target: Path | Any = out_path if out_path else sys.stdout.buffer
        return await export.export_symbols(
            store, chosen, fmt=fmt, out=target, start=start, end=end, progress=on_symbol
        )

    with progress:
        result = with_store(settings, go)
    if isinstance(result, int):
        if out_path:
            err.print(f"wrote {result:,} bars to {escape(str(out_path))}")
        return
    err.print(
        f"wrote {result.rows:,} bars of {result.symbols:,} symbol(s), {result.splits:,} "
        f"split(s) and {result.dividends:,} dividend(s) to {escape(str(result.path))} "
        "(a Parquet dataset partitioned by symbol; `marketdata import` reads it back)"
    )
