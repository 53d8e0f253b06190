"""Storage of scores, the validation log, gap counts and corporate actions, on both backends."""

from __future__ import annotations

import datetime as dt

import polars as pl

from marketdata.storage import Store, UpsertCounts
from tests.support.factories import AT, make_bars

LATER = AT + dt.timedelta(days=1)


def log_rows(symbol: str, dates: list[dt.date], rule: str = "zero_volume") -> pl.DataFrame:
    """Validation-log rows naming ``rule`` on each of ``dates``."""
    n = len(dates)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "date": dates,
            "rule": [rule] * n,
            "severity": ["soft"] * n,
            "value": [0.0] * n,
            "threshold": [None] * n,
        },
        schema_overrides={"threshold": pl.Float64},
    )


def scored(frame: pl.DataFrame, *, flags: list[int], validated: list[bool]) -> pl.DataFrame:
    """``frame`` with scores attached."""
    return frame.with_columns(
        pl.Series("flags", flags, pl.Int64),
        pl.Series(
            "quality",
            [0.0 if not v else 1.0 - 0.1 * bool(f) for f, v in zip(flags, validated, strict=True)],
        ),
        pl.Series("validated", validated),
    )


async def validated_count(store: Store, symbol: str) -> int:
    """The maintained validated count of ``symbol``."""
    (status,) = await store.symbol_statuses([symbol])
    return status.validated_count


async def test_scores_and_log_are_written_with_new_bars(store: Store) -> None:
    """Scores land on the bars, the log rows in validation_log, the count in the status."""
    frame = scored(
        make_bars("AAPL", days=4), flags=[0, 1 << 16, 0, 1], validated=[True, True, True, False]
    )
    dates = frame["date"].to_list()
    await store.upsert_bars(frame, source="t", at=AT, log=log_rows("AAPL", [dates[1]]))
    got = await store.read_bars("AAPL")
    assert got["flags"].to_list() == [0, 1 << 16, 0, 1]
    assert got["validated"].to_list() == [True, True, True, False]
    assert got["quality"].to_list() == [1.0, 0.9, 1.0, 0.0]
    assert await validated_count(store, "AAPL") == 3
    logged = await store.read_validation_log("AAPL")
    assert logged.select("date", "rule").rows() == [(dates[1], "zero_volume")]


async def test_rescoring_unchanged_values_updates_scores_without_revision(store: Store) -> None:
    """Same values with new scores: counted unchanged, scores and log replaced, no revision."""
    frame = make_bars("MSFT", days=3)
    dates = frame["date"].to_list()
    first = scored(frame, flags=[0, 0, 0], validated=[True, True, True])
    await store.upsert_bars(first, source="t", at=AT, log=log_rows("MSFT", dates[:2]))
    second = scored(frame, flags=[0, 1, 0], validated=[True, False, True])
    counts = await store.upsert_bars(
        second, source="t", at=LATER, log=log_rows("MSFT", [dates[1]], "high_below_low")
    )
    assert counts == UpsertCounts(unchanged=3)
    got = await store.read_bars("MSFT")
    assert got["validated"].to_list() == [True, False, True]
    assert got["ingested_at"].to_list() == [AT] * 3
    assert (await store.read_revisions("MSFT")).is_empty()
    assert await validated_count(store, "MSFT") == 2
    logged = await store.read_validation_log("MSFT")
    assert logged.select("date", "rule").rows() == [(dates[1], "high_below_low")]


async def test_unscored_write_keeps_stored_scores(store: Store) -> None:
    """A frame without score columns never wipes the scores of unchanged stored bars."""
    frame = make_bars("IBM", days=2)
    await store.upsert_bars(scored(frame, flags=[0, 0], validated=[True, True]), source="t", at=AT)
    await store.upsert_bars(frame, source="t", at=LATER)
    got = await store.read_bars("IBM")
    assert got["validated"].to_list() == [True, True]
    assert await validated_count(store, "IBM") == 2


async def test_changed_values_carry_their_new_scores(store: Store) -> None:
    """A revised bar takes the scores sent with it; the validated count follows."""
    frame = make_bars("TSLA", days=2)
    await store.upsert_bars(scored(frame, flags=[0, 0], validated=[True, True]), source="a", at=AT)
    changed = frame.with_columns(pl.Series("high", [90.0, frame["high"][1]]))
    counts = await store.upsert_bars(
        scored(changed, flags=[4, 0], validated=[False, True]), source="b", at=LATER
    )
    assert counts == UpsertCounts(updated=1, unchanged=1)
    got = await store.read_bars("TSLA")
    assert got["validated"].to_list() == [False, True]
    assert got["high"][0] == 90.0
    assert await validated_count(store, "TSLA") == 1


