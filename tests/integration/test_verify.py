"""Verification end to end, on both backends: stored bars against the fake Yahoo over a real
socket (planted differences, omitted sessions, a split in the range), against files, and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from marketdata import calendar
from marketdata.cli.main import app
from marketdata.errors import InputError, MalformedResponse, RateLimited, UpstreamNotFound
from marketdata.providers.simulator import DEFAULT_SYMBOLS, ORIGIN, MarketSimulator
from marketdata.providers.yahoo import YahooClient
from marketdata.service.history import read_history
from marketdata.service.verify import (
    SymbolResult,
    VerifyReport,
    YahooSource,
    load_file,
    verify_symbols,
)
from marketdata.storage import Store, open_store
from marketdata.testing.yahoo_server import yahoo_history
from marketdata.validation.crosscheck import compare_bars
from tests.support.polygon import TODAY, Upstream, upstream

__all__ = ["upstream"]

AT = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
START, END = dt.date(2025, 10, 1), dt.date(2026, 6, 30)
SPLIT = dt.date(2026, 3, 9)  # the simulator's 1-for-4 AAPL split, inside [START, END]
TOLERANCE = 0.005
runner = CliRunner()


def d(text: str) -> dt.date:
    """A session date, checked to be one (so a plant can never land on a holiday)."""
    day = dt.date.fromisoformat(text)
    assert calendar.is_session(day), text
    return day


async def fill(
    store: Store,
    symbols: Sequence[str],
    *,
    skip: Sequence[tuple[str, dt.date]] = (),
    dividends: bool = False,
) -> None:
    """Store the simulator's raw bars of [START, END] (less ``skip``) and all its splits."""
    sim = MarketSimulator(seed=0)
    raw = sim.bars(symbols, START, END)
    for symbol, day in skip:
        raw = raw.filter((pl.col("symbol") != symbol) | (pl.col("date") != day))
    await store.upsert_bars(raw, source="test", at=AT)
    await store.upsert_splits(sim.splits(symbols, ORIGIN, TODAY), source="test", at=AT)
    if dividends:
        await store.upsert_dividends(sim.dividends(symbols, START, END), source="test", at=AT)


def plant(up: Upstream, symbol: str, day: dt.date, field: str, factor: float | None) -> None:
    """Serve ``factor`` × the value Yahoo would send (``None``: a null)."""
    served = up.server.yahoo.table(symbol, day, day)[field].item()
    value = None if factor is None else served * factor
    up.server.config.yahoo.changes.setdefault((symbol, day), {})[field] = value


def beyond(result: SymbolResult) -> set[tuple[dt.date, str]]:
    """(date, field) of every difference beyond tolerance (needs a large ``worst``)."""
    assert result.check is not None, result.error
    return {(x.date, x.field) for x in result.check.worst if x.relative > TOLERANCE}


def by_symbol(report: VerifyReport) -> dict[str, SymbolResult]:
    """Results keyed by symbol."""
    return {r.symbol: r for r in report.results}


@pytest.fixture
async def yahoo(upstream: Upstream) -> AsyncIterator[YahooClient]:
    """A Yahoo client against the fake, with tiny backoff."""
    client = YahooClient(base_url=upstream.url, wait_initial=0.01, wait_max=0.05)
    try:
        yield client
    finally:
        await client.aclose()


