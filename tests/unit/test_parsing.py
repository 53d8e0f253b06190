"""Parsing raw columns into bars: layouts, and every kind of bad row, from tables of cases."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from marketdata.providers.parsing import LINE, LayoutError, detect_layout, parse_chunk

HEADER = ["symbol", "date", "open", "high", "low", "close", "volume", "vwap", "transactions"]
GOOD = ["AAPL", "2024-01-02", "1.5", "2", "1", "1.75", "100", "1.6", "12"]


def raw(*rows: list[str], header: list[str] = HEADER) -> pl.DataFrame:
    """A chunk as the CSV reader hands it over: strings plus line numbers from 2."""
    frame = pl.DataFrame(
        [dict(zip(header, r, strict=True)) for r in rows], schema=dict.fromkeys(header, pl.String)
    )
    return frame.with_columns(pl.int_range(2, 2 + frame.height, dtype=pl.Int64).alias(LINE))


@pytest.mark.parametrize(
    ("columns", "layout"),
    [
        (HEADER, "standard"),
        (HEADER[:7], "standard"),
        (["Symbol", " Date ", "OPEN", "High", "low", "close", "Volume"], "standard"),
        (
            ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"],
            "polygon-flat",
        ),
        (["ticker", "volume", "open", "close", "high", "low", "window_start"], "polygon-flat"),
    ],
)
def test_detect_layout(columns: list[str], layout: str) -> None:
    """Both layouts are recognised regardless of case, spacing and optional columns."""
    assert detect_layout(columns) == layout


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["a", "b"], "matches no supported layout"),
        (HEADER[:6], "matches no supported layout"),
        ([*HEADER, "adj_close"], "unexpected column"),
        ([], "matches no supported layout"),
    ],
)
def test_detect_layout_rejects(columns: list[str], message: str) -> None:
    """A header with missing or unknown columns is refused, naming what was expected."""
    with pytest.raises(LayoutError, match=message):
        detect_layout(columns)


def test_good_row_parses_exactly() -> None:
    """Text becomes float64 / date / int64 with no rounding."""
    row = [
        "BRK.B",
        "2024-03-10",
        "0.30000000000000004",
        "1e-8",
        "123456.78901234",
        "1",
        "642646396.0",
        "",
        "",
    ]
    parsed = parse_chunk(raw(row), "standard")
    assert parsed.rejected.is_empty()
    bar = parsed.bars.row(0, named=True)
    assert bar == {
        "symbol": "BRK.B",
        "date": dt.date(2024, 3, 10),
        "open": 0.1 + 0.2,
        "high": 1e-8,
        "low": 123456.78901234,
        "close": 1.0,
        "volume": 642646396.0,
        "vwap": None,
        "transactions": None,
    }


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (0, "", "symbol is empty"),
        (0, "   ", "symbol is empty"),
        (0, "A" * 21, "longer than 20"),
        (0, "AA PL", "contains spaces"),
        (1, "", "date is empty"),
        (1, "2024-02-30", "unparsable date '2024-02-30'"),
        (1, "01/02/2024", "unparsable date"),
        (2, "abc", "unparsable open 'abc'"),
        (2, "", "open is empty"),
        (3, "nan", "high is not a finite number"),
        (4, "-inf", "low is not a finite number"),
        (5, "1,5", "unparsable close"),
        (6, "", "volume is empty"),
        (6, "lots", "unparsable volume"),
        (7, "x", "unparsable vwap 'x'"),
        (8, "2.5", "transactions must be a whole number"),
        (8, "1e30", "transactions must be a whole number"),
        (8, "99999999999999999999", "transactions must be a whole number"),
        (8, "many", "unparsable transactions"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(index: int, value: str, reason: str) -> None:
    """Each bad field rejects its row with a reason naming the field and value."""
    bad = list(GOOD)
    bad[index] = value
    parsed = parse_chunk(raw(GOOD, bad, [*GOOD[:1], "2024-01-03", *GOOD[2:]]), "standard")
    assert parsed.bars.height == 2
    [(line, why)] = parsed.rejected.rows()
    assert line == 3
    assert reason in why


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        (" 12 ", 12),
        ("12.0", 12),
        ("1e3", 1000),
        ("9007199254740993", 2**53 + 1),  # past a float's exact integers: read as digits
        ("9223372036854775807", 2**63 - 1),
        ("-5", -5),
    ],
)
def test_whole_numbers_are_read_exactly(text: str, value: int) -> None:
    """A transaction count is read as an integer, never rounded through a float."""
    row = list(GOOD)
    row[8] = text
    parsed = parse_chunk(raw(row), "standard")
    assert parsed.rejected.is_empty()
    assert parsed.bars["transactions"].to_list() == [value]


def test_long_values_are_shortened_in_reasons() -> None:
    """A huge bad value does not flood the report."""
    bad = list(GOOD)
    bad[2] = "x" * 500
    [(_, why)] = parse_chunk(raw(bad), "standard").rejected.rows()
    assert len(why) < 80


def test_whole_float_transactions_and_exponent_volume_are_accepted() -> None:
    """Vendors send ``n`` as 12.0 and ``v`` as 1.029145e+06."""
    row = [*GOOD[:6], "1.029145e+06", "1.6", "12.0"]
    bar = parse_chunk(raw(row), "standard").bars.row(0, named=True)
    assert bar["volume"] == 1029145.0
    assert bar["transactions"] == 12


def test_duplicate_keys_keep_the_last_row() -> None:
    """The same symbol and date twice: the later line wins, the earlier is reported."""
    later = [*GOOD[:5], "9.0", *GOOD[6:]]
    parsed = parse_chunk(raw(GOOD, later), "standard")
    assert parsed.bars["close"].to_list() == [9.0]
    assert parsed.rejected.rows() == [
        (2, "superseded by a later row with the same symbol and date")
    ]


FLAT = ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]


@pytest.mark.parametrize(
    ("window_start", "session"),
    [
        ("1679889600000000000", dt.date(2023, 3, 27)),  # 04:00 UTC = midnight EDT
        ("1112331600000000000", dt.date(2005, 4, 1)),  # 05:00 UTC = midnight EST
        ("1709874000000000000", dt.date(2024, 3, 8)),  # last EST Friday before DST: 05:00 UTC
        ("1710129600000000000", dt.date(2024, 3, 11)),  # first EDT Monday: 04:00 UTC
        ("1698984000000000000", dt.date(2023, 11, 3)),  # last EDT Friday: 04:00 UTC
        ("1699246800000000000", dt.date(2023, 11, 6)),  # first EST Monday: 05:00 UTC
    ],
)
def test_flat_file_window_start_is_a_new_york_date(window_start: str, session: dt.date) -> None:
    """window_start (ns, New York midnight) converts to the session date across DST."""
    row = ["AAPL", "4.5e6", "1", "1.1", "1.2", "0.9", window_start, "10"]
    parsed = parse_chunk(raw(row, header=FLAT), "polygon-flat")
    assert parsed.rejected.is_empty()
    assert parsed.bars["date"].to_list() == [session]
    assert parsed.bars["high"].to_list() == [1.2]


def test_flat_file_bad_window_start() -> None:
    """A window_start that is not an integer is rejected."""
    row = ["AAPL", "1", "1", "1", "1", "1", "yesterday", "1"]
    [(_, why)] = parse_chunk(raw(row, header=FLAT), "polygon-flat").rejected.rows()
    assert "window_start" in why


def test_typed_parquet_columns_parse_without_text() -> None:
    """Parquet columns arrive typed (date, float, int) and parse the same way."""
    frame = pl.DataFrame(
        {
            "symbol": ["X"],
            "date": [dt.date(2024, 1, 2)],
            "open": [1.0],
            "high": [2.0],
            "low": [0.5],
            "close": [1.5],
            "volume": [10],
            LINE: [1],
        }
    )
    parsed = parse_chunk(frame, "standard")
    assert parsed.rejected.is_empty()
    assert parsed.bars["volume"].to_list() == [10.0]
    assert parsed.bars["date"].to_list() == [dt.date(2024, 1, 2)]
