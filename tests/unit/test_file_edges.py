"""Edges of the import/export path that need no file or database: symbols in parsed columns,
the export format a file name implies, and the messages an interrupted or strict import prints.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.cli.render_transfer import (
    files_table,
    replaced_lines,
    stopped_export_text,
    stopped_import_text,
    strict_text,
)
from marketdata.errors import InputError
from marketdata.providers.files import BarFile
from marketdata.providers.parsing import LINE, normalize_symbol_column, parse_chunk
from marketdata.service.export import output_format
from marketdata.service.ingest import FileReport, ImportReport, RejectedRow
from marketdata.storage.base import UpsertCounts
from marketdata.symbols import normalize_symbol

HEADER = ["symbol", "date", "open", "high", "low", "close", "volume"]

#: Symbols as people and files write them, good and bad.
CANDIDATES = [
    "AAPL",
    "aapl",
    " msft ",
    "brk.b",
    "BF-B",
    "X",
    "1",
    "ABCDEFGHIJKL",  # 12: the longest allowed
    "TOOLONGSYMBOLNAME",  # 17
    "ABCDEFGHIJKLM",  # 13
    "-A",
    "A-",
    ".A",
    "A..B",
    "A/B",
    "A$",
    "ÄÖ",
    "A B",
    "",
    "AMpB",  # Polygon: AM preferred B, not AMPB
    " ABRpD ",
    "ampb",
    "Spy",
    "AMp",
    "pA",
    "A.pB",
    "A-p",
]


def chunk(symbols: list[str], dates: list[str] | None = None) -> pl.DataFrame:
    """A raw CSV chunk with one good row per symbol, lines numbered from 2."""
    dates = dates or ["2024-01-02"] * len(symbols)
    rows = [[s, d, "1", "2", "0.5", "1.5", "100"] for s, d in zip(symbols, dates, strict=True)]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(HEADER, pl.String), orient="row")
    return frame.with_columns(pl.int_range(2, 2 + frame.height, dtype=pl.Int64).alias(LINE))


def accepted(value: str) -> str | None:
    """What ``normalize_symbol`` makes of ``value``, or None if it refuses it."""
    try:
        return normalize_symbol(value)
    except InputError:
        return None


def test_parsed_symbols_follow_the_one_symbol_rule() -> None:
    """Every candidate is accepted by the parser exactly when normalize_symbol accepts it,
    and stored as normalize_symbol writes it (trimmed; upper-cased unless in the vendor's
    case-sensitive form, like AMpB)."""
    dates = [f"2024-01-{day:02d}" for day in range(1, len(CANDIDATES) + 1)]
    parsed = parse_chunk(chunk(CANDIDATES, dates), "standard")
    kept = dict(zip(parsed.bars["date"].cast(pl.String), parsed.bars["symbol"], strict=True))
    for value, date in zip(CANDIDATES, dates, strict=True):
        assert kept.get(date) == accepted(value), value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("TOOLONGSYMBOLNAME", "invalid symbol 'TOOLONGSYMBOLNAME': a symbol has 1 to 12"),
        ("-A", "invalid symbol '-A'"),
        ("A/B", "invalid symbol 'A/B'"),
        ("A B", "contains spaces"),
        ("", "symbol is empty"),
    ],
)
def test_invalid_symbols_are_rejected_rows_with_the_rule(value: str, reason: str) -> None:
    """A bad symbol rejects its row (not the chunk), with a reason naming it."""
    parsed = parse_chunk(chunk(["AAPL", value], ["2024-01-02", "2024-01-03"]), "standard")
    assert parsed.bars["symbol"].to_list() == ["AAPL"]
    [(line, why)] = parsed.rejected.rows()
    assert line == 3
    assert reason in why


def test_lower_and_upper_case_rows_are_the_same_bar() -> None:
    """``aapl`` and ``AAPL`` on one date are one bar: the later row wins, as for any repeat."""
    parsed = parse_chunk(chunk(["aapl", "AAPL"]), "standard")
    assert parsed.bars["symbol"].to_list() == ["AAPL"]
    assert parsed.rejected.rows() == [
        (2, "superseded by a later row with the same symbol and date")
    ]


def test_polygon_flat_tickers_are_normalized_too() -> None:
    """The flat-file layout's ``ticker`` column follows the same rule."""
    header = ["ticker", "volume", "open", "close", "high", "low", "window_start"]
    frame = pl.DataFrame(
        [["brk.b", "10", "1", "1.5", "2", "0.5", "1709874000000000000"]],
        schema=dict.fromkeys(header, pl.String),
        orient="row",
    ).with_columns(pl.lit(2, pl.Int64).alias(LINE))
    assert parse_chunk(frame, "polygon-flat").bars["symbol"].to_list() == ["BRK.B"]


