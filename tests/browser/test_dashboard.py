"""The dashboard as a person uses it, in headless Chromium: what the overview warns about, the
symbol chart against the API, admin actions, refreshing in place, phone width, keyboard use."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from playwright.sync_api import expect

from marketdata.api.app import create_app
from marketdata.errors import StorageError
from marketdata.service.backup_files import BackupConfig
from marketdata.service.backup_run import take_backup
from marketdata.storage import DatabaseUrl, open_store
from marketdata.testing import serve_in_thread
from tests.browser.conftest import (
    ACTIONS_SYMBOL,
    BAD_BAR_SYMBOL,
    GAP_SYMBOL,
    KEY,
    PHONE,
    STALE,
    STALE_BY,
    Console,
    open_page,
    screenshot,
    settings_for,
)

#: The chart's first and last candle, read from the plotly figure itself.
FIGURE_ENDS = """() => {
  const candles = document.getElementById("chart").data[0];
  const at = (i) => ({date: candles.x.at(i), open: candles.open.at(i), high: candles.high.at(i),
                      low: candles.low.at(i), close: candles.close.at(i)});
  return {count: candles.x.length, first: at(0), last: at(-1)};
}"""


def _bars(site: str, symbol: str, **params: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{site}/api/v1/historical/{symbol}", params=params, timeout=10)
    assert answer.status_code == 200
    bars: list[dict[str, Any]] = answer.json()["bars"]
    return bars


def _candle(bar: dict[str, Any]) -> dict[str, Any]:
    return {k: bar[k] for k in ("date", "open", "high", "low", "close")}


def test_overview_warns_of_simulated_data_stale_symbols_and_bad_bars(site: str, page: Any) -> None:
    """Banners for simulated data and the failed run; a stale marker (in words) on IBM's row, an
    invalid-bar marker on MSFT's, a gap marker on NVDA's, and the same in the heat map."""
    page.goto(f"{site}/dashboard")
    expect(page.locator("[data-banner=simulated]")).to_contain_text("SIMULATED DATA")
    expect(page.locator("[data-banner=backfill-failed]")).to_contain_text(
        "failed: IBM: the provider did not answer"
    )
    rows = page.locator("#symbols tbody tr")
    expect(rows).to_have_count(4)
    stale = page.locator(f"#symbols tr[data-symbol={STALE}] [data-marker=freshness]")
    expect(stale).to_have_text(f"⚠ stale · {STALE_BY} sessions behind")
    expect(stale).to_be_visible()
    fresh = page.locator("#symbols tr[data-symbol=AAPL] [data-marker=freshness]")
    expect(fresh).to_have_text("✓ fresh")
    bad = page.locator(f"#symbols tr[data-symbol={BAD_BAR_SYMBOL}] [data-marker=invalid]")
    expect(bad).to_be_visible()
    expect(bad).to_have_text("⚠ 1 invalid bar")
    expect(page.locator("#symbols [data-marker=invalid]")).to_have_count(1)
    expect(page.locator(f"#symbols tr[data-symbol={GAP_SYMBOL}] [data-marker=gaps]")).to_have_text(
        "1 missing"
    )
    expect(page.locator("#backup")).to_contain_text("No backups yet. Next backup in")
    expect(page.locator("#runs tbody tr").first).to_contain_text("failed")
    heat = page.locator("#heatmap")
    expect(heat.locator(f"tr[data-symbol={BAD_BAR_SYMBOL}] td", has_text="!")).to_have_count(1)
    expect(heat.locator(f"tr[data-symbol={GAP_SYMBOL}] td", has_text="✕")).to_have_count(1)
    stale_month = heat.locator(f"tr[data-symbol={STALE}] td").last
    expect(stale_month).to_have_attribute("aria-label", re.compile(rf"{STALE_BY} missing"))
    expect(heat.locator("tr[data-symbol=AAPL] td.q0, tr[data-symbol=AAPL] td.q1")).to_have_count(0)
    screenshot(page, "dashboard-overview-1280x800")


def test_symbol_chart_matches_the_api_for_each_adjustment(site: str, page: Any) -> None:
    """From the overview's row link to the symbol page; for each adjustment the chart's first and
    last candles are the API's bars for the same range and adjustment."""
    page.goto(f"{site}/dashboard")
    page.locator("#symbols").get_by_role("link", name=ACTIONS_SYMBOL, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/dashboard/{ACTIONS_SYMBOL}\?range=1Y"))
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-state", "ready")
    start = page.locator("#start").input_value()
    end = page.locator("#end").input_value()
    firsts = {}
    for adjusted in ("none", "all", "splits"):
        page.get_by_label("Adjustment").select_option(adjusted)
        expect(chart).to_have_attribute("data-adjusted", adjusted)
        expect(chart).to_have_attribute("data-state", "ready")
        api = _bars(site, ACTIONS_SYMBOL, start=start, end=end, adjusted=adjusted)
        figure = page.evaluate(FIGURE_ENDS)
        assert figure["count"] == len(api)
        assert figure["last"] == _candle(api[-1])
        assert figure["first"] == _candle(api[0])
        expect(chart).to_have_attribute("data-last-close", str(api[-1]["close"]))
        firsts[adjusted] = figure["first"]["close"]
        if adjusted == "all":
            screenshot(page, "dashboard-symbol-1280x800")
    # The planted 2-for-1 split and the dividend are inside the range: each adjustment differs.
    assert firsts["splits"] < firsts["none"] / 1.9
    assert firsts["all"] < firsts["splits"]
    expect(page).to_have_url(re.compile("adjusted=splits"))


def test_symbol_page_marks_flags_gaps_and_corporate_actions(site: str, page: Any) -> None:
    """The broken bar is marked on the chart and listed with its reason; a missing session is a
    shaded span; the split and dividend are marked; downloads carry the shown range."""
    page.goto(f"{site}/dashboard/{BAD_BAR_SYMBOL}")
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-state", "ready")
    item = page.locator("#flags li", has=page.locator("[data-rule=high_below_low]"))
    expect(item).to_have_count(1)
    expect(item).to_contain_text("The high is below the low.")
    bad_day = item.get_attribute("data-date")
    hard = page.evaluate(
        "() => document.getElementById('chart').data.find((t) => t.name === 'hard flag').x"
    )
    assert bad_day in hard
    item.get_by_role("button").click()  # zooms the chart to the bar
    expect(chart).to_be_focused()

    page.goto(f"{site}/dashboard/{GAP_SYMBOL}")
    expect(chart).to_have_attribute("data-state", "ready")
    expect(chart).to_have_attribute("data-gaps", "1")
    expect(page.locator("#gaps li")).to_have_count(1)
    shapes = page.evaluate("() => document.getElementById('chart').layout.shapes")
    assert [s["type"] for s in shapes] == ["rect"]

    page.goto(f"{site}/dashboard/{ACTIONS_SYMBOL}")
    expect(chart).to_have_attribute("data-state", "ready")
    expect(chart).to_have_attribute("data-dividends", "1")
    expect(page.locator("#actions li", has_text="split 2-for-1")).to_have_count(1)
    expect(page.locator("#actions li", has_text="dividend 0.75")).to_have_count(1)
    splits = page.evaluate(
        "() => document.getElementById('chart').data.find((t) => t.name === 'split').text"
    )
    assert "Split 2-for-1" in splits
    page.get_by_role("button", name="1M").click()
    expect(page.get_by_role("button", name="1M")).to_have_attribute("aria-pressed", "true")
    expect(chart).to_have_attribute("data-state", "ready")
    shown = int(chart.get_attribute("data-bars") or 0)
    assert 15 <= shown <= 23
    csv = page.locator("#download-csv").get_attribute("href")
    parquet = page.locator("#download-parquet").get_attribute("href")
    assert csv is not None
    assert parquet == csv.replace("format=csv", "format=parquet")
    body = httpx.get(f"{site}{csv}", timeout=10)
    assert body.headers["content-type"].startswith("text/csv")
    assert len(body.text.strip().splitlines()) == shown + 1  # a header, then the shown bars
    assert "adjusted=splits" in csv


def test_admin_actions_need_a_key_kept_in_memory_only(
    site: str, page: Any, console: Console
) -> None:
    """A wrong key is refused; with the right one, adding a symbol shows its row at once and its
    backfill's progress to the end; removing it with its bars drops the row. The key is never
    stored in the browser."""
    page.goto(f"{site}/dashboard")
    expect(page.locator("#symbols tbody tr")).to_have_count(4)
    expect(page.locator("#admin-actions")).to_be_hidden()
    key = page.get_by_label("API key")
    key.fill("not-the-key")
    page.get_by_role("button", name="Use key").click()
    page.get_by_label("Symbol to add").fill("tsla")
    page.get_by_role("button", name="Add symbol").click()
    expect(page.locator("#admin-message")).to_contain_text("Refused")
    assert [e for e in console.errors if "401" in e] == console.errors != []
    console.errors.clear()

    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#admin-actions")).to_be_hidden()
    key.fill(KEY)
    key.press("Enter")
    expect(key).to_have_value("")
    page.get_by_label("Symbol to add").fill("tsla")
    page.get_by_role("button", name="Add symbol").click()
    expect(page.locator("#symbols tr[data-symbol=TSLA]")).to_be_visible()
    progress = page.locator("#progress")
    expect(progress).to_have_attribute("data-status", "succeeded")
    expect(progress).to_contain_text("succeeded: 1 of 1 symbols")
    expect(page.locator("#symbols tr[data-symbol=TSLA] [data-marker=freshness]")).to_have_text(
        "✓ fresh"
    )
    stored = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, ""]
    assert KEY not in page.content()

    screenshot(page, "dashboard-admin-1280x800")
    page.get_by_label("Symbol to remove").fill("TSLA")
    page.get_by_label("also delete its bars").check()
    page.get_by_role("button", name="Remove symbol").click()
    expect(page.locator("#admin-message")).to_contain_text("Stopped watching TSLA")
    expect(page.locator("#symbols tr[data-symbol=TSLA]")).to_have_count(0)


