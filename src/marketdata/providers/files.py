"""Bar files: CSV, gzip-compressed CSV and Parquet, streamed in bounded chunks.

:func:`open_bar_file` checks the file (exists, not empty, a known format, a known header) and
returns a :class:`BarFile` whose :meth:`~BarFile.chunks` yields parsed chunks of at most
``chunk_rows`` rows with the rejected rows of each, tagged with their line (CSV) or row
(Parquet) number. Memory stays bounded by the chunk size, whatever the file size.

Each chunk says how far through the file it reached, for a progress bar: rows for Parquet;
for CSV the bytes of the rows handed out (pyarrow reads far ahead of them, so the read offset
would say "done" long before it is), estimated from the fields' lengths, and for gzip mapped to
compressed bytes with the compression ratio seen so far.

:func:`expand_paths` turns directories into the bar files under them (recursively, sorted),
and a file without a symbol column under a Hive-style ``symbol=BRK.B`` directory takes its
symbol from there: a partitioned dataset (``marketdata export --format parquet --out DIR``,
Spark's ``partitionBy("symbol")``, pyarrow's ``write_dataset``) imports like one file.

Finding and recognising the files (format, CSV header, ``symbol=…`` directories) is in
:mod:`marketdata.providers.files_detect`; :func:`expand_paths`, :func:`partition_symbol`
and :data:`Format` are re-exported here.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from marketdata.bars import empty_bars
from marketdata.errors import InputError
from marketdata.providers.files_detect import (
    PARTITION_KEYS,
    Format,
    Header,
    csv_header,
    expand_paths,
    first_line,
    partition_symbol,
    sniff,
)
from marketdata.providers.parsing import LINE, Layout, LayoutError, detect_layout, parse_chunk

__all__ = ["BarFile", "FileChunk", "Format", "expand_paths", "open_bar_file", "partition_symbol"]

#: pyarrow's CSV block: 1 MiB keeps a 10M-row import under 500 MB peak RSS at full speed
#: (8 MiB blocks peaked at 730 MB; see bench/ingest.py).
_BLOCK_SIZE = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class FileChunk:
    """Parsed rows of one chunk, its rejected rows, and how far through the file it reached."""

    bars: pl.DataFrame
    rejected: pl.DataFrame  # columns: _line, reason
    position: int  # bytes (CSV) or rows (Parquet) consumed so far, for progress


@dataclass(slots=True, kw_only=True)
class BarFile:
    """A checked bar file, ready to stream."""

    path: Path
    format: Format
    layout: Layout
    size: int  # total bytes (CSV) or rows (Parquet): the progress bar's 100 %
    columns: list[str] = field(default_factory=list)
    symbol: str | None = None  # from a ``symbol=…`` directory when the file has no such column
    has_rows: bool = True  # False: a CSV header with nothing (or blank lines only) after it
    #: Keep symbols as written (a marketdata dataset restoring its database), not normalized.
    verbatim_symbols: bool = False
    header_bytes: int = 0  # CSV: bytes of the header line, line end included (uncompressed)
    newline_bytes: int = 1  # CSV: 2 when lines end in CR LF

    @property
    def unit(self) -> str:
        """What :attr:`size` and :attr:`FileChunk.position` count."""
        return "rows" if self.format == "parquet" else "bytes"

    def chunks(self, chunk_rows: int) -> Iterator[FileChunk]:
        """Parse the file in chunks of at most ``chunk_rows`` rows."""
        if self.format == "parquet":
            yield from self._parquet_chunks(chunk_rows)
        else:
            yield from self._csv_chunks(chunk_rows)

    # -- CSV -------------------------------------------------------------------------------

    def _csv_chunks(self, chunk_rows: int) -> Iterator[FileChunk]:
        if not self.has_rows:  # pyarrow refuses a lone header without a line end
            yield from self._emit(None, [], chunk_rows, where=lambda _: self.size, final=True)
            return
        skipped: list[tuple[int, str]] = []  # (line, reason) of rows pyarrow could not split
        tally = _Tally(consumed=self.header_bytes)

        def on_invalid(row: pcsv.InvalidRow) -> str:
            tally.consumed += len((row.text or "").encode()) + self.newline_bytes
            text = (row.text or "").strip()
            if text:
                skipped.append(
                    (
                        row.number if row.number is not None else -1,
                        f"expected {row.expected_columns} fields, found {row.actual_columns}",
                    )
                )
            else:
                skipped.append((row.number if row.number is not None else -1, ""))
            return "skip"

        with self.path.open("rb") as raw:
            stream: BinaryIO = raw
            if self.format == "csv.gz":
                stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]

            def where(consumed: int) -> int:
                """File position (``size`` units) of ``consumed`` bytes of CSV text."""
                if stream is not raw:  # gzip: scale by the compression ratio read so far
                    produced = stream.tell()
                    consumed = round(consumed * raw.tell() / produced) if produced else 0
                return min(consumed, self.size)

            sizes = _row_bytes(self.columns, self.newline_bytes)
            try:
                reader = pcsv.open_csv(
                    stream,
                    read_options=pcsv.ReadOptions(block_size=_BLOCK_SIZE, use_threads=False),
                    parse_options=pcsv.ParseOptions(
                        invalid_row_handler=on_invalid, ignore_empty_lines=False
                    ),
                    convert_options=pcsv.ConvertOptions(
                        column_types={c: pa.string() for c in self.columns},
                        strings_can_be_null=False,
                        quoted_strings_can_be_null=False,
                    ),
                )
                good_rows = 0  # data rows handed out so far
                pending: list[pl.DataFrame] = []
                pending_rows = 0
                for batch in reader:
                    frame = pl.from_arrow(batch)
                    assert isinstance(frame, pl.DataFrame)  # a batch is a table
                    lines = _line_numbers(good_rows, frame.height, skipped)
                    good_rows += frame.height
                    pending.append(frame.with_columns(pl.Series(LINE, lines), sizes))
                    pending_rows += frame.height
                    if pending_rows >= chunk_rows:  # emit whole chunks, carry the remainder
                        joined = pl.concat(pending)
                        whole = joined.height - joined.height % chunk_rows
                        yield from self._emit(
                            joined.head(whole), skipped, chunk_rows, where=where, tally=tally
                        )
                        rest = joined.slice(whole)
                        pending, pending_rows = ([rest] if rest.height else []), rest.height
                yield from self._emit(
                    pl.concat(pending) if pending else None,
                    skipped,
                    chunk_rows,
                    where=where,
                    tally=tally,
                    final=True,
                )
            except (pa.ArrowInvalid, OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
                msg = f"{self.path}: cannot read as {self.format.upper()}: {first_line(exc)}"
                raise InputError(msg) from None

    def _emit(
        self,
        frame: pl.DataFrame | None,
        skipped: list[tuple[int, str]],
        chunk_rows: int,
        *,
        where: Callable[[int], int],
        tally: _Tally | None = None,
        final: bool = False,
    ) -> Iterator[FileChunk]:
        """Parse ``frame`` in parts; each part also reports the unsplittable rows before it.

        ``skipped`` holds rows pyarrow could not split, in file order; reported ones are marked
        by blanking their reason so line numbering (which needs all of them) stays intact.
        Each part's position is ``where`` of the text bytes consumed up to its end (``tally``).
        """
        parts: list[pl.DataFrame] = []
        if frame is not None and not frame.is_empty():
            parts = [frame.slice(o, chunk_rows) for o in range(0, frame.height, chunk_rows)]
        if not parts and final:
            parts = [
                pl.DataFrame(
                    schema={
                        **dict.fromkeys(self.columns, pl.String),
                        LINE: pl.Int64,
                        _SIZE: pl.Int64,
                    }
                )
            ]
        for index, part in enumerate(parts):
            last = final and index == len(parts) - 1
            upto = None if last or part.is_empty() else int(part[LINE].max())  # type: ignore[arg-type]
            rejected = _take_skipped(skipped, upto)
            if tally is not None:
                tally.consumed += int(part[_SIZE].sum())
            # Blank lines arrive as all-empty rows: skip them silently.
            data_cols = [c for c in part.columns if c not in (LINE, _SIZE)]
            rows = part.drop(_SIZE).filter(
                ~pl.all_horizontal(pl.col(data_cols).str.strip_chars() == "")
            )
            parsed = (
                parse_chunk(
                    self._add_symbol(rows), self.layout, verbatim_symbols=self.verbatim_symbols
                )
                if rows.height
                else None
            )
            yield FileChunk(
                bars=parsed.bars if parsed else empty_bars(),
                rejected=pl.concat([rejected, parsed.rejected]).sort(LINE) if parsed else rejected,
                position=self.size if last else where(tally.consumed if tally else 0),
            )

    def _add_symbol(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with the directory's symbol as its ``symbol`` column, if it has one."""
        if self.symbol is None:
            return frame
        return frame.with_columns(pl.lit(self.symbol, pl.String).alias("symbol"))

    # -- Parquet ---------------------------------------------------------------------------

    def _parquet_chunks(self, chunk_rows: int) -> Iterator[FileChunk]:
        try:
            pfile = pq.ParquetFile(self.path)
            row = 0
            for batch in pfile.iter_batches(batch_size=chunk_rows):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)  # a batch is a table
                frame = frame.with_columns(
                    pl.int_range(row + 1, row + 1 + frame.height, dtype=pl.Int64).alias(LINE)
                )
                row += frame.height
                part = parse_chunk(
                    self._add_symbol(frame), self.layout, verbatim_symbols=self.verbatim_symbols
                )
                yield FileChunk(bars=part.bars, rejected=part.rejected, position=row)
        except (pa.ArrowInvalid, OSError) as exc:
            msg = f"{self.path}: cannot read as Parquet: {first_line(exc)}"
            raise InputError(msg) from None


