"""Storage on both backends: idempotent upserts, revisions, counts, status, exact floats."""

from __future__ import annotations

import datetime as dt
import math
import struct

import polars as pl
import pytest

from marketdata.storage import Store, UpsertCounts
from tests.support.factories import AT, AWKWARD_FLOATS, make_bars


def bits(values: list[float]) -> list[bytes]:
    """The IEEE-754 bit patterns of ``values``."""
    return [struct.pack("<d", v) for v in values]


async def test_insert_then_read_back_every_column(store: Store) -> None:
    """Bars come back exactly as written, oldest first, with validation defaults."""
    frame = make_bars("AAPL", days=5)
    counts = await store.upsert_bars(frame, source="test", at=AT)
    assert counts == UpsertCounts(inserted=5)
    got = await store.read_bars("AAPL")
    expected = frame.drop("symbol")
    assert got.select(expected.columns).equals(expected)
    assert got["quality"].null_count() == 5
    assert got["flags"].to_list() == [0] * 5
    assert got["validated"].to_list() == [False] * 5
    assert got["ingested_at"].to_list() == [AT] * 5


async def test_awkward_floats_are_bit_exact(store: Store) -> None:
    """Tiny, huge, subnormal and 0.1+0.2 prices survive storage bit for bit."""
    n = len(AWKWARD_FLOATS)
    frame = make_bars("BRK.B", days=n, open=AWKWARD_FLOATS, vwap=list(reversed(AWKWARD_FLOATS)))
    await store.upsert_bars(frame, source="test", at=AT)
    got = await store.read_bars("BRK.B")
    assert bits(got["open"].to_list()) == bits(AWKWARD_FLOATS)
    assert bits(got["vwap"].to_list()) == bits(list(reversed(AWKWARD_FLOATS)))


async def test_reloading_identical_data_changes_nothing(store: Store) -> None:
    """A second identical load counts every row unchanged and writes no revision."""
    frame = make_bars("MSFT", days=10)
    await store.upsert_bars(frame, source="a", at=AT)
    later = AT + dt.timedelta(days=1)
    counts = await store.upsert_bars(frame, source="b", at=later)
    assert counts == UpsertCounts(unchanged=10)
    got = await store.read_bars("MSFT")
    assert got["ingested_at"].to_list() == [AT] * 10
    assert (await store.read_revisions("MSFT")).is_empty()


async def test_changed_bar_keeps_old_values_as_revision(store: Store) -> None:
    """A changed bar is updated and its previous version lands in bar_revisions."""
    frame = make_bars("TSLA", days=3)
    await store.upsert_bars(frame, source="first", at=AT)
    later = AT + dt.timedelta(hours=5)
    changed = frame.with_columns(
        pl.when(pl.col("date") == dt.date(2024, 1, 3))
        .then(999.5)
        .otherwise(pl.col("close"))
        .alias("close"),
        pl.when(pl.col("date") == dt.date(2024, 1, 4))
        .then(None)
        .otherwise(pl.col("vwap"))
        .alias("vwap"),
    )
    counts = await store.upsert_bars(changed, source="second", at=later)
    assert counts == UpsertCounts(updated=2, unchanged=1)
    got = await store.read_bars("TSLA")
    assert got["close"].to_list()[1] == 999.5
    assert got["vwap"].to_list()[2] is None
    assert got["ingested_at"].to_list() == [AT, later, later]
    revisions = await store.read_revisions("TSLA")
    assert revisions["date"].to_list() == [dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
    assert revisions["close"].to_list() == frame["close"].to_list()[1:]
    assert revisions["vwap"].to_list() == frame["vwap"].to_list()[1:]
    assert revisions["source"].to_list() == ["first", "first"]
    assert revisions["revised_by"].to_list() == ["second", "second"]
    assert revisions["ingested_at"].to_list() == [AT, AT]
    assert revisions["revised_at"].to_list() == [later, later]


async def test_mixed_chunk_counts_inserted_updated_unchanged(store: Store) -> None:
    """One chunk with new, changed and identical rows across symbols is counted exactly."""
    await store.upsert_bars(make_bars("A", days=4), source="s", at=AT)
    await store.upsert_bars(make_bars("B", days=2), source="s", at=AT)
    a = make_bars("A", days=6).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(1.0).otherwise(pl.col("low")).alias("low")
    )
    b = make_bars("B", days=2)
    c = make_bars("C", days=3)
    counts = await store.upsert_bars(pl.concat([a, b, c]), source="s2", at=AT)
    assert counts == UpsertCounts(inserted=5, updated=1, unchanged=5)
    statuses = {s.symbol: s for s in await store.symbol_statuses()}
    assert {k: v.bar_count for k, v in statuses.items()} == {"A": 6, "B": 2, "C": 3}