def test_overview_refreshes_in_place(site: str, page: Any) -> None:
    """With ?refresh=1 a symbol added elsewhere appears without reloading the page."""
    page.goto(f"{site}/dashboard?refresh=1")
    expect(page.locator("#updated")).to_contain_text("refreshes every 1 s")
    page.evaluate("() => { window.notReloaded = true; }")
    added = httpx.post(
        f"{site}/api/v1/symbols", json={"symbol": "META"}, headers={"X-API-Key": KEY}, timeout=10
    )
    assert added.status_code == 202
    expect(page.locator("#symbols tr[data-symbol=META]")).to_be_visible()
    assert page.evaluate("() => window.notReloaded") is True


def _record_backup(path: Path, directory: Path, at: dt.datetime) -> bool:
    """Back up the served SQLite file into ``directory`` as ``marketdata backup`` does (the
    attempt is recorded in the database, where /health reads it); whether it was written."""

    async def attempt() -> bool:
        store = await open_store(f"sqlite:///{path}")
        try:
            db, config = DatabaseUrl.parse(f"sqlite:///{path}"), BackupConfig(directory=directory)
            return (await take_backup(db, config, at=at, store=store)).ok
        except StorageError:
            return False
        finally:
            await store.aclose()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's loop
        return pool.submit(asyncio.run, attempt()).result()