async def test_yahoo_finds_exactly_the_planted_differences(
    store: Store, upstream: Upstream, yahoo: YahooClient
) -> None:
    """Planted values, omitted and null sessions and a missing stored bar are all found, and
    nothing else: the split inside the range differs on neither side."""
    await fill(store, ["AAPL", "MSFT", "NOTYH"], skip=[("AAPL", d("2025-12-15"))])
    plant(upstream, "AAPL", d("2025-11-03"), "close", 1.02)
    plant(upstream, "AAPL", d("2026-03-10"), "volume", 0.9)  # the session after the split
    plant(upstream, "AAPL", d("2025-12-01"), "high", 1.003)  # inside tolerance
    plant(upstream, "MSFT", d("2026-01-05"), "open", 0.99)
    plant(upstream, "MSFT", d("2026-05-01"), "low", None)  # Yahoo's null: the day is dropped
    upstream.server.config.yahoo.omit |= {("AAPL", d("2026-02-02")), ("MSFT", d("2026-04-01"))}

    report = await verify_symbols(
        store, ["AAPL", "MSFT", "NOTYH", "ZZZZ"], YahooSource(yahoo), at=AT, worst=10_000
    )

    results = by_symbol(report)
    aapl, msft = results["AAPL"], results["MSFT"]
    assert aapl.check is not None
    assert msft.check is not None
    sessions = len(calendar.sessions(START, END))
    assert (aapl.start, aapl.end) == (START, END)
    assert beyond(aapl) == {(d("2025-11-03"), "close"), (d("2026-03-10"), "volume")}
    assert aapl.check.only_ours == (d("2026-02-02"),)
    assert aapl.check.only_theirs == (d("2025-12-15"),)
    assert aapl.check.compared == sessions - 2
    assert aapl.check.within == aapl.check.compared - 2
    inside = [x for x in aapl.check.worst if x.field == "high" and x.date == d("2025-12-01")]
    assert inside[0].relative == pytest.approx(0.003 / 1.003, rel=1e-4)  # float32 noise
    assert beyond(msft) == {(d("2026-01-05"), "open")}
    assert msft.check.only_ours == (d("2026-04-01"), d("2026-05-01"))
    assert msft.check.only_theirs == ()
    assert "Yahoo has no such symbol" in (results["NOTYH"].error or "")
    assert results["ZZZZ"].error == "no bars stored for ZZZZ"
    assert [r.symbol for r in report.failed] == ["NOTYH", "ZZZZ"]
    assert (report.adjusted, report.against, report.agrees) == ("splits", "yahoo", False)
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["symbols"][0]["outside"] == 2

    # The split is real: unadjusted, every AAPL bar before it would differ.
    raw = await read_history(store, "AAPL", adjusted="none")
    theirs = await yahoo.daily_bars("AAPL", START, END)
    unadjusted = compare_bars(raw, theirs, symbol="AAPL", tolerance=TOLERANCE)
    assert unadjusted.compared - unadjusted.within >= len(calendar.sessions(START, SPLIT)) - 3


async def test_a_clean_range_agrees(store: Store, upstream: Upstream, yahoo: YahooClient) -> None:
    """With nothing planted, a sub-range agrees and Yahoo is asked for exactly that range."""
    await fill(store, ["MSFT"])
    start, end = d("2026-01-02"), d("2026-01-30")
    report = await verify_symbols(store, ["MSFT"], YahooSource(yahoo), at=AT, start=start, end=end)
    check = report.results[0].check
    assert check is not None
    assert check.agrees
    assert check.compared == len(calendar.sessions(start, end))
    assert report.agrees
    assert not report.failed
    (seen,) = upstream.server.requests
    assert seen.path == "/v8/finance/chart/MSFT"
    assert "interval=1d" in seen.query
    assert "includeAdjustedClose=true" in seen.query
    future = await yahoo.chart("MSFT", d("2027-01-04"), d("2027-01-08"))  # after the fake's today
    assert future.bars.is_empty()
    assert future.dividends.is_empty()


async def test_client_retries_then_returns_the_served_bars(
    upstream: Upstream, yahoo: YahooClient
) -> None:
    """429s and a gateway page are retried; the bars are exactly what the fake served."""
    upstream.server.config.yahoo.throttle_next = 2
    upstream.server.config.yahoo.fail_next = 1
    chart = await yahoo.chart("AAPL", START, END)
    assert [r.status for r in upstream.server.requests] == [429, 429, 502, 200]
    table = upstream.server.yahoo.table("AAPL", START, END)
    assert chart.bars.select("date", "open", "high", "low", "close", "volume").equals(
        table.select("date", "open", "high", "low", "close", "volume")
    )
    assert chart.adjusted_close.equals(table.select("date", "adjclose"))
    assert chart.splits.rows() == [("AAPL", SPLIT, 1.0, 4.0)]