async def test_status_is_maintained_on_every_write(store: Store) -> None:
    """first/last date, bar and validated counts follow inserts, gaps filled and updates."""
    early = make_bars("NVDA", start=dt.date(2024, 1, 2), days=3, validated=True, quality=1.0)
    late = make_bars("NVDA", start=dt.date(2024, 2, 1), days=2, validated=False)
    await store.upsert_bars(late, source="s", at=AT)
    await store.upsert_bars(early, source="s", at=AT)
    [status] = await store.symbol_statuses(["NVDA"])
    assert (status.first_date, status.last_date) == (dt.date(2024, 1, 2), dt.date(2024, 2, 2))
    assert (status.bar_count, status.validated_count) == (5, 3)
    # Re-validating a bar as part of a changed load moves the validated count.
    fixed = late.with_columns(pl.lit(True).alias("validated"), pl.col("close") + 0.01)
    await store.upsert_bars(fixed, source="s", at=AT)
    [status] = await store.symbol_statuses(["NVDA"])
    assert (status.bar_count, status.validated_count) == (5, 5)
    assert status.updated_at == AT
    assert status.gap_count == 0
    assert status.last_fetch is None
    assert status.last_error is None


async def test_read_filters_range_validated_and_quality(store: Store) -> None:
    """start/end are inclusive; validated_only and min_quality filter rows."""
    frame = make_bars(
        "AMD",
        days=5,
        validated=[True, False, True, True, False],
        quality=[1.0, 0.2, 0.8, None, 0.95],
    )
    await store.upsert_bars(frame, source="s", at=AT)
    dates = frame["date"].to_list()
    ranged = await store.read_bars("AMD", start=dates[1], end=dates[3])
    assert ranged["date"].to_list() == dates[1:4]
    assert (await store.read_bars("AMD", validated_only=True))["date"].to_list() == [
        dates[0],
        dates[2],
        dates[3],
    ]
    assert (await store.read_bars("AMD", min_quality=0.8))["date"].to_list() == [
        dates[0],
        dates[2],
        dates[4],
    ]
    got = await store.read_bars("AMD")
    assert got["quality"].to_list() == [1.0, 0.2, 0.8, None, 0.95]


async def test_read_unknown_symbol_is_empty_with_schema(store: Store) -> None:
    """An unknown symbol or empty range gives an empty frame with the full schema."""
    got = await store.read_bars("NOPE")
    assert got.is_empty()
    assert got.columns[:3] == ["date", "open", "high"]
    assert await store.symbol_statuses(["NOPE"]) == []


async def test_symbols_are_case_sensitive_and_dotted(store: Store) -> None:
    """BRK.B, BRK-B and AMpB are distinct symbols."""
    for sym in ("BRK.B", "BRK-B", "AMpB"):
        await store.upsert_bars(make_bars(sym, days=2), source="s", at=AT)
    assert [s.symbol for s in await store.symbol_statuses()] == ["AMpB", "BRK-B", "BRK.B"]
    assert (await store.read_bars("BRK.B")).height == 2


async def test_duplicate_keys_in_one_chunk_are_refused(store: Store) -> None:
    """The caller must resolve duplicates; the store refuses an ambiguous chunk."""
    frame = make_bars("X", days=2)
    with pytest.raises(ValueError, match="duplicate"):
        await store.upsert_bars(pl.concat([frame, frame]), source="s", at=AT)


async def test_naive_ingestion_time_is_refused(store: Store) -> None:
    """Time is stored as an instant: a naive datetime is a programming error."""
    with pytest.raises(ValueError, match="timezone"):
        await store.upsert_bars(make_bars(), source="s", at=dt.datetime(2024, 1, 1))


async def test_large_chunk_round_trip(store: Store) -> None:
    """Thousands of rows over many symbols take the bulk path and come back intact."""
    frames = [make_bars(f"S{i:03d}", days=250) for i in range(40)]
    counts = await store.upsert_bars(pl.concat(frames), source="bulk", at=AT)
    assert counts == UpsertCounts(inserted=10_000)
    again = await store.upsert_bars(pl.concat(frames[:10]), source="bulk", at=AT)
    assert again == UpsertCounts(unchanged=2_500)
    got = await store.read_bars("S007")
    assert got.select(frames[7].drop("symbol").columns).equals(frames[7].drop("symbol"))
    assert math.isclose(got["close"].sum(), frames[7]["close"].sum())