def test_backup_shows_its_age_and_result(site: str, page: Any, tmp_path: Path) -> None:
    """A real verified backup, then a failed attempt: the overview shows each one's age and
    result in words, and after the failure when the last good one was taken."""
    served = tmp_path / "marketdata.db"  # the database the site serves (see conftest)
    three_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    assert _record_backup(served, tmp_path / "backups", three_hours_ago)
    page.goto(f"{site}/dashboard")
    backup = page.locator("#backup")
    expect(backup).to_contain_text("Last backup 3 h ago")
    expect(backup.locator("[data-marker=backup]")).to_have_text("verified")
    expect(backup).to_contain_text("marketdata-")
    expect(backup).to_contain_text("Next backup")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    assert not _record_backup(served, blocker, three_hours_ago + dt.timedelta(hours=1))
    page.goto(f"{site}/dashboard")
    expect(backup.locator("[data-marker=backup]")).to_have_text("failed")
    expect(backup).to_contain_text("backup directory")
    expect(backup).to_contain_text("Last good backup 3 h ago")


def test_status_is_read_across_pages(site: str, page: Any) -> None:
    """The dashboard's status read follows ``next_cursor`` until every symbol is in."""
    page.goto(f"{site}/dashboard")
    symbols = page.evaluate(
        """async () => {
          const { fetchStatus } = await import("/dashboard/static/common.js");
          const status = await fetchStatus(1);
          return status.per_symbol.map((row) => row.symbol);
        }"""
    )
    assert symbols == ["AAPL", STALE, BAD_BAR_SYMBOL, GAP_SYMBOL]