def test_symbol_column_of_a_whole_table_is_normalized_or_refused() -> None:
    """Splits and dividends: symbols upper-cased; one bad symbol refuses the table, naming it."""
    good = pl.DataFrame({"symbol": ["xyz", " brk.b"], "value": [1, 2]})
    assert normalize_symbol_column(good, name="s.csv")["symbol"].to_list() == ["XYZ", "BRK.B"]
    bad = pl.DataFrame({"symbol": ["XYZ", "ok", "TOOLONGSYMBOLNAME", "A B"]})
    with pytest.raises(InputError, match=r"s\.csv: 2 row\(s\) with an invalid symbol") as info:
        normalize_symbol_column(bad, name="s.csv")
    assert "data row 3, 'TOOLONGSYMBOLNAME'" in str(info.value)
    assert "1 to 12 characters" in str(info.value)


@pytest.mark.parametrize(
    ("name", "asked", "expected"),
    [
        ("a.csv", None, ("csv", False)),
        ("a.CSV.GZ", None, ("csv", True)),
        ("a.gz", None, ("csv", True)),
        ("a.parquet", None, ("parquet", False)),
        ("a.pq", None, ("parquet", False)),
        ("a", None, ("csv", False)),
        ("a.txt", None, ("csv", False)),
        ("a", "parquet", ("parquet", False)),
        ("a.csv.gz", "csv", ("csv", True)),
        ("a.parquet", "parquet", ("parquet", False)),
    ],
)
def test_output_format_follows_the_file_name(
    name: str, asked: str | None, expected: tuple[str, bool]
) -> None:
    """Without --format the suffix decides; a --format that agrees changes nothing."""
    assert output_format(Path(name), asked) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "asked", "message"),
    [
        ("a.csv", "parquet", "--format parquet contradicts --out a.csv (a CSV name)"),
        ("a.csv.gz", "parquet", "--format parquet contradicts --out a.csv.gz"),
        ("a.parquet", "csv", "--format csv contradicts --out a.parquet (a Parquet name)"),
        ("a.parquet.gz", None, "--out a.parquet.gz: Parquet is not gzip-compressed"),
    ],
)
def test_output_format_refuses_contradictions(name: str, asked: str | None, message: str) -> None:
    """A format the name contradicts is one clear error, saying what to do."""
    with pytest.raises(InputError, match="^" + re.escape(message)):
        output_format(Path(name), asked)  # type: ignore[arg-type]


def bar_file(name: str) -> BarFile:
    """A described (never opened) CSV file."""
    return BarFile(path=Path(name), format="csv", layout="standard", size=100)


def report_of(*entries: FileReport, rejected: list[RejectedRow] | None = None) -> ImportReport:
    """An import report with these files, totals summed from them."""
    report = ImportReport(per_file=list(entries))
    for entry in entries:
        report.counts += entry.counts
    report.reject(rejected or [])
    return report


def test_stopped_import_says_what_was_kept_and_what_was_not_read() -> None:
    """Ctrl-C mid-import: complete files, the committed part of the current one, the rest."""
    files = [bar_file(n) for n in ("a.csv", "big.csv", "c.csv", "d.csv")]
    report = report_of(
        FileReport(path=Path("a.csv"), status="written", rows=3, counts=UpsertCounts(inserted=3)),
        FileReport(
            path=Path("big.csv"), rows=200_000, counts=UpsertCounts(inserted=1, unchanged=199_999)
        ),
    )
    text = stopped_import_text(report, files)
    assert "1 file(s) complete (a.csv)" in text
    assert "at least the first 200,000 row(s) of big.csv" in text
    assert "200,003 row(s) (4 inserted, 0 updated, 199,999 unchanged)" in text
    assert "Not read: c.csv, d.csv." in text
    assert "again to finish" in text