async def test_write_scores_rescores_stored_bars_only(store: Store) -> None:
    """write_scores changes differing bars, ignores unknown ones and replaces only their log."""
    frame = make_bars("NVDA", days=3)
    dates = frame["date"].to_list()
    await store.upsert_bars(
        scored(frame, flags=[0, 0, 0], validated=[True] * 3),
        source="t",
        at=AT,
        log=log_rows("NVDA", dates),
    )
    scores = pl.DataFrame(
        {
            "symbol": ["NVDA", "NVDA", "NVDA"],
            "date": [dates[0], dates[1], dt.date(1999, 1, 4)],
            "quality": [1.0, 0.0, 0.0],
            "flags": [0, 2, 2],
            "validated": [True, False, False],
        }
    )
    changed = await store.write_scores(
        scores, log=log_rows("NVDA", [dates[1]], "non_positive_price"), at=LATER
    )
    assert changed == 1
    got = await store.read_bars("NVDA")
    assert got["flags"].to_list() == [0, 2, 0]
    assert await validated_count(store, "NVDA") == 2
    logged = await store.read_validation_log("NVDA")
    # dates[0] and dates[1] were re-scored (their old rows replaced); dates[2] keeps its row
    assert logged.select("date", "rule").rows() == [
        (dates[1], "non_positive_price"),
        (dates[2], "zero_volume"),
    ]
    counts = await store.rule_counts(["NVDA"])
    assert sorted(counts.select("rule", "count").rows()) == [
        ("non_positive_price", 1),
        ("zero_volume", 1),
    ]


async def test_read_neighbourhood_gives_context_around_spans(store: Store) -> None:
    """Rows inside each span plus at most ``rows`` before and after, per symbol."""
    a = make_bars("A", days=10)
    b = make_bars("B", days=3)
    await store.upsert_bars(pl.concat([a, b]), source="t", at=AT)
    ad = a["date"].to_list()
    spans = pl.DataFrame(
        {"symbol": ["A", "B", "C"], "lo": [ad[4], ad[0], ad[0]], "hi": [ad[5], ad[0], ad[9]]}
    )
    got = await store.read_neighbourhood(spans, rows=2)
    assert got.filter(pl.col("symbol") == "A")["date"].to_list() == ad[2:8]
    assert got.filter(pl.col("symbol") == "B")["date"].to_list() == b["date"].to_list()
    assert got.filter(pl.col("symbol") == "C").is_empty()
    assert got.columns[:3] == ["symbol", "date", "open"]


async def test_gap_counts_are_stored_in_the_status(store: Store) -> None:
    """set_gap_counts updates only the named symbols."""
    await store.upsert_bars(pl.concat([make_bars("X"), make_bars("Y")]), source="t", at=AT)
    await store.set_gap_counts(pl.DataFrame({"symbol": ["X"], "gap_count": [7]}))
    gaps = {s.symbol: s.gap_count for s in await store.symbol_statuses()}
    assert gaps == {"X": 7, "Y": 0}


SPLITS = pl.DataFrame(
    {
        "symbol": ["AMZN", "GOOGL"],
        "execution_date": [dt.date(2022, 6, 6), dt.date(2022, 7, 18)],
        "split_from": [1.0, 1.0],
        "split_to": [20.0, 20.0],
    }
)

DIVIDENDS = pl.DataFrame(
    {
        "symbol": ["AAPL", "AAPL", "AAPL"],
        "ex_dividend_date": [dt.date(2024, 2, 9), dt.date(2024, 5, 10), dt.date(2024, 5, 10)],
        "cash_amount": [0.24, 0.25, 1.0],
        "declaration_date": [None, None, None],
        "record_date": [None, None, None],
        "pay_date": [dt.date(2024, 2, 15), None, None],
        "frequency": [4, 4, None],
        "dividend_type": ["CD", None, "SC"],
    },
    schema_overrides={"declaration_date": pl.Date, "record_date": pl.Date, "frequency": pl.Int64},
)


async def test_splits_are_stored_idempotently_and_read_back(store: Store) -> None:
    """New splits count, identical ones do not, a changed ratio does; reads filter by symbol."""
    assert await store.upsert_splits(SPLITS, source="polygon", at=AT) == 2
    assert await store.upsert_splits(SPLITS, source="polygon", at=LATER) == 0
    changed = SPLITS.with_columns(pl.Series("split_to", [20.0, 10.0]))
    assert await store.upsert_splits(changed, source="file", at=LATER) == 1
    got = await store.read_splits(["GOOGL"])
    assert got.rows() == [("GOOGL", dt.date(2022, 7, 18), 1.0, 10.0, "file")]
    assert (await store.read_splits())["symbol"].to_list() == ["AMZN", "GOOGL"]
    assert (await store.read_splits([])).is_empty()


async def test_dividends_keep_regular_and_special_on_one_date(store: Store) -> None:
    """A missing type means CD; a special dividend on the same ex-date is its own row."""
    assert await store.upsert_dividends(DIVIDENDS, source="polygon", at=AT) == 3
    assert await store.upsert_dividends(DIVIDENDS, source="polygon", at=LATER) == 0
    got = await store.read_dividends(["AAPL"])
    assert got.select("ex_dividend_date", "dividend_type", "cash_amount").rows() == [
        (dt.date(2024, 2, 9), "CD", 0.24),
        (dt.date(2024, 5, 10), "CD", 0.25),
        (dt.date(2024, 5, 10), "SC", 1.0),
    ]
    assert got["pay_date"][0] == dt.date(2024, 2, 15)


async def test_purge_removes_corporate_actions_too(store: Store) -> None:
    """Purging a symbol forgets its splits and dividends."""
    await store.upsert_splits(SPLITS, source="t", at=AT)
    await store.upsert_dividends(DIVIDENDS, source="t", at=AT)
    await store.purge_symbol("AMZN")
    await store.purge_symbol("AAPL")
    assert (await store.read_splits())["symbol"].to_list() == ["GOOGL"]
    assert (await store.read_dividends()).is_empty()
