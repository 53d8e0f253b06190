"""``marketdata symbols``, ``backfill``, ``runs`` and ``worker --once`` from the command line."""

from __future__ import annotations

import json

import pytest

from marketdata.testing import FakePolygon
from tests.integration.test_cli import invoke, run_cli
from tests.support.polygon import KEY, Upstream


@pytest.fixture
def live_upstream(market: Upstream, monkeypatch: pytest.MonkeyPatch) -> FakePolygon:
    """The wall-clock fake Polygon, with the CLI's environment pointing at it."""
    monkeypatch.setenv("POLYGON_API_KEY", KEY)
    monkeypatch.setenv("POLYGON_BASE_URL", market.url)
    monkeypatch.setenv("POLYGON_CALLS_PER_MINUTE", "0")
    return market.server


def test_symbols_list_add_remove(database_url: str) -> None:
    """The default 15, then one added with its own depth, then one removed (data kept)."""
    code, out, _ = invoke(database_url, "symbols", "list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert len(listed) == 15
    assert {e["origin"] for e in listed} == {"config"}
    code, out, _ = invoke(database_url, "symbols", "add", "amd", "BRK.B", "--years", "2")
    assert code == 0
    assert "AMD: watching" in out
    assert "marketdata backfill" in out
    code, out, _ = invoke(database_url, "symbols", "remove", "AAPL")
    assert code == 0
    assert "AAPL: no longer watching" in out
    assert "kept" in out
    listed = {
        e["symbol"]: e for e in json.loads(invoke(database_url, "symbols", "list", "--json")[1])
    }
    assert "AAPL" not in listed
    assert listed["AMD"]["years"] == 2
    assert listed["BRK.B"]["origin"] == "user"
    code, out, _ = invoke(database_url, "symbols", "list")
    assert "AMD" in out
    assert "16 symbols" in out


def test_symbol_errors_are_one_clear_line(database_url: str) -> None:
    """A malformed symbol and removing one that is not watched fail with exit 1."""
    bad = run_cli("--database-url", database_url, "symbols", "add", "AA$")
    assert bad.returncode == 1
    assert "invalid symbol 'AA$'" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = run_cli("--database-url", database_url, "symbols", "remove", "ZZZZ")
    assert unknown.returncode == 1
    assert "not on the watchlist: ZZZZ" in unknown.stderr


def test_dry_run_prints_calls_and_time(database_url: str) -> None:
    """An empty database, 15 symbols from the simulator: one range call each plus one actions
    request (splits and dividends), and no rate limit to wait for."""
    code, out, _ = invoke(database_url, "backfill", "--dry-run", "--provider", "synthetic")
    assert code == 0
    assert "17 call(s)" in out
    assert "15 per-ticker range" in out
    assert "2 corporate actions" in out
    assert "No rate limit: as fast as the provider answers." in out
    code, out, _ = invoke(
        database_url, "backfill", "--dry-run", "--provider", "synthetic", "--json"
    )
    plan = json.loads(out)
    assert plan["calls"] == 17
    assert plan["range_calls"] == 15
    assert plan["action_calls"] == 2
    assert plan["seconds"] == 0


def test_polygon_dry_run_is_timed_at_its_rate_and_counts_only_actions_needed(
    database_url: str, live_upstream: FakePolygon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polygon at 5 calls/minute: after AAPL and MSFT are backfilled, adding NVDA is one range
    call and one actions request for NVDA alone (splits, dividends): 3 calls, 2 gaps of 12 s."""
    code, out, err = invoke(database_url, "backfill", "AAPL", "MSFT", "--years", "1")
    assert code == 0, err
    monkeypatch.setenv("POLYGON_CALLS_PER_MINUTE", "5")
    code, out, err = invoke(
        database_url, "backfill", "AAPL", "MSFT", "NVDA", "--years", "1", "--dry-run"
    )
    assert code == 0, err
    assert "1 per-ticker range" in out
    assert "2 corporate actions" in out
    assert "3 call(s)" in out
    assert "At 5 call(s)/minute this takes about 24 s" in out
    code, out, _ = invoke(database_url, "backfill", "--dry-run", "--json")
    plan = json.loads(out)
    assert plan["calls"] == plan["range_calls"] + plan["grouped_calls"] + 2
    assert plan["seconds"] == pytest.approx((plan["calls"] - 1) * 12)


def test_backfill_runs_and_reports(database_url: str, live_upstream: FakePolygon) -> None:
    """A Polygon backfill of two symbols, then nothing left to do, then the run history."""
    code, out, _ = invoke(database_url, "backfill", "AAPL", "MSFT", "--years", "1")
    assert code == 0, out
    assert "succeeded" in out
    assert "inserted" in out
    code, out, _ = invoke(database_url, "backfill", "AAPL", "MSFT", "--years", "1", "--dry-run")
    assert "Nothing to do" in out
    code, out, _ = invoke(database_url, "runs", "--json")
    runs = json.loads(out)
    assert [r["status"] for r in runs] == ["succeeded"]
    assert runs[0]["inserted"] > 2 * 240
    code, out, _ = invoke(database_url, "runs", str(runs[0]["id"]), "--json")
    detail = json.loads(out)
    assert [s["symbol"] for s in detail["symbols"]] == ["AAPL", "MSFT"]
    assert {s["status"] for s in detail["symbols"]} == {"done"}


def test_partial_failure_exits_3(database_url: str, live_upstream: FakePolygon) -> None:
    """An unknown ticker fails alone: exit 3, the reason printed, the other symbol written."""
    code, out, _ = invoke(database_url, "backfill", "AAPL", "ZZZZ", "--years", "1")
    assert code == 3
    assert "failed ZZZZ" in out
    assert "partial" in out


def test_backfill_options_are_checked(database_url: str) -> None:
    """--start with --years, or a start after the end, is a usage error."""
    both = run_cli(
        "--database-url", database_url, "backfill", "--start", "2024-01-02", "--years", "2"
    )
    assert both.returncode == 1
    assert "--start or --years" in both.stderr
    backwards = run_cli(
        "--database-url", database_url, "backfill", "--start", "2024-02-01", "--end", "2024-01-01"
    )
    assert backwards.returncode == 1
    assert "is after --end" in backwards.stderr


def test_dates_outside_the_calendar_are_refused(database_url: str) -> None:
    """A start or end the exchange calendar does not cover is one clear line, not a crash."""
    early = run_cli("--database-url", database_url, "backfill", "--end", "0001-01-01", "--dry-run")
    assert early.returncode == 1
    assert "outside the exchange calendar" in early.stderr
    assert "Traceback" not in early.stderr
    deep = run_cli("--database-url", database_url, "backfill", "AAPL", "--years", "60", "--dry-run")
    assert deep.returncode == 0, deep.stderr


def test_a_range_with_nothing_to_fetch_is_refused(database_url: str) -> None:
    """A start after the last completed session, or a range of weekend days only, is one
    clear line and exit 1 (dry run or not), never a run that "succeeds" doing nothing."""
    for args in (
        ("--start", "2030-01-07"),
        ("--start", "2030-01-07", "--dry-run"),
        ("--start", "2024-01-06", "--end", "2024-01-07"),  # a Saturday and a Sunday
    ):
        done = run_cli("--database-url", database_url, "backfill", *args)
        assert done.returncode == 1, (args, done.stdout)
        assert "nothing to fetch" in done.stderr
        assert "Traceback" not in done.stderr
    code, out, _ = invoke(database_url, "runs", "--json")
    assert code == 0
    assert json.loads(out) == []