def test_phone_width_scrolls_tables_not_the_page(site: str, browser: Any) -> None:
    """At 375 pixels the page itself does not scroll sideways: the wide tables scroll in their
    own regions, and the chart fits the screen."""
    context, phone, console = open_page(browser, PHONE)
    try:
        phone.goto(f"{site}/dashboard")
        expect(phone.locator("#heatmap tbody tr")).to_have_count(4)
        widths = phone.evaluate(
            """() => {
              const table = document.querySelector("#symbols").parentElement;
              return {page: document.documentElement.scrollWidth,
                      inner: table.scrollWidth, outer: table.clientWidth};
            }"""
        )
        assert widths["page"] <= PHONE["width"]
        assert widths["inner"] > widths["outer"]
        screenshot(phone, "dashboard-overview-375")
        phone.goto(f"{site}/dashboard/{BAD_BAR_SYMBOL}")
        chart = phone.locator("#chart")
        expect(chart).to_have_attribute("data-state", "ready")
        box = chart.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"]
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(phone, "dashboard-symbol-375")
        assert console.errors == []
    finally:
        context.close()


def test_pages_are_keyboard_operable_and_labelled(site: str, page: Any) -> None:
    """Landmarks, a label for every control, a skip link first in tab order, live regions for
    banners and progress, and range buttons that work from the keyboard."""
    for path in ("/dashboard", f"/dashboard/{ACTIONS_SYMBOL}"):
        page.goto(f"{site}{path}")
        for role in ("banner", "navigation", "main", "contentinfo"):
            expect(page.get_by_role(role).first).to_be_attached()
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll("input, select")]
                .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                               && !e.getAttribute("aria-labelledby"))
                .map((e) => e.id || e.outerHTML)"""
        )
        assert unlabelled == []
        expect(page.locator("#banner")).to_have_attribute("aria-live", "polite")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    expect(page.locator("#chart")).to_have_attribute("data-state", "ready")
    six = page.get_by_role("button", name="6M")
    six.focus()
    page.keyboard.press("Enter")
    expect(six).to_have_attribute("aria-pressed", "true")
    expect(page).to_have_url(re.compile("range=6M"))
    page.goto(f"{site}/dashboard")
    expect(page.locator("#progress")).to_have_attribute("aria-live", "polite")


def test_downloads_carry_the_key_and_the_whole_range(
    dashboard_db: Path, tmp_path: Path, page: Any, console: Console
) -> None:
    """On a server that wants a key for reads and answers at most 100 bars at a time, the
    symbol page asks for the key; the CSV download then holds every shown bar (fetched page by
    page with the key), and the Parquet download is a real file fetched with the key."""
    path = tmp_path / "marketdata.db"
    shutil.copyfile(dashboard_db, path)
    settings = settings_for(path, require_key_for_reads=True, api_max_rows=100)
    with serve_in_thread(create_app(settings), lifespan=True) as site:
        page.goto(f"{site}/dashboard/{ACTIONS_SYMBOL}?range=all")
        page.get_by_label("API key (this server requires one for reads)").fill(KEY)
        page.keyboard.press("Enter")
        chart = page.locator("#chart")
        expect(chart).to_have_attribute("data-state", "ready")
        shown = int(chart.get_attribute("data-bars") or 0)
        assert shown > 300  # several answers' worth
        with page.expect_download() as csv_download:
            page.locator("#download-csv").click()
        text = Path(csv_download.value.path()).read_text()
        lines = text.strip().splitlines()
        assert len(lines) == shown + 1
        assert lines[0].startswith("date,")
        assert not any(line.startswith("date,") for line in lines[1:])
        dates = [line.split(",", 1)[0] for line in lines[1:]]
        assert dates == sorted(set(dates))  # every bar once, in order
        assert csv_download.value.suggested_filename.endswith(".csv")
        with page.expect_download() as parquet_download:
            page.locator("#download-parquet").click()
        frame = pl.read_parquet(parquet_download.value.path())
        assert frame.height == 100  # one answer: Parquet files are not concatenated
        assert str(frame["date"][0]) == dates[0]
        refused = httpx.get(f"{site}{page.locator('#download-csv').get_attribute('href')}")
        assert refused.status_code == 401  # the plain link alone would not have worked
    # The page's first reads, before the key was entered, were refused (that is what made it
    # ask for the key); nothing else may have failed.
    assert console.errors
    assert all("status of 401" in e for e in console.errors)
    console.errors.clear()


def _add_copies(path: Path, source: str, count: int) -> list[str]:
    """``count`` more symbols holding ``source``'s bars and status (plain SQL, no event loop:
    the browser's is running)."""
    names = [f"Z{i:03d}" for i in range(count)]
    with sqlite3.connect(path) as db:
        bar_columns = [r[1] for r in db.execute("PRAGMA table_info(bars)") if r[1] != "symbol"]
        status_columns = [
            r[1] for r in db.execute("PRAGMA table_info(symbol_status)") if r[1] != "symbol"
        ]
        for name in names:
            for table, columns in (("bars", bar_columns), ("symbol_status", status_columns)):
                listed = ", ".join(columns)  # names from PRAGMA, not input
                copy = f"INSERT INTO {table} (symbol, {listed}) SELECT ?, {listed} FROM {table}"
                db.execute(f"{copy} WHERE symbol = ?", (name, source))
    return names


def test_heat_map_says_when_it_shows_only_some_symbols(
    dashboard_db: Path, tmp_path: Path, page: Any
) -> None:
    """Past 100 stored symbols the heat map draws the first 100 by name and says so."""
    path = tmp_path / "many.db"
    shutil.copyfile(dashboard_db, path)
    _add_copies(path, "AAPL", 100)  # 104 stored in all
    with serve_in_thread(create_app(settings_for(path)), lifespan=True) as url:
        page.goto(f"{url}/dashboard")
        note = page.locator("#heatmap-note")
        expect(note).to_be_visible()
        expect(note).to_have_text(re.compile(r"Showing 100 of 104 symbols"))
        expect(page.locator("#heatmap tbody tr")).to_have_count(100)
        assert page.locator("#heatmap tbody tr").first.get_attribute("data-symbol") == "AAPL"


def test_heat_map_has_no_note_when_it_shows_every_symbol(site: str, page: Any) -> None:
    page.goto(f"{site}/dashboard")
    expect(page.locator("#heatmap tbody tr")).to_have_count(4)
    expect(page.locator("#heatmap-note")).to_be_hidden()
