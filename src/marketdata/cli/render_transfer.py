"""What ``marketdata import`` and ``export`` print: the per-file table, the ``--json`` summary,
and the lines said after ``--strict`` or Ctrl-C. Pure functions of the reports, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from marketdata.providers.files import BarFile
    from marketdata.service.actions import ActionsReport
    from marketdata.service.export import Manifest
    from marketdata.service.ingest import FileReport, ImportReport

#: Up to this many files the import summary lists every file; beyond, only those with problems.
MAX_FILE_ROWS = 20


def file_names(paths: Sequence[Path], *, limit: int = 3) -> str:
    """``a.csv, b.csv, c.csv and 4 more``."""
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit:,} more" if len(paths) > limit else "")


def _result(entry: FileReport) -> str:
    if entry.status == "rejected":
        return "[red]rejected (--strict)[/red]"
    if entry.status == "no rows":
        return "[yellow]no rows[/yellow]"
    if entry.status == "writing":
        return "[yellow]stopped[/yellow]"
    return "written, bad rows skipped" if entry.rejected else "written"


def files_table(report: ImportReport) -> Table | None:
    """What happened to each file, or ``None`` when the totals say it all.

    Rows written are inserted, updated and unchanged ones together (``--json`` has each).
    Beyond :data:`MAX_FILE_ROWS` files only those with something to say are listed, the rest
    in one line; one plainly written file, or many, need no table.
    """
    entries = report.per_file
    plain = [e for e in entries if e.status == "written" and not e.rejected]
    many = len(entries) > MAX_FILE_ROWS
    if len(plain) == len(entries) and (many or len(entries) <= 1):
        return None
    listed = [e for e in entries if e not in plain] if many else entries
    table = Table(title="Files", title_justify="left")
    table.add_column("File", overflow="fold")
    table.add_column("Rows written", justify="right")
    table.add_column("Bad rows", justify="right")
    table.add_column("Result", no_wrap=True)
    for entry in listed:
        table.add_row(
            escape(file_label(entry.path)), f"{entry.rows:,}", f"{entry.rejected:,}", _result(entry)
        )
    rest = [e for e in entries if e not in listed]
    if rest:
        table.add_row(
            f"… {len(rest):,} other file(s)", f"{sum(e.rows for e in rest):,}", "0", "written"
        )
    return table


def replaced_lines(report: ImportReport) -> list[str]:
    """One line per symbol whose simulated history the import replaced with real rows."""
    return [
        f"{escape(symbol)}: {count:,} simulated bar(s) replaced by real data"
        for symbol, count in sorted(report.replaced.items())
    ]


def strict_text(report: ImportReport) -> str:
    """The one-line error of an import whose ``--strict`` rejected one or more files."""
    rejected = report.rejected_files
    parts = []
    for entry in rejected:
        first = next((r for r in report.rejected if r.file == str(entry.path)), None)
        parts.append(
            f"{entry.path}: {entry.rejected:,} bad row(s), nothing written from it"
            + (f" (first: {first})" if first else "")
        )
    written = sum(1 for e in report.per_file if e.status == "written")
    tail = (
        f"; {written:,} other file(s) imported, see the summary"
        if written
        else "; nothing was written"
    )
    return "--strict: " + "; ".join(parts) + tail


def import_dict(
    report: ImportReport, loaded: Sequence[tuple[Manifest, ActionsReport]], *, seconds: float
) -> dict[str, Any]:
    """The import's outcome as plain JSON data (``import --json``)."""
    return {
        "inserted": report.counts.inserted,
        "updated": report.counts.updated,
        "unchanged": report.counts.unchanged,
        "rejected": report.rejected_count,
        "seconds": round(seconds, 3),
        "files": [
            {
                "path": str(e.path),
                "status": e.status,
                "rows": e.rows,
                "inserted": e.counts.inserted,
                "updated": e.counts.updated,
                "unchanged": e.counts.unchanged,
                "rejected": e.rejected,
            }
            for e in report.per_file
        ],
        "rejected_rows": [
            {"file": r.file, r.unit: r.line, "reason": r.reason} for r in report.rejected
        ],
        "simulated_replaced": dict(sorted(report.replaced.items())),
        "corporate_actions": [
            {
                "directory": str(manifest.directory),
                "splits": actions.splits,
                "dividends": actions.dividends,
                "changed": actions.splits_changed + actions.dividends_changed,
            }
            for manifest, actions in loaded
        ],
    }


def written_so_far_text(report: ImportReport) -> str:
    """What an import that stopped half-way has committed (every counted chunk is kept)."""
    done = [e.path for e in report.per_file if e.status in ("written", "no rows")]
    partial = [e for e in report.per_file if e.status == "writing" and e.rows]
    counts = report.counts
    pieces = []
    if done:
        pieces.append(f"{len(done):,} file(s) complete ({file_names(done)})")
    pieces += [f"at least the first {e.rows:,} row(s) of {e.path}" for e in partial]
    return (
        f"Kept: {' and '.join(pieces)}: {counts.total:,} row(s) ({counts.inserted:,} inserted, "
        f"{counts.updated:,} updated, {counts.unchanged:,} unchanged)."
    )


def stopped_import_text(
    report: ImportReport,
    files: Sequence[BarFile],
    loaded: Sequence[tuple[Manifest, ActionsReport]] = (),
) -> str:
    """What Ctrl-C during an import leaves behind, and how to finish it (after "stopped.")."""
    started = {e.path for e in report.per_file}
    waiting = [f.path for f in files if f.path not in started]
    rejected = [e.path for e in report.rejected_files]
    lines = []
    if report.counts.total or any(e.status == "written" for e in report.per_file):
        lines.append(written_so_far_text(report))
    elif loaded:
        lines.append("Only the corporate actions of the dataset were written.")
    else:
        lines.append("Nothing was written.")
    if rejected:
        lines.append(f"Rejected by --strict, nothing written: {file_names(rejected)}.")
    if waiting:
        lines.append(f"Not read: {file_names(waiting)}.")
    lines.append(
        "Run the same `marketdata import` again to finish (rows already stored count as unchanged)."
    )
    return " ".join(lines)


def file_label(path: Path) -> str:
    """A file's name, with its ``symbol=…`` directory when it has one (dataset parts)."""
    return f"{path.parent.name}/{path.name}" if "=" in path.parent.name else path.name


def stopped_export_text(
    out_path: Path | None,
    *,
    dataset_state: str | None,
    symbols: int,
    total: int,
    rows: int,
) -> str:
    """What Ctrl-C during an export leaves behind (after "stopped."), and what to do.

    ``dataset_state`` is :func:`~marketdata.service.export.dataset_state` of a dataset's
    directory (``None`` for a file or standard output); ``symbols`` of ``total`` were written,
    ``rows`` bars in all.
    """
    done = f"{symbols:,} of {total:,} symbol(s), {rows:,} bar(s)"
    if out_path is None:
        return f"The output is incomplete ({done} written)."
    if dataset_state == "unfinished":
        return (
            f"{out_path} holds an unfinished export ({done} written), which `marketdata import` "
            "refuses: run the same export with --overwrite to replace it."
        )
    if dataset_state == "complete":
        return f"Nothing was changed: {out_path} still holds the earlier export."
    if dataset_state == "absent" or not out_path.exists():
        return "Nothing was written."
    return (
        f"{out_path} is incomplete ({done} written before you stopped): run the export "
        "again, or delete it."
    )
