"""``marketdata import`` and ``export``: files and Parquet datasets in and out, with progress.

The commands in :mod:`marketdata.cli.transfer_commands` parse their arguments and call
:func:`run_import` or :func:`run_export`, which show progress on stderr, call the service functions
(:mod:`marketdata.service.ingest`, :mod:`marketdata.service.export`) and report. Ctrl-C stops
either with a line saying what was written (exit 130); the ``*_text``/``*_table`` functions
below build those messages and the import's per-file summary, pure, from the reports.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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

from marketdata.cli._common import EXIT_INTERRUPTED, EXIT_PARTIAL, err, out, with_store
from marketdata.cli.render_transfer import (
    file_label,
    file_names,
    files_table,
    import_dict,
    replaced_lines,
    stopped_export_text,
    stopped_import_text,
    strict_text,
    written_so_far_text,
)
from marketdata.errors import DataRejected, InputError
from marketdata.symbols import normalize_symbol

if TYPE_CHECKING:
    from marketdata.providers.files import BarFile
    from marketdata.service.actions import ActionsReport
    from marketdata.service.export import DatasetReport, Manifest
    from marketdata.service.ingest import ImportReport
    from marketdata.settings import Settings
    from marketdata.storage import Store

ExportFormat = Literal["csv", "parquet"]

#: Up to this many files an import shows one progress bar per file; beyond, one for all
#: (its unit is then a mix of CSV bytes and Parquet rows: a rough but steady gauge).
MAX_FILE_BARS = 8


def run_import(
    settings: Settings,
    paths: Sequence[Path],
    *,
    strict: bool,
    chunk_rows: int,
    as_json: bool = False,
) -> None:
    """Import ``paths`` (files, directories of files, exported datasets) and report.

    An exported dataset's splits and dividends are stored before its bars, so the bars are
    scored with them, as they were in the database that exported them. With ``strict``, a file
    with a bad row is rejected whole and the others are imported; the import then ends with
    :class:`DataRejected` (exit 1) after the summary.
    """
    from marketdata.service import ingest

    state = _Import(report=ingest.ImportReport())
    try:
        seconds = _import(
            settings, paths, state, strict=strict, chunk_rows=chunk_rows, quiet=as_json
        )
    except KeyboardInterrupt:
        text = escape(stopped_import_text(state.report, state.files, state.loaded))
        err.print(f"[yellow]stopped.[/yellow] {text}", soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception:
        if state.report.counts.total:  # an unreadable file half-way: say what is kept
            err.print(escape(written_so_far_text(state.report)), soft_wrap=True)
        raise
    _report_import(state.report, state.loaded, seconds=seconds, as_json=as_json)


@dataclass(slots=True, kw_only=True)
class _Import:
    """What an import has done so far; read after Ctrl-C too."""

    report: ImportReport
    files: list[BarFile] = field(default_factory=list)  # every file it will read, checked
    loaded: list[tuple[Manifest, ActionsReport]] = field(default_factory=list)  # datasets' actions


def _import(
    settings: Settings,
    paths: Sequence[Path],
    state: _Import,
    *,
    strict: bool,
    chunk_rows: int,
    quiet: bool,
) -> float:
    """Check and import the files, filling ``state`` as it goes; the seconds it took."""
    from marketdata.service import export, ingest

    manifests = [m for p in paths if p.is_dir() and (m := export.read_manifest(p)) is not None]
    checked = state.files
    checked.extend(ingest.check_files(paths))
    if checked and not any(f.has_rows for f in checked):
        raise InputError(f"{file_names([f.path for f in checked])}: no rows (a header only)")
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=quiet,
    )
    per_file = len(checked) <= MAX_FILE_BARS
    tasks: dict[str, TaskID] = {}
    if per_file:
        for f in checked:
            tasks[str(f.path)] = progress.add_task(file_label(f.path), total=f.size, rows=0)
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

    async def go(store: Store) -> None:
        progress.start()  # once the database is open: failing to open it stays one line
        for manifest in manifests:
            state.loaded.append((manifest, await export.import_actions(store, manifest, at=at)))
        await ingest.import_files(
            store,
            checked,
            at=at,
            chunk_rows=chunk_rows,
            strict=strict,
            progress=on_progress,
            report=state.report,
        )

    started = time.perf_counter()
    try:
        with_store(settings, go)
        if per_file:
            for f in checked:
                progress.update(tasks[str(f.path)], completed=f.size)
        else:
            progress.update(overall, completed=sum(f.size for f in checked))
    finally:
        if progress.live.is_started:  # stopping prints a line end when not on a terminal
            progress.stop()
    return time.perf_counter() - started


def _report_import(
    report: ImportReport,
    loaded: list[tuple[Manifest, ActionsReport]],
    *,
    seconds: float,
    as_json: bool,
) -> None:
    """Print the summary; end with the exit status the outcome calls for."""
    from marketdata.cli import render

    if as_json:
        out.print_json(json.dumps(import_dict(report, loaded, seconds=seconds)))
    else:
        out.print(render.import_summary(report, seconds=seconds))
        table = files_table(report)
        if table is not None:
            out.print(table)
        for line in replaced_lines(report):
            out.print(line)
        for manifest, actions in loaded:
            out.print(
                f"corporate actions of {escape(str(manifest.directory))}: {actions.splits:,} "
                f"split(s), {actions.dividends:,} dividend(s); "
                f"{actions.splits_changed + actions.dividends_changed:,} new or changed"
            )
    empty = [f.path for f in report.per_file if f.status == "no rows"]
    if empty:
        err.print(f"[yellow]note:[/yellow] {escape(file_names(empty))}: no rows (a header only)")
    if report.rejected_count:
        err.print(render.rejected_lines(report), soft_wrap=True)
    if report.rejected_files:
        raise DataRejected(strict_text(report))
    if report.rejected_count:
        err.print(
            f"[yellow]warning:[/yellow] {report.rejected_count:,} row(s) rejected and skipped; "
            "the rest was written.",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_PARTIAL)


def run_export(
    settings: Settings,
    symbols: Sequence[str],
    *,
    all_: bool,
    fmt: ExportFormat | None,
    out_path: Path | None,
    start: dt.date | None,
    end: dt.date | None,
    overwrite: bool,
) -> None:
    """Export to one file (CSV, CSV.gz or Parquet), standard output (CSV) or a Parquet dataset.

    ``fmt`` is the ``--format`` asked for: without one, the ``--out`` name decides (see
    :func:`marketdata.service.export.output_format`), and one that contradicts it is refused.
    """
    from marketdata.service import export

    if not symbols and not all_:
        raise InputError("name at least one symbol, or pass --all")
    if start and end and start > end:
        raise InputError(f"--start {start} is after --end {end}")
    names = list(dict.fromkeys(_stored_name(s) for s in symbols))

    compress = False
    if out_path is None:
        chosen_format: ExportFormat = fmt or "csv"
    else:
        chosen_format, compress = export.output_format(out_path, fmt)
    dataset = out_path is not None and export.is_dataset_target(out_path, chosen_format)
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
    tally = {"symbols": 0, "rows": 0, "total": 0}

    def on_symbol(_: str, rows: int) -> None:
        tally["symbols"] += 1
        tally["rows"] += rows
        progress.update(task, advance=1, rows=tally["rows"])

    async def go(store: Store) -> int | DatasetReport:
        chosen = names
        if all_:
            chosen = sorted(set(chosen) | set(await export.stored_symbols(store)))
        tally["total"] = len(chosen)
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
            store,
            chosen,
            fmt=chosen_format,
            out=target,
            start=start,
            end=end,
            progress=on_symbol,
            compress=compress,
        )

    try:
        with progress:
            result = with_store(settings, go)
    except KeyboardInterrupt:
        state = export.dataset_state(out_path) if dataset and out_path else None
        text = stopped_export_text(
            out_path,
            dataset_state=state,
            symbols=tally["symbols"],
            total=tally["total"],
            rows=tally["rows"],
        )
        err.print(f"[yellow]stopped.[/yellow] {escape(text)}", soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if isinstance(result, int):
        if out_path:
            kind = "gzip-compressed CSV" if compress else export.FORMAT_NAMES[chosen_format]
            err.print(f"wrote {result:,} bars to {escape(str(out_path))} ({kind})")
        return
    err.print(
        f"wrote {result.rows:,} bars of {result.symbols:,} symbol(s), {result.splits:,} "
        f"split(s) and {result.dividends:,} dividend(s) to {escape(str(result.path))} "
        "(a Parquet dataset partitioned by symbol; `marketdata import` reads it back)"
    )


def _stored_name(symbol: str) -> str:
    """``symbol`` as stored: normalized (``aapl`` is AAPL) when valid, else as typed.

    A database may still hold a symbol today's rule refuses (stored before it, or moved in by
    a dataset); it stays exportable by name.
    """
    try:
        return normalize_symbol(symbol)
    except InputError:
        return symbol.strip()
