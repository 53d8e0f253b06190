"""`marketdata status --watch`: each refresh shows what was written since, Ctrl-C ends it well."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest
from rich.console import Console
from typer.testing import CliRunner

from marketdata.cli import watch as watching
from marketdata.cli.main import app
from marketdata.settings import Settings
from marketdata.storage import Store, open_store
from tests.integration.test_cli import invoke
from tests.support.factories import AT, make_bars
from tests.support.logs import loggers_restored


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    """The CLI configures logging; put it back after each test."""
    with loggers_restored():
        yield


def terminal() -> Console:
    """A console that renders like a wide terminal into memory (no colours)."""
    return Console(file=io.StringIO(), force_terminal=True, color_system=None, width=160)


async def test_each_refresh_shows_bars_written_since_the_last(store: Store) -> None:
    """The second view reads the store again: a symbol written in between appears in it."""
    await store.upsert_bars(make_bars("AAPL", days=5), source="test", at=AT)
    pauses: list[float] = []

    async def write_instead_of_sleeping(seconds: float) -> None:
        pauses.append(seconds)
        await store.upsert_bars(make_bars("MSFT", days=7), source="test", at=AT)

    console = terminal()
    shown = await watching.watch(
        lambda: watching.status_view(store, None, interval=2.5),
        console=console,
        interval=2.5,
        count=2,
        wait=write_instead_of_sleeping,
    )
    output = console.file.getvalue()  # type: ignore[attr-defined]  # the StringIO above
    assert (shown, pauses) == (2, [2.5])
    before = output.index("1 symbols · 5 bars")
    after = output.index("2 symbols · 12 bars")
    assert before < after
    assert "MSFT" not in output[:before]
    assert "MSFT" in output[before:]
    assert "every 2.5 s" in output


async def test_without_a_terminal_each_view_is_printed_in_turn(store: Store) -> None:
    """Piped to a file, every view is printed whole, one after another."""
    await store.upsert_bars(make_bars("AAPL", days=5), source="test", at=AT)

    async def write(_: float) -> None:
        await store.upsert_bars(make_bars("AAPL", days=6), source="test", at=AT)

    console = Console(file=io.StringIO(), width=160)
    await watching.watch(
        lambda: watching.status_view(store, None, interval=5),
        console=console,
        interval=5,
        count=2,
        wait=write,
    )
    output = console.file.getvalue()  # type: ignore[attr-defined]  # the StringIO above
    assert output.count("Stored bars per symbol") == 2
    assert output.index("5 bars") < output.index("6 bars")


def test_ctrl_c_ends_the_watch_normally(database_url: str) -> None:
    """Ctrl-C (KeyboardInterrupt while waiting) is the way out: no error, the store is closed."""

    async def seed() -> None:
        opened = await open_store(database_url)
        try:
            await opened.upsert_bars(make_bars("AAPL", days=3), source="test", at=AT)
        finally:
            await opened.aclose()

    asyncio.run(seed())
    waits = 0

    async def interrupt(_: float) -> None:
        nonlocal waits
        waits += 1
        raise KeyboardInterrupt

    console = Console(file=io.StringIO(), width=160)
    watching.run(
        Settings(database_url=database_url), None, interval=5, wait=interrupt, console=console
    )
    assert waits == 1
    assert "1 symbols · 3 bars" in console.file.getvalue()  # type: ignore[attr-defined]


def test_watch_option_shows_the_table_and_refuses_json(database_url: str) -> None:
    """`status --watch --count 1` prints one view and exits 0; with --json it is refused."""
    code, out, _ = invoke(database_url, "status", "--watch", "--count", "1")
    assert code == 0
    assert "No bars stored yet" in out
    assert "Ctrl-C to stop" in out
    refused = CliRunner().invoke(
        app, ["--database-url", database_url, "status", "--watch", "--json"]
    )
    assert refused.exit_code != 0
    assert "does not combine with --json" in str(refused.exception)


async def test_a_named_symbol_without_bars_is_named_in_the_view(store: Store) -> None:
    """Watching AAPL and NOPE: AAPL's row, and a line saying NOPE has no bars (not the
    empty-database hint); watching only NOPE says just that."""
    await store.upsert_bars(make_bars("AAPL", days=5), source="test", at=AT)
    console = terminal()
    console.print(await watching.status_view(store, ["AAPL", "NOPE"], interval=5))
    console.print(await watching.status_view(store, ["NOPE"], interval=5))
    output = console.file.getvalue()  # type: ignore[attr-defined]  # the StringIO above
    assert "AAPL" in output
    assert output.count("no bars stored for NOPE") == 2
    assert watching.NO_BARS not in output
