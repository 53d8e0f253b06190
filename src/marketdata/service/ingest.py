"""Importing bar files: stream, parse, validate, write in chunks, count, report rejected rows.

The same function serves ``marketdata import`` and any later caller. Each chunk is written in
its own transaction, so an interrupted import keeps every chunk already committed and a re-run
finishes the job (identical rows count as unchanged).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from marketdata.errors import DataRejected
from marketdata.providers.files import BarFile, expand_paths, open_bar_file
from marketdata.providers.parsing import LINE
from marketdata.service.quality import write_bars
from marketdata.service.simulated import replace_synthetic
from marketdata.storage.base import Store, UpsertCounts

T = TypeVar("T")

#: How many rejected rows an :class:`ImportReport` keeps for display (all are counted).
MAX_KEPT_REJECTS = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedRow:
    """A row that was not loaded, and why."""

    file: str
    line: int
    reason: str
    unit: str = "line"  # "line" for CSV, "row" for Parquet

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.reason}"
            if self.unit == "line"
            else (f"{self.file} row {self.line}: {self.reason}")
        )


@dataclass(slots=True, kw_only=True)
class ImportReport:
    """What an import did."""

    files: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    rejected_count: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    def reject(self, rows: Sequence[RejectedRow]) -> None:
        """Count ``rows`` and keep the first :data:`MAX_KEPT_REJECTS` of them."""
        self.rejected_count += len(rows)
        room = MAX_KEPT_REJECTS - len(self.rejected)
        if room > 0:
            self.rejected.extend(rows[:room])


#: Progress callback: (file, position reached in file.size units, rows parsed in this step).
Progress = Callable[[BarFile, int, int], None]


async def prefetched(items: Iterator[T]) -> AsyncIterator[T]:
    """``items``, each produced in a worker thread while the caller handles the previous one.

    Parsing chunk k + 1 (polars, mostly outside the GIL) then overlaps writing chunk k.
    """
    done = object()
    pending = asyncio.ensure_future(asyncio.to_thread(next, items, done))
    try:
        while True:
            item = await pending
            if item is done:
                return
            pending = asyncio.ensure_future(asyncio.to_thread(next, items, done))
            yield item  # type: ignore[misc]  # not ``done``: checked above
    finally:
        if not pending.done():
            with contextlib.suppress(Exception):
                await pending  # never leave a thread running inside the iterator


def check_files(paths: Sequence[Path]) -> list[BarFile]:
    """Open every file first, so a missing or malformed one stops the import before writing.

    A directory stands for the bar files under it, recursively (see ``expand_paths``).
    """
    return [open_bar_file(p) for p in expand_paths(paths)]


def _rejects(bar_file: BarFile, frame_rows: list[tuple[int, str]]) -> list[RejectedRow]:
    unit = "row" if bar_file.format == "parquet" else "line"
    return [
        RejectedRow(file=str(bar_file.path), line=line, reason=reason, unit=unit)
        for line, reason in frame_rows
    ]


def scan(bar_file: BarFile, *, chunk_rows: int, progress: Progress | None = None) -> ImportReport:
    """Parse ``bar_file`` without writing; the report lists its bad rows (for ``--strict``)."""
    report = ImportReport(files=1)
    for chunk in bar_file.chunks(chunk_rows):
        report.reject(_rejects(bar_file, chunk.rejected.select(LINE, "reason").rows()))
        if progress:
            progress(bar_file, chunk.position, chunk.bars.height)
    return report


async def import_files(
    store: Store,
    files: Sequence[BarFile],
    *,
    at: dt.datetime,
    chunk_rows: int,
    strict: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Load ``files`` into ``store``; bad rows are skipped and reported.

    With ``strict``, each file is parsed completely first and a file with any bad row raises
    :class:`~marketdata.errors.DataRejected` before anything of it is written.
    """
    report = ImportReport()
    for bar_file in files:
        if strict:
            checked = scan(bar_file, chunk_rows=chunk_rows)
            if checked.rejected_count:
                shown = "; ".join(str(r) for r in checked.rejected[:5])
                more = checked.rejected_count - min(5, len(checked.rejected))
                msg = (
                    f"{bar_file.path}: {checked.rejected_count} bad row(s), nothing written "
                    f"(--strict): {shown}" + (f"; and {more} more" if more > 0 else "")
                )
                raise DataRejected(msg)
        source = f"file:{bar_file.path.name}"
        async for chunk in prefetched(bar_file.chunks(chunk_rows)):
            report.reject(_rejects(bar_file, chunk.rejected.select(LINE, "reason").rows()))
            if not chunk.bars.is_empty():
                await replace_synthetic(store, chunk.bars["symbol"].unique().to_list())
                report.counts += await write_bars(store, chunk.bars, source=source, at=at)
            if progress:
                progress(bar_file, chunk.position, chunk.bars.height)
        report.files += 1
    return report