async def test_ping_and_description(store: Store) -> None:
    """ping answers on a live database; the description never holds a password."""
    await store.ping()
    assert store.backend in store.description.lower() or "SQLite" in store.description


async def test_status_records_the_source_of_the_latest_write(store: Store) -> None:
    """symbol_status.source follows writes; has_source answers from the status table."""
    await store.upsert_bars(make_bars("AAPL", days=3), source="synthetic", at=AT)
    assert await store.has_source("synthetic")
    [status] = await store.symbol_statuses(["AAPL"])
    assert status.source == "synthetic"
    changed = make_bars("AAPL", days=4, close=7.5)
    await store.upsert_bars(changed, source="polygon", at=AT)
    [status] = await store.symbol_statuses(["AAPL"])
    assert status.source == "polygon"
    assert not await store.has_source("synthetic")


async def test_purge_symbol_removes_everything_of_it(store: Store) -> None:
    """Purging deletes bars, revisions and status of one symbol and nothing else."""
    await store.upsert_bars(make_bars("AAPL", days=3), source="a", at=AT)
    await store.upsert_bars(make_bars("AAPL", days=3, close=1.0), source="b", at=AT)
    await store.upsert_bars(make_bars("MSFT", days=2), source="a", at=AT)
    assert await store.purge_symbol("AAPL") == 3
    assert (await store.read_bars("AAPL")).is_empty()
    assert (await store.read_revisions("AAPL")).is_empty()
    assert [s.symbol for s in await store.symbol_statuses()] == ["MSFT"]
    assert (await store.read_bars("MSFT")).height == 2
    assert await store.purge_symbol("NOPE") == 0


async def test_purging_a_watched_symbol_keeps_it_watched(store: Store) -> None:
    """Purging removes data, not watchlist membership: a watched symbol keeps an empty,
    watched status row (so /status still counts it, as stale), and new bars fill that row."""
    await store.upsert_bars(make_bars("AAPL", days=3), source="synthetic", at=AT)
    await store.upsert_bars(make_bars("MSFT", days=2), source="synthetic", at=AT)
    await store.set_watched(["AAPL"], at=AT)
    assert await store.purge_symbol("AAPL") == 3
    assert await store.purge_symbol("MSFT") == 2
    assert await store.watched_symbols() == ["AAPL"]
    [row] = await store.status_rows()
    assert (row.symbol, row.bar_count, row.last_date) == ("AAPL", 0, None)
    assert await store.symbol_statuses() == []  # nothing stored
    await store.upsert_bars(make_bars("AAPL", days=2), source="polygon", at=AT)
    [row] = await store.status_rows()
    assert (row.symbol, row.bar_count, row.source) == ("AAPL", 2, "polygon")
    assert await store.watched_symbols() == ["AAPL"]


async def test_read_marks_lists_dates_and_validation_in_range(store: Store) -> None:
    """Dates and validation marks only, by symbol then date, limited to the range and the
    symbols asked; nothing stored gives an empty frame with the right columns."""
    for symbol, flags in (("BBB", [True, False, True, True]), ("AAA", [False, True, True, True])):
        frame = make_bars(symbol, start=dt.date(2024, 1, 2), days=4).with_columns(
            validated=pl.Series(flags), quality=pl.lit(1.0), flags=pl.lit(0)
        )
        await store.upsert_bars(frame, source="test", at=AT)
    await store.upsert_bars(make_bars("CCC", days=2), source="test", at=AT)
    marks = await store.read_marks(
        ["BBB", "AAA"], start=dt.date(2024, 1, 3), end=dt.date(2024, 1, 5)
    )
    assert marks.schema == {"symbol": pl.String, "date": pl.Date, "validated": pl.Boolean}
    assert marks.rows() == [
        ("AAA", dt.date(2024, 1, 3), True),
        ("AAA", dt.date(2024, 1, 4), True),
        ("AAA", dt.date(2024, 1, 5), True),
        ("BBB", dt.date(2024, 1, 3), False),
        ("BBB", dt.date(2024, 1, 4), True),
        ("BBB", dt.date(2024, 1, 5), True),
    ]
    none = await store.read_marks(["ZZZ"], start=dt.date(2024, 1, 1), end=dt.date(2024, 2, 1))
    assert none.is_empty()
    assert none.columns == ["symbol", "date", "validated"]