async def test_client_errors_are_typed_and_final(upstream: Upstream, yahoo: YahooClient) -> None:
    """404 and garbage cost one call each and name the path; endless 429s end at the deadline."""
    with pytest.raises(UpstreamNotFound, match="symbol may be delisted"):
        await yahoo.daily_bars("NOTYH", START, END)
    upstream.server.config.yahoo.malformed = "ragged"
    with pytest.raises(MalformedResponse, match=r"has \d+ values for \d+ timestamps") as info:
        await yahoo.daily_bars("AAPL", START, END)
    assert info.value.path == "/v8/finance/chart/AAPL"
    assert [r.status for r in upstream.server.requests] == [404, 200]
    upstream.server.config.yahoo.malformed = None
    upstream.server.config.yahoo.throttle_next = 10_000
    impatient = YahooClient(base_url=upstream.url, wait_initial=0.01, retry_deadline=0.3)
    try:
        with pytest.raises(RateLimited):
            await impatient.daily_bars("AAPL", START, END)
    finally:
        await impatient.aclose()


async def test_share_classes_are_asked_for_with_a_dash(
    upstream: Upstream, yahoo: YahooClient
) -> None:
    """BRK.B is BRK-B at Yahoo; the bars come back named as we name them."""
    upstream.server.config.symbols = (*DEFAULT_SYMBOLS, "BRK.B")
    bars = await yahoo.daily_bars("BRK.B", d("2026-01-05"), d("2026-01-09"))
    assert bars["symbol"].unique().to_list() == ["BRK.B"]
    assert bars.height == 5
    assert upstream.server.requests[0].path == "/v8/finance/chart/BRK-B"


async def test_file_source_finds_exactly_the_planted_differences(
    store: Store, tmp_path: Path
) -> None:
    """A raw CSV of several symbols: planted values, a missing row, a repeated row (last wins),
    a bad row (counted), and symbols missing on either side."""
    await fill(store, ["AAPL", "MSFT", "NVDA"], skip=[("MSFT", d("2025-12-15"))])
    raw = MarketSimulator(seed=0).bars(["AAPL", "MSFT", "GOOGL"], START, END)
    hit = {("AAPL", d("2025-11-03")): ("close", 1.01), ("MSFT", d("2026-02-02")): ("volume", 2.0)}
    for (symbol, day), (field, factor) in hit.items():
        at = (pl.col("symbol") == symbol) & (pl.col("date") == day)
        raw = raw.with_columns(pl.when(at).then(pl.col(field) * factor).otherwise(pl.col(field)))
    repeated = raw.filter((pl.col("symbol") == "AAPL") & (pl.col("date") == d("2025-11-04")))
    raw = raw.filter((pl.col("symbol") != "AAPL") | (pl.col("date") != d("2026-01-05")))
    first = repeated.with_columns(pl.col("close") * 5)
    path = tmp_path / "other.csv"
    text = pl.concat([first, raw]).write_csv()
    path.write_text(text + "AAPL,2026-13-01,1,1,1,1,1,,\n")

    source = load_file(path, ["AAPL", "MSFT", "NVDA", "GOOGL"], adjusted="none")
    report = await verify_symbols(
        store, ["AAPL", "MSFT", "NVDA", "GOOGL"], source, at=AT, worst=10_000
    )

    results = by_symbol(report)
    assert beyond(results["AAPL"]) == {(d("2025-11-03"), "close")}
    assert beyond(results["MSFT"]) == {(d("2026-02-02"), "volume")}
    aapl, msft = results["AAPL"].check, results["MSFT"].check
    assert aapl is not None
    assert msft is not None
    assert (aapl.only_ours, aapl.only_theirs) == ((d("2026-01-05"),), ())
    assert (msft.only_ours, msft.only_theirs) == ((), (d("2025-12-15"),))
    assert results["NVDA"].error == f"{path} has no bars for NVDA"
    assert results["GOOGL"].error == "no bars stored for GOOGL"
    assert report.source_rejected_rows == 2  # the bad row, and the first of the repeated pair
    assert report.adjusted == "none"


