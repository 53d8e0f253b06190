"""Finding and recognising bar files, before :mod:`marketdata.providers.files` streams them.

:func:`sniff` tells a file's format (CSV, gzip-compressed CSV or Parquet) from its first bytes,
refusing a name that contradicts them; :func:`csv_header` reads a CSV's header line and whether
any row follows it. :func:`expand_paths` turns directories into the bar files under them
(recursively, sorted), and :func:`partition_symbol` reads the symbol of a file below a
Hive-style ``symbol=BRK.B`` directory. :func:`expand_paths`, :func:`partition_symbol` and
:data:`Format` are re-exported by :mod:`marketdata.providers.files`.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

import pyarrow.csv as pcsv

from marketdata.errors import InputError

Format = Literal["csv", "csv.gz", "parquet"]
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
#: What a directory import reads; names starting with ``_`` or ``.`` are skipped (Hive's rule
#: for metadata, e.g. an export's ``_marketdata.json`` and ``_splits.parquet``).
_DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
#: Directory keys that name the symbol of the files below them (``symbol=AAPL``).
PARTITION_KEYS = ("symbol", "ticker")


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def sniff(path: Path, head: bytes) -> Format:
    """The format of ``path`` from its first bytes ``head``; a contradicting name is refused."""
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
class Header:
    """A file's columns and, for CSV, what its header line says about the text after it."""

    columns: list[str]
    size: int  # bytes of the header line, its line end included
    newline_bytes: int  # 2 for CR LF line ends, else 1
    has_rows: bool  # anything but blank lines after the header


def csv_header(path: Path, fmt: Format) -> Header:
    """The header of the CSV (or CSV.gz) file ``path``; problems raise :class:`InputError`."""
    opener = gzip.open if fmt == "csv.gz" else open
    try:
        with opener(path, "rb") as handle:
            first = handle.readline(1 << 16)
            after = handle.read(1 << 16)  # enough to tell whether any row follows
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"{path}: cannot read as {fmt.upper()}: {first_line(exc)}"
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
    return Header(
        columns=[str(c) for c in reader.column_names],
        size=len(first),
        newline_bytes=2 if first.endswith(b"\r\n") else 1,
        has_rows=bool(after.strip()) or len(after) == 1 << 16,
    )


def partition_symbol(path: Path) -> str | None:
    """The symbol named by the nearest ``symbol=…`` (or ``ticker=…``) directory above ``path``.

    Values are percent-decoded, as Hive-style writers encode them (``symbol=A%2FB`` is A/B).
    """
    for part in reversed(path.parent.parts):
        key, sep, value = part.partition("=")
        if sep and value and key.strip().lower() in PARTITION_KEYS:
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
