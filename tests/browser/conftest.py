"""The dashboard in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright), against ``marketdata``'s own app served by uvicorn on a 127.0.0.1 socket.

The database is built once per session: simulated bars (with their planted faults: a broken
bar on MSFT, a missing session on NVDA), one stale symbol (IBM, ending 5 sessions early) and
one failed backfill run. Each test serves its own copy, so what a test adds stays its own.
Screenshots go to ``test-artifacts/`` and are listed at the end of the run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from marketdata import calendar
from marketdata.api.app import create_app
from marketdata.bars import SPLIT_SCHEMA
from marketdata.providers.simulator import MarketSimulator
from marketdata.service.quality import write_bars
from marketdata.service.simulated import SYNTHETIC, seed_if_empty
from marketdata.settings import Settings
from marketdata.storage import open_store
from marketdata.testing import serve_in_thread

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
KEY = "dash-k-0123456789abcdef"
SEEDED = ("AAPL", "MSFT", "NVDA")
STALE = "IBM"
#: Where the planted faults are (see ``marketdata.service.simulated.plant_faults``).
BAD_BAR_SYMBOL, GAP_SYMBOL = "MSFT", "NVDA"
STALE_BY = 5
#: A 2-for-1 split and a dividend planted on AAPL, this many sessions before the last one.
ACTIONS_SYMBOL, SPLIT_BACK, DIVIDEND_BACK = "AAPL", 60, 40
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 800}

_saved: list[Path] = []


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the browser tests need Chromium under CI=true: {reason}", pytrace=False)
    pytest.skip(f"Chromium not available: {reason}")  # only outside CI (see above)


async def _build(url: str, now: dt.datetime) -> None:
    store = await open_store(url)
    try:
        today = calendar.last_completed_session(now)
        await seed_if_empty(store, symbols=SEEDED, years=2, today=today, at=now)
        sessions = calendar.sessions(today - dt.timedelta(days=400), today)
        stale_end = sessions[-1 - STALE_BY].item()
        bars = MarketSimulator(seed=7).bars([STALE], today - dt.timedelta(days=365), stale_end)
        await write_bars(store, bars, source=SYNTHETIC, at=now)
        split_day, dividend_day = (sessions[-1 - n].item() for n in (SPLIT_BACK, DIVIDEND_BACK))
        await store.upsert_splits(
            pl.DataFrame(
                {
                    "symbol": [ACTIONS_SYMBOL],
                    "execution_date": [split_day],
                    "split_from": [1.0],
                    "split_to": [2.0],
                },
                schema=SPLIT_SCHEMA,
            ),
            source=SYNTHETIC,
            at=now,
        )
        await store.upsert_dividends(
            pl.DataFrame(
                {
                    "symbol": [ACTIONS_SYMBOL],
                    "ex_dividend_date": [dividend_day],
                    "cash_amount": [0.75],
                }
            ),
            source=SYNTHETIC,
            at=now,
        )
        run = await store.create_run(
            trigger="scheduled", provider="synthetic", at=now, symbols=[(STALE, None, None)]
        )
        await store.finish_run(
            run, status="failed", at=now, message="IBM: the provider did not answer"
        )
    finally:
        await store.aclose()


@pytest.fixture(scope="session")
def dashboard_db(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """The scenario's SQLite file, built once (copied by each test's server)."""
    path = tmp_path_factory.mktemp("dashboard") / "scenario.db"
    shutil.copyfile(sqlite_template, path)
    asyncio.run(_build(f"sqlite:///{path}", dt.datetime.now(dt.UTC)))
    return path


def settings_for(path: Path, **overrides: Any) -> Settings:
    """The served app's settings: no vendor key (backfills use the simulator), no scheduler."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{path}",
        "scheduler": False,
        "symbols": (*SEEDED, STALE),
        "backfill_years": 1,
        "api_keys": (KEY,),
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def site(dashboard_db: Path, tmp_path: Path) -> Iterator[str]:
    """Base URL of the app serving a fresh copy of the scenario's database."""
    path = tmp_path / "marketdata.db"
    shutil.copyfile(dashboard_db, path)
    with serve_in_thread(create_app(settings_for(path)), lifespan=True) as url:
        yield url


@pytest.fixture(scope="module")
def browser(dashboard_db: Path) -> Iterator[Any]:
    """Headless Chromium from Debian's package (never a downloaded build), one per module.

    Playwright's sync API keeps an event loop running in this thread while it is open, so
    nothing that needs ``asyncio.run`` may come after it: the database is built first, and the
    browser closes with its module (a session-wide one would break every later async test).
    """
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (scripts/test installs the chromium package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - a dev dependency
        _unavailable(str(exc))
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Console:
    """What the page said on its console: errors fail the test at the end."""

    errors: list[str]


def open_page(
    browser: Any, viewport: dict[str, int], console: Console | None = None
) -> tuple[Any, Any, Console]:
    """A page in a fresh context (no shared storage) that records console errors."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)
    page = context.new_page()
    console = console if console is not None else Console(errors=[])
    errors = console.errors
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, console


@pytest.fixture
def console() -> Console:
    """The console errors of the test's page (a test may take out the ones it caused)."""
    return Console(errors=[])


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    """A 1280×800 page; the test fails if the page logged an error (a CSP refusal, a script
    exception, a failed request) it did not expect."""
    context, opened, _ = open_page(browser, DESKTOP, console)
    try:
        yield opened
        assert console.errors == []
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as ``test-artifacts/<name>.png`` (listed at the end of the run)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    _saved.append(path)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the screenshots are."""
    if _saved:
        terminalreporter.section("dashboard screenshots")
        for path in _saved:
            terminalreporter.write_line(str(path))