#: Column carrying each CSV row's estimated size in bytes (for progress), dropped before parsing.
_SIZE = "_bytes"


@dataclass(slots=True, kw_only=True)
class _Tally:
    """Bytes of CSV text handed out so far (header, rows, unsplittable rows)."""

    consumed: int


def _row_bytes(columns: list[str], newline_bytes: int) -> pl.Expr:
    """Each row's size in the file: its fields, the commas between them and the line end.

    Exact for unquoted fields (quotes are the only bytes it misses); blank lines, which arrive
    as all-empty rows, count their commas too. Good enough for a progress bar.
    """
    fields = pl.sum_horizontal(pl.col(c).str.len_bytes().cast(pl.Int64) for c in columns)
    return (fields + (len(columns) - 1 + newline_bytes)).alias(_SIZE)


def _take_skipped(skipped: list[tuple[int, str]], upto: int | None) -> pl.DataFrame:
    """Unreported unsplittable rows up to line ``upto`` (all when None); marks them reported."""
    taken: list[tuple[int, str]] = []
    for i, (line, reason) in enumerate(skipped):
        if reason and (upto is None or line <= upto):
            taken.append((line, reason))
            skipped[i] = (line, "")
    return pl.DataFrame(taken, schema={LINE: pl.Int64, "reason": pl.String}, orient="row")