@pytest.mark.parametrize(
    ("adjusted", "fields"),
    [("splits", ("open", "high", "low", "close", "volume")), ("all", ("close",))],
)
async def test_adjusted_files_agree_with_an_independent_adjustment(
    store: Store, tmp_path: Path, adjusted: str, fields: tuple[str, ...]
) -> None:
    """A Parquet file adjusted by the fake's own arithmetic matches our adjusted reads: splits
    (AAPL splits in the range) and dividends (V pays them) alike."""
    symbols = ["AAPL", "V"]
    await fill(store, symbols, dividends=True)
    sim = MarketSimulator(seed=0)
    frames = []
    for symbol in symbols:
        history = yahoo_history(
            sim.bars([symbol], START, END),
            sim.splits([symbol], ORIGIN, TODAY),
            sim.dividends([symbol], START, END),
        )
        if adjusted == "all":
            history = history.with_columns(pl.col("adjclose").alias("close"))
        frames.append(history.drop("adjclose").with_columns(pl.lit(symbol).alias("symbol")))
    path = tmp_path / "adjusted.parquet"
    pl.concat(frames).select(
        "symbol", "date", "open", "high", "low", "close", "volume"
    ).write_parquet(path)
    source = load_file(path, symbols, adjusted=adjusted)  # type: ignore[arg-type]
    report = await verify_symbols(store, symbols, source, at=AT, tolerance=1e-9, fields=fields)
    assert report.agrees, report.to_dict()
    assert all(r.check is not None and r.check.compared > 150 for r in report.results)
    v = sim.dividends(["V"], START, END)
    assert v.height >= 2  # the dividend case is not vacuous


async def _fill_url(url: str, symbols: Sequence[str]) -> None:
    store = await open_store(url)
    try:
        await fill(store, symbols)
    finally:
        await store.aclose()


def test_cli_exit_codes_and_report(database_url: str, upstream: Upstream, tmp_path: Path) -> None:
    """0 when everything agrees, 3 with differences (and the JSON report says which), 2 for a
    bad tolerance, 1 for an unknown source or a symbol that cannot be checked."""
    asyncio.run(_fill_url(database_url, ["AAPL", "MSFT"]))
    env = {"MARKETDATA_YAHOO_BASE_URL": upstream.url, "COLUMNS": "200"}

    def verify(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--database-url", database_url, "verify", *args], env=env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = verify("AAPL", "MSFT", "--against", "yahoo")
    assert code == 0, out
    assert "AAPL" in out
    assert "MSFT" in out

    plant(upstream, "MSFT", d("2026-01-05"), "close", 1.05)
    report = tmp_path / "report.json"
    code, out, err = verify("AAPL", "MSFT", "--against", "yahoo", "--report", str(report))
    assert code == 3
    assert "MSFT: worst differences" in out
    assert "wrote the report" in err
    data = json.loads(report.read_text())
    msft = data["symbols"][1]
    assert (msft["symbol"], msft["outside"], msft["agrees"]) == ("MSFT", 1, False)
    assert msft["worst"][0]["date"] == "2026-01-05"
    assert msft["worst"][0]["field"] == "close"
    assert msft["worst"][0]["relative"] == pytest.approx(0.05 / 1.05)
    assert data["symbols"][0]["agrees"] is True

    code, out, _ = verify("MSFT", "--against", "yahoo", "--json", "--worst", "1")
    assert code == 3
    assert json.loads(out)["symbols"][0]["worst"][0]["date"] == "2026-01-05"

    code, _, err = verify("MSFT", "--against", "yahoo", "--tolerance", "1.5")
    assert code == 2
    assert "--tolerance" in err
    code, _, err = verify("AAPL", "ZZZZ", "--against", "yahoo")
    assert code == 1
    assert "ZZZZ: no bars stored for ZZZZ" in err
    with pytest.raises(InputError, match="neither 'yahoo' nor an existing file"):
        verify("AAPL", "--against", str(tmp_path / "nope.csv"))
