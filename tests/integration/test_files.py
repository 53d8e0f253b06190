"""Reading real bar files: formats, line numbers across chunks, and broken files."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path

import polars as pl
import pytest

from marketdata.errors import InputError
from marketdata.providers.files import open_bar_file
from marketdata.providers.parsing import LINE

HEADER = "symbol,date,open,high,low,close,volume,vwap,transactions\n"


def rows(n: int, symbol: str = "AAPL") -> list[str]:
    """``n`` good CSV lines on consecutive days."""
    start = dt.date(2000, 1, 1)
    return [
        f"{symbol},{start + dt.timedelta(days=i)},{100 + i}.5,{102 + i},{99 + i},"
        f"{101 + i},{1000 + i},,\n"
        for i in range(n)
    ]


def read_all(path: Path, chunk_rows: int = 100_000) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """All bars and all rejected (line, reason) pairs of a file."""
    bar_file = open_bar_file(path)
    chunks = list(bar_file.chunks(chunk_rows))
    bars = pl.concat([c.bars for c in chunks]) if chunks else pl.DataFrame()
    rejected = [r for c in chunks for r in c.rejected.select(LINE, "reason").rows()]
    return bars, rejected


def test_line_numbers_survive_skipped_and_blank_lines_across_chunks(tmp_path: Path) -> None:
    """Reported lines are file lines even after short rows and blank lines, chunk after chunk."""
    lines = [HEADER, *rows(3000)]
    lines[10] = "AAPL,2024-01-10,1\n"  # line 11: too few fields
    lines[20] = "\n"  # line 21: blank, ignored
    lines[1500] = "AAPL,not-a-date,1,1,1,1,1,,\n"  # line 1501
    lines[2999] = "AAPL,2024-04-01,1,1,1,1,1,,,EXTRA\n"  # line 3000: too many fields
    path = tmp_path / "bars.csv"
    path.write_text("".join(lines))
    bars, rejected = read_all(path, chunk_rows=1000)
    assert [line for line, _ in rejected] == [11, 1501, 3000]
    assert "expected 9 fields, found 3" in rejected[0][1]
    assert "unparsable date" in rejected[1][1]
    assert bars.height == 3000 - 4


def test_gzip_and_plain_csv_read_the_same(tmp_path: Path) -> None:
    """A .csv.gz is streamed through gzip and yields the same bars."""
    text = HEADER + "".join(rows(50))
    plain = tmp_path / "a.csv"
    plain.write_text(text)
    packed = tmp_path / "a.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert open_bar_file(packed).format == "csv.gz"
    assert read_all(plain)[0].equals(read_all(packed)[0])


def test_utf8_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    """Spreadsheet exports (BOM, CRLF line ends) import cleanly."""
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER + "".join(rows(3))).replace("\n", "\r\n").encode())
    bars, rejected = read_all(path)
    assert rejected == []
    assert bars.height == 3


def test_parquet_rows_are_numbered(tmp_path: Path) -> None:
    """Parquet rows are reported by row number."""
    frame = pl.DataFrame(
        {
            "symbol": ["A", "", "C"],
            "date": ["2024-01-02", "2024-01-02", "2024-01-02"],
            "open": [1.0, 1.0, 1.0],
            "high": [1.0, 1.0, 1.0],
            "low": [1.0, 1.0, 1.0],
            "close": [1.0, 1.0, 1.0],
            "volume": [1.0, 1.0, 1.0],
        }
    )
    path = tmp_path / "bars.parquet"
    frame.write_parquet(path)
    bar_file = open_bar_file(path)
    assert (bar_file.format, bar_file.unit, bar_file.size) == ("parquet", "rows", 3)
    bars, rejected = read_all(path)
    assert rejected == [(2, "symbol is empty")]
    assert bars["symbol"].to_list() == ["A", "C"]


def test_polygon_flat_file(tmp_path: Path) -> None:
    """Polygon's day-aggregates flat file (gzip, ns window_start) imports as session dates."""
    text = (
        "ticker,volume,open,close,high,low,window_start,transactions\n"
        "A,1529900,124.79,125.3,126.16,124.1,1709874000000000000,22164\n"
        "AAPL,62018000,169.0,170.73,173.7,168.94,1709874000000000000,1010321\n"
    )
    path = tmp_path / "2024-03-08.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    bars, rejected = read_all(path)
    assert rejected == []
    assert bars.select("symbol", "close").rows() == [("A", 125.3), ("AAPL", 170.73)]
    assert set(bars["date"].cast(pl.String).to_list()) == {"2024-03-08"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", b"", "the file is empty"),
        ("blank.csv", b"\n\n", "no header line"),
        ("wrong.csv", b"a,b,c\n1,2,3\n", "matches no supported layout"),
        ("extra.csv", (HEADER.strip() + ",adj\n").encode(), "unexpected column(s) adj"),
        ("fake.parquet", b"symbol,date\n", "not a Parquet file"),
        ("fake.csv.gz", b"symbol,date\n", "not gzip-compressed"),
        ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary content"),
        ("latin1.csv", "sym\xe9bol,date\n".encode("latin-1"), "not a UTF-8"),
    ],
)
def test_unusable_files_give_clear_errors(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    """Every kind of unusable file is an InputError naming the file and the problem."""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)) as info:
        open_bar_file(path)
    assert name in str(info.value)


def test_truncated_gzip_is_an_input_error(tmp_path: Path) -> None:
    """A gzip file cut short fails with a clear error while streaming."""
    data = gzip.compress((HEADER + "".join(rows(5000))).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    bar_file = open_bar_file(path)
    with pytest.raises(InputError, match=r"cannot read as CSV\.GZ"):
        list(bar_file.chunks(1000))


def test_directory_is_refused(tmp_path: Path) -> None:
    """A directory is not a file."""
    with pytest.raises(InputError, match="not a regular file"):
        open_bar_file(tmp_path)


def test_header_only_file_yields_no_bars(tmp_path: Path) -> None:
    """A file with a header and no rows is valid and empty."""
    path = tmp_path / "header.csv"
    path.write_text(HEADER)
    bars, rejected = read_all(path)
    assert bars.is_empty()
    assert rejected == []
