"""``marketdata status [--watch]``: the status table, once or refreshed in place until Ctrl-C.

:func:`watch` is the loop, with the pause between views as a parameter (``wait``), so tests
drive it without sleeping: a test's ``wait`` writes new bars instead and the next view must
show them. It is a viewer: Ctrl-C ends it with exit status 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from marketdata.cli import render
from marketdata.cli._common import out, with_store

if TYPE_CHECKING:
    from marketdata.settings import Settings
    from marketdata.storage import Store
    from marketdata.storage.base import SymbolStatus

NO_BARS = "No bars stored yet. Fetch some with `marketdata backfill` or `marketdata import FILE`"

#: Produces the next view.
View = Callable[[], Awaitable[RenderableType]]
#: Waits between views (``asyncio.sleep`` unless a test says otherwise).
Wait = Callable[[float], Awaitable[None]]


async def read_status(
    store: Store, symbols: Sequence[str] | None
) -> tuple[list[SymbolStatus], dict[str, dict[str, int]]]:
    """Per-symbol summaries and, per symbol, how often each rule fired."""
    statuses = await store.symbol_statuses(symbols or None)
    counts = await store.rule_counts(symbols or None)
    rules: dict[str, dict[str, int]] = {}
    for symbol, rule, _severity, count in counts.iter_rows():
        rules.setdefault(symbol, {})[rule] = count
    return statuses, rules


async def status_view(
    store: Store, symbols: Sequence[str] | None, *, interval: float
) -> RenderableType:
    """The status table and totals as they are now, with when they were read."""
    statuses, rules = await read_status(store, symbols)
    now = dt.datetime.now(dt.UTC)  # the edge of the CLI: a display time, nothing depends on it
    footer = Text(
        f"refreshed {now:%H:%M:%S} UTC · every {interval:g} s · Ctrl-C to stop", style="dim"
    )
    found = {s.symbol for s in statuses}
    missing = [s for s in symbols or () if s not in found]
    note = Text(f"no bars stored for {', '.join(missing)}", style="yellow") if missing else None
    if not statuses:
        return Group(note or Text(NO_BARS), footer)
    table = render.status_table(statuses, rules)
    parts: list[RenderableType] = [table, render.status_totals(statuses, rules)]
    parts += [note, footer] if note else [footer]
    return Group(*parts)


async def watch(
    view: View,
    *,
    console: Console,
    interval: float,
    count: int | None = None,
    wait: Wait = asyncio.sleep,
) -> int:
    """Show ``view()``, then a new one every ``interval`` seconds; ``count`` views in all
    (endless when None). Returns how many were shown.

    On a terminal the view is redrawn in place; to a pipe or file, each view is printed.
    """
    first = await view()

    async def more(show: Callable[[RenderableType], None]) -> int:
        shown = 1
        while count is None or shown < count:
            await wait(interval)
            show(await view())
            shown += 1
        return shown

    if console.is_terminal:
        with Live(first, console=console, auto_refresh=False) as live:
            return await more(lambda current: live.update(current, refresh=True))
    console.print(first)
    return await more(console.print)


def run(
    settings: Settings,
    symbols: Sequence[str] | None,
    *,
    interval: float,
    count: int | None = None,
    wait: Wait = asyncio.sleep,
    console: Console = out,
) -> None:
    """``status --watch``: refresh until ``count`` views or Ctrl-C (which is a normal end)."""

    async def go(store: Store) -> int:
        return await watch(
            lambda: status_view(store, symbols, interval=interval),
            console=console,
            interval=interval,
            count=count,
            wait=wait,
        )

    try:
        with_store(settings, go)
    except KeyboardInterrupt:
        console.print()  # leave the prompt below the last view