def test_stopped_import_before_any_write_says_so() -> None:
    """Ctrl-C while the first chunk was being written: nothing is claimed."""
    report = report_of(FileReport(path=Path("a.csv")))
    text = stopped_import_text(report, [bar_file("a.csv")])
    assert text.startswith("Nothing was written.")


@pytest.mark.parametrize(
    ("out", "state", "expected"),
    [
        (None, None, "The output is incomplete (2 of 5 symbol(s), 300 bar(s) written)."),
        (Path("ds"), "unfinished", "ds holds an unfinished export (2 of 5 symbol(s)"),
        (Path("ds"), "unfinished", "run the same export with --overwrite"),
        (Path("ds"), "complete", "Nothing was changed: ds still holds the earlier export."),
        (Path("ds"), "absent", "Nothing was written."),
        (Path("/nonexistent/x.csv"), None, "Nothing was written."),
    ],
)
def test_stopped_export_says_what_is_left(
    out: Path | None, state: str | None, expected: str
) -> None:
    """Ctrl-C mid-export: what the output holds and what to do about it."""
    text = stopped_export_text(out, dataset_state=state, symbols=2, total=5, rows=300)
    assert expected in text


def test_strict_text_names_each_rejected_file_and_the_rest() -> None:
    """--strict: one line naming every rejected file, its first bad row, and the files written."""
    report = report_of(
        FileReport(path=Path("a.csv"), status="written", rows=1, counts=UpsertCounts(inserted=1)),
        FileReport(path=Path("bad.csv"), status="rejected", rejected=2, not_written=5),
        FileReport(path=Path("z.csv"), status="written", rows=1, counts=UpsertCounts(inserted=1)),
        rejected=[
            RejectedRow(file="bad.csv", line=3, reason="date is empty"),
            RejectedRow(file="bad.csv", line=9, reason="open is empty"),
        ],
    )
    text = strict_text(report)
    assert "\n" not in text
    assert (
        "bad.csv: 2 bad row(s), nothing written from it (first: bad.csv:3: date is empty)" in text
    )
    assert text.endswith("2 other file(s) imported, see the summary")


def test_files_table_lists_problem_files_and_stays_away_for_one_clean_file() -> None:
    """One clean file needs no table; a rejected or empty one is always listed."""
    clean = FileReport(path=Path("a.csv"), status="written", rows=1)
    assert files_table(report_of(clean)) is None
    table = files_table(report_of(clean, FileReport(path=Path("h.csv"), status="no rows")))
    assert table is not None
    assert table.row_count == 2
    many = [FileReport(path=Path(f"f{i}.csv"), status="written", rows=1) for i in range(30)]
    assert files_table(report_of(*many)) is None
    table = files_table(report_of(*many, FileReport(path=Path("bad.csv"), status="rejected")))
    assert table is not None
    assert table.row_count == 2  # bad.csv, then "… 30 other file(s)"


def test_replaced_lines_name_each_symbol_and_count() -> None:
    """Simulated histories replaced by real data are said, one symbol per line."""
    report = ImportReport(replaced={"MSFT": 12, "AAPL": 1255})
    assert replaced_lines(report) == [
        "AAPL: 1,255 simulated bar(s) replaced by real data",
        "MSFT: 12 simulated bar(s) replaced by real data",
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="AaBpPz09.-$ ", max_size=8), min_size=1, max_size=20))
def test_any_symbol_is_parsed_as_normalize_symbol_writes_it(values: list[str]) -> None:
    """Whatever the case and punctuation, the vectorized parser and normalize_symbol agree:
    the same values refused, the same ones kept as they are, the same ones upper-cased."""
    dates = [(dt.date(2024, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(len(values))]
    parsed = parse_chunk(chunk(values, dates), "standard")
    kept = dict(zip(parsed.bars["date"].cast(pl.String), parsed.bars["symbol"], strict=True))
    for value, date in zip(values, dates, strict=True):
        assert kept.get(date) == accepted(value), value