def _line_numbers(start: int, count: int, skipped: list[tuple[int, str]]) -> np.ndarray:
    """File line numbers of data rows ``start .. start+count`` (0-based among kept rows).

    Line 1 is the header; rows pyarrow skipped (listed in ``skipped``) still used a line.
    """
    gaps = np.array(sorted(line for line, _ in skipped if line > 0), dtype=np.int64)
    index = np.arange(start, start + count, dtype=np.int64)
    lines = index + 2
    for _ in range(len(gaps) + 1):
        shifted = index + 2 + np.searchsorted(gaps, lines, side="right")
        if np.array_equal(shifted, lines):
            break
        lines = shifted
    return lines


def open_bar_file(path: Path) -> BarFile:
    """Check ``path`` and describe how to stream it; problems raise :class:`InputError`."""
    if not path.exists():
        msg = f"{path}: no such file"
        raise InputError(msg)
    if not path.is_file():
        msg = f"{path}: not a regular file"
        raise InputError(msg)
    size = path.stat().st_size
    if size == 0:
        msg = f"{path}: the file is empty"
        raise InputError(msg)
    with path.open("rb") as handle:
        head = handle.read(4096)
    fmt = sniff(path, head)
    if fmt == "parquet":
        try:
            pfile = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            msg = f"{path}: not a readable Parquet file: {first_line(exc)}"
            raise InputError(msg) from None
        columns = list(pfile.schema_arrow.names)
        size = pfile.metadata.num_rows
        if size == 0:
            msg = f"{path}: the Parquet file has no rows"
            raise InputError(msg)
        header = Header(columns=columns, size=0, newline_bytes=1, has_rows=True)
    else:
        header = csv_header(path, fmt)
        columns = header.columns
    names = {c.strip().lower() for c in columns}
    symbol = None if names & set(PARTITION_KEYS) else partition_symbol(path)
    try:
        layout = detect_layout(columns if symbol is None else [*columns, "symbol"])
    except LayoutError as exc:
        msg = f"{path}: {exc}"
        raise InputError(msg) from None
    return BarFile(
        path=path,
        format=fmt,
        layout=layout,
        size=size,
        columns=columns,
        symbol=symbol,
        has_rows=header.has_rows,
        header_bytes=header.size,
        newline_bytes=header.newline_bytes,
    )
