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
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import unquote

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from marketdata.bars import empty_bars
from marketdata.errors import InputError
from marketdata.providers.parsing import LINE, Layout, LayoutError, detect_layout, parse_chunk

Format = Literal["csv", "csv.gz", "parquet"]
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
#: pyarrow's CSV block: 1 MiB keeps a 10M-row import under 500 MB peak RSS at full speed
#: (8 MiB blocks peaked at 730 MB; see bench/ingest.py).
_BLOCK_SIZE = 1 << 20
#: What a directory import reads; names starting with ``_`` or ``.`` are skipped (Hive's rule
#: for metadata, e.g. an export's ``_marketdata.json`` and ``_splits.parquet``).
_DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
#: Directory keys that name the symbol of the files below them (``symbol=AAPL``).
_PARTITION_KEYS = ("symbol", "ticker")


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
                msg = f"{self.path}: cannot read as {self.format.upper()}: {_first_line(exc)}"
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
            msg = f"{self.path}: cannot read as Parquet: {_first_line(exc)}"
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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _sniff(path: Path, head: bytes) -> Format:
    name = path.name.lower()
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.startswith(_GZIP_MAGIC):
        return "csv.gz"
    if name.endswith((".parquet", ".pq")):
        msg = f"{path}: named like Parquet but is not a Parquet file"
        raise InputError(msg)
    if name.endswith(".gz"):
        msg = f"{path}: named like gzip but is not gzip-compressed"
        raise InputError(msg)
    if b"\x00" in head:
        msg = f"{path}: not a CSV, CSV.gz or Parquet file (binary content)"
        raise InputError(msg)
    return "csv"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Header:
    columns: list[str]
    size: int  # bytes of the header line, its line end included
    newline_bytes: int  # 2 for CR LF line ends, else 1
    has_rows: bool  # anything but blank lines after the header


def _csv_header(path: Path, fmt: Format) -> _Header:
    opener = gzip.open if fmt == "csv.gz" else open
    try:
        with opener(path, "rb") as handle:
            first = handle.readline(1 << 16)
            after = handle.read(1 << 16)  # enough to tell whether any row follows
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"{path}: cannot read as {fmt.upper()}: {_first_line(exc)}"
        raise InputError(msg) from None
    try:
        text = first.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        msg = f"{path}: not a UTF-8 text CSV file"
        raise InputError(msg) from None
    if not text:
        msg = f"{path}: the file has no header line (empty file?)"
        raise InputError(msg)
    line = first if first.endswith(b"\n") else first + b"\n"  # pyarrow needs a line end
    reader = pcsv.read_csv(
        io.BytesIO(line), read_options=pcsv.ReadOptions(autogenerate_column_names=False)
    )
    return _Header(
        columns=[str(c) for c in reader.column_names],
        size=len(first),
        newline_bytes=2 if first.endswith(b"\r\n") else 1,
        has_rows=bool(after.strip()) or len(after) == 1 << 16,
    )


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
    fmt = _sniff(path, head)
    if fmt == "parquet":
        try:
            pfile = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            msg = f"{path}: not a readable Parquet file: {_first_line(exc)}"
            raise InputError(msg) from None
        columns = list(pfile.schema_arrow.names)
        size = pfile.metadata.num_rows
        if size == 0:
            msg = f"{path}: the Parquet file has no rows"
            raise InputError(msg)
        header = _Header(columns=columns, size=0, newline_bytes=1, has_rows=True)
    else:
        header = _csv_header(path, fmt)
        columns = header.columns
    names = {c.strip().lower() for c in columns}
    symbol = None if names & set(_PARTITION_KEYS) else partition_symbol(path)
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


def partition_symbol(path: Path) -> str | None:
    """The symbol named by the nearest ``symbol=…`` (or ``ticker=…``) directory above ``path``.

    Values are percent-decoded, as Hive-style writers encode them (``symbol=A%2FB`` is A/B).
    """
    for part in reversed(path.parent.parts):
        key, sep, value = part.partition("=")
        if sep and value and key.strip().lower() in _PARTITION_KEYS:
            return unquote(value)
    return None


def _is_data_file(relative: Path) -> bool:
    hidden = any(part.startswith(("_", ".")) for part in relative.parts)
    return not hidden and relative.name.lower().endswith(_DATA_SUFFIXES)


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """``paths`` with each directory replaced by its bar files, recursively, in sorted order.

    Only CSV, CSV.gz and Parquet names count (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``);
    names starting with ``_`` or ``.`` are skipped. A directory without any is an error.
    """
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        inside = sorted(
            p for p in path.rglob("*") if p.is_file() and _is_data_file(p.relative_to(path))
        )
        if not inside:
            msg = f"{path}: no CSV, CSV.gz or Parquet files in this directory"
            raise InputError(msg)
        found.extend(inside)
    return found
