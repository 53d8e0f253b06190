"""Importing bar files: stream, parse, validate, write in chunks, count, report rejected rows.

The same function serves ``marketdata import`` and any later caller. Each chunk is written in
its own transaction, so an interrupted import keeps every chunk already committed and a re-run
finishes the job (identical rows count as unchanged). The report is filled in as the import
goes, per file, so a caller that is interrupted still knows what was written.

With ``strict``, a file with any bad row is rejected whole (nothing of it is written) and the
import goes on with the next file; the report lists it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from marketdata.providers.files import BarFile, expand_paths, open_bar_file
from marketdata.providers.parsing import LINE
from marketdata.service.export import dataset_state
from marketdata.service.quality import write_bars
from marketdata.service.simulated import SYNTHETIC, replace_synthetic
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


#: Where a file stands: being written, written, rejected whole (``--strict``) or without rows.
FileStatus = Literal["writing", "written", "rejected", "no rows"]


@dataclass(slots=True, kw_only=True)
class FileReport:
    """What an import did with one file (kept up to date while it is written)."""

    path: Path
    status: FileStatus = "writing"
    rows: int = 0  # good rows written so far (all of them once ``written``)
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    rejected: int = 0  # bad rows: skipped, or (status ``rejected``) the reason nothing was written
    not_written: int = 0  # status ``rejected``: the good rows left out with the bad ones


@dataclass(slots=True, kw_only=True)
class ImportReport:
    """What an import did, in total and per file (in the order the files were read)."""

    files: int = 0  # files read to the end and written (a rejected file is not counted)
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    rejected_count: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    per_file: list[FileReport] = field(default_factory=list)
    #: Symbols whose simulated history real rows replaced, and how many simulated bars went.
    replaced: dict[str, int] = field(default_factory=dict)

    def reject(self, rows: Sequence[RejectedRow], *, count: int | None = None) -> None:
        """Count ``rows`` (or ``count``, when only some are given) and keep the first
        :data:`MAX_KEPT_REJECTS` of them."""
        self.rejected_count += len(rows) if count is None else count
        room = MAX_KEPT_REJECTS - len(self.rejected)
        if room > 0:
            self.rejected.extend(rows[:room])

    @property
    def rejected_files(self) -> list[FileReport]:
        """Files refused whole by ``--strict``."""
        return [f for f in self.per_file if f.status == "rejected"]


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

    A directory stands for the bar files under it, recursively (see ``expand_paths``). The
    files of a complete marketdata dataset keep their symbols verbatim: the dataset moves a
    database, and a symbol it stored (even one today's rule would refuse) must come back
    unchanged. Every other file's symbols are normalized and checked.
    """
    checked: list[BarFile] = []
    for path in paths:
        verbatim = path.is_dir() and dataset_state(path) == "complete"
        for found in expand_paths([path]):
            bar_file = open_bar_file(found)
            bar_file.verbatim_symbols = verbatim
            checked.append(bar_file)
    return checked


def _rejects(bar_file: BarFile, frame_rows: list[tuple[int, str]]) -> list[RejectedRow]:
    unit = "row" if bar_file.format == "parquet" else "line"
    return [
        RejectedRow(file=str(bar_file.path), line=line, reason=reason, unit=unit)
        for line, reason in frame_rows
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scan:
    """A file parsed without writing (for ``--strict``): its good and bad rows."""

    rows: int
    rejected_count: int
    rejected: list[RejectedRow]  # the first MAX_KEPT_REJECTS of them


async def scan(bar_file: BarFile, *, chunk_rows: int, progress: Progress | None = None) -> Scan:
    """Parse ``bar_file`` without writing; the result lists its bad rows (for ``--strict``).

    ``progress`` gets half the file's positions: the scan is the first half of the work.
    Chunks are parsed in a worker thread, so a cancelled import stops between two of them.
    """
    rows = count = 0
    rejected: list[RejectedRow] = []
    async for chunk in prefetched(bar_file.chunks(chunk_rows)):
        rows += chunk.bars.height
        count += chunk.rejected.height
        room = MAX_KEPT_REJECTS - len(rejected)
        if room > 0:
            found = chunk.rejected.head(room).select(LINE, "reason").rows()
            rejected += _rejects(bar_file, found)
        if progress:
            progress(bar_file, chunk.position // 2, 0)
    return Scan(rows=rows, rejected_count=count, rejected=rejected)


async def _replace_simulated(store: Store, symbols: list[str]) -> dict[str, int]:
    """Purge the simulated history of ``symbols`` before real rows go in; bars purged each."""
    if not symbols or not await store.has_source(SYNTHETIC):
        return {}
    simulated = {
        s.symbol: s.bar_count for s in await store.symbol_statuses(symbols) if s.source == SYNTHETIC
    }
    purged = await replace_synthetic(store, simulated)
    return {symbol: simulated[symbol] for symbol in purged}


async def import_files(
    store: Store,
    files: Sequence[BarFile],
    *,
    at: dt.datetime,
    chunk_rows: int,
    strict: bool = False,
    progress: Progress | None = None,
    report: ImportReport | None = None,
) -> ImportReport:
    """Load ``files`` into ``store``; bad rows are skipped and reported.

    With ``strict``, each file is parsed completely first, and a file with any bad row is
    rejected whole: nothing of it is written, its bad rows are reported and the import goes on
    with the next file (see :attr:`ImportReport.rejected_files`). A file without rows (a header
    only) is reported as such. Pass ``report`` to see the progress if the import is interrupted:
    it is filled in as each chunk is committed.
    """
    report = report if report is not None else ImportReport()
    for bar_file in files:
        entry = FileReport(path=bar_file.path)
        report.per_file.append(entry)
        if not bar_file.has_rows:
            entry.status = "no rows"
            report.files += 1
            if progress:
                progress(bar_file, bar_file.size, 0)
            continue
        half = strict  # a strict import scans first: the scan is the first half of the bar
        if strict:
            checked = await scan(bar_file, chunk_rows=chunk_rows, progress=progress)
            if checked.rejected_count:
                entry.status = "rejected"
                entry.rejected = checked.rejected_count
                entry.not_written = checked.rows
                report.reject(checked.rejected, count=checked.rejected_count)
                if progress:
                    progress(bar_file, bar_file.size, 0)
                continue
        source = f"file:{bar_file.path.name}"
        async for chunk in prefetched(bar_file.chunks(chunk_rows)):
            rejected = _rejects(bar_file, chunk.rejected.select(LINE, "reason").rows())
            report.reject(rejected)
            entry.rejected += len(rejected)
            if not chunk.bars.is_empty():
                symbols = chunk.bars["symbol"].unique().sort().to_list()
                report.replaced.update(await _replace_simulated(store, symbols))
                counts = await write_bars(store, chunk.bars, source=source, at=at)
                report.counts += counts
                entry.counts += counts
                entry.rows += chunk.bars.height
            if progress:
                position = (bar_file.size + chunk.position) // 2 if half else chunk.position
                progress(bar_file, position, chunk.bars.height)
        entry.status = "written"
        report.files += 1
    return report
