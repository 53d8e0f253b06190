"""The watchlist: which symbols the backfill keeps complete and current.

It is ``MARKETDATA_SYMBOLS`` (default: the original plan's 15 large US stocks) changed by
``marketdata symbols add/remove``, which are remembered in the ``symbols`` table:

- a configured symbol gets a row (origin ``config``) the first time it is seen, so its
  progress (how far back the vendor was asked) has a home;
- ``add`` makes a row active with origin ``user`` and its own history depth (``--years``);
- ``remove`` marks the row inactive; a configured symbol stays removed even though the
  variable still names it. Its bars stay unless purged;
- a ``config`` row whose symbol is no longer in ``MARKETDATA_SYMBOLS`` is not watched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from marketdata import calendar
from marketdata.errors import NotFound
from marketdata.storage.base import Store
from marketdata.storage.jobs import Origin, WatchEntry
from marketdata.symbols import normalize_symbols


@dataclass(frozen=True, slots=True, kw_only=True)
class Watchlist:
    """What ``MARKETDATA_SYMBOLS`` and ``MARKETDATA_BACKFILL_YEARS`` say."""

    symbols: tuple[str, ...]
    years: int = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Watched:
    """One watched symbol, with the history it should have."""

    symbol: str
    origin: Origin
    years: int
    added_at: dt.datetime
    checked_from: dt.date | None = None
    actions_checked: dt.date | None = None


def _effective(entry: WatchEntry, config: Watchlist) -> Watched:
    return Watched(
        symbol=entry.symbol,
        origin=entry.origin,
        years=entry.years or config.years,
        added_at=entry.added_at,
        checked_from=entry.checked_from,
        actions_checked=entry.actions_checked,
    )


async def watched(store: Store, config: Watchlist, *, at: dt.datetime) -> list[Watched]:
    """The watched symbols, by symbol; configured symbols seen for the first time get a row.

    Also brings the status table's watched flags in step (what ``/api/v1/status`` counts) when
    they differ, e.g. after a change to ``MARKETDATA_SYMBOLS`` or the watchlist.
    """
    rows = {e.symbol: e for e in await store.watchlist()}
    new = [
        WatchEntry(symbol=s, origin="config", added_at=at) for s in config.symbols if s not in rows
    ]
    if new:
        await store.save_watch(new)
        rows.update({e.symbol: e for e in new})
    configured = set(config.symbols)
    result = [
        _effective(e, config)
        for symbol, e in sorted(rows.items())
        if e.active and (e.origin == "user" or symbol in configured)
    ]
    names = [w.symbol for w in result]
    if await store.watched_symbols() != names:
        await store.set_watched(names, only=True, at=at)
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What ``add`` or ``remove`` did to one symbol."""

    symbol: str
    changed: bool  # False: it already was (or was not) watched
    purged_bars: int = 0


async def add(
    store: Store, symbols: Sequence[str], *, years: int | None, config: Watchlist, at: dt.datetime
) -> list[Change]:
    """Watch ``symbols`` (validated) with ``years`` of history (None: the default)."""
    names = normalize_symbols(symbols)
    current = {w.symbol: w for w in await watched(store, config, at=at)}
    rows = {e.symbol: e for e in await store.watchlist()}
    entries, changes = [], []
    for symbol in names:
        was = current.get(symbol)
        wanted_years = years if years is not None else config.years
        unchanged = was is not None and was.years == wanted_years
        changes.append(Change(symbol=symbol, changed=not unchanged))
        if unchanged:
            continue
        old = rows.get(symbol)
        entries.append(
            WatchEntry(
                symbol=symbol,
                active=True,
                origin="user",
                years=years,
                added_at=old.added_at if old is not None and was is not None else at,
            )
        )
    if entries:
        await store.save_watch(entries)
        await store.set_watched([e.symbol for e in entries], at=at)
    return changes


async def remove(
    store: Store, symbols: Sequence[str], *, purge: bool, config: Watchlist, at: dt.datetime
) -> list[Change]:
    """Stop watching ``symbols``; with ``purge`` also delete their stored data.

    A symbol that is neither watched nor stored is a :class:`NotFound` error (nothing is
    changed for any symbol then).
    """
    names = normalize_symbols(symbols)
    current = {w.symbol: w for w in await watched(store, config, at=at)}
    stored = {s.symbol for s in await store.symbol_statuses(names) if s.bar_count}
    unknown = [s for s in names if s not in current and not (purge and s in stored)]
    if unknown:
        listed = ", ".join(unknown)
        msg = f"not on the watchlist: {listed} (see `marketdata symbols list`)"
        raise NotFound(msg)
    rows = {e.symbol: e for e in await store.watchlist()}
    await store.save_watch(
        [
            WatchEntry(
                symbol=s,
                active=False,
                origin=rows[s].origin if s in rows else "user",
                years=rows[s].years if s in rows else None,
                added_at=rows[s].added_at if s in rows else at,
            )
            for s in names
            if s in current
        ]
    )
    await store.set_watched([s for s in names if s in current], watched=False, at=at)
    changes = []
    for symbol in names:
        purged = await store.purge_symbol(symbol) if purge else 0
        changes.append(Change(symbol=symbol, changed=symbol in current, purged_bars=purged))
    return changes


async def not_stored(store: Store, config: Watchlist, symbol: str, *, at: dt.datetime) -> NotFound:
    """The error for a symbol with no bars, saying whether it is on the watchlist (so the next
    backfill fetches it, or the last one failed, and why) or how to add it."""
    prefix = f"no bars stored for {symbol}: it is"
    if symbol not in {w.symbol for w in await watched(store, config, at=at)}:
        return NotFound(f"{prefix} not on the watchlist (POST /api/v1/symbols adds it)")
    error = await _last_error(store, symbol)
    hint = f"its last backfill failed: {error}" if error else "the next backfill fetches it"
    return NotFound(f"{prefix} on the watchlist; {hint}")


async def _last_error(store: Store, symbol: str) -> str | None:
    """The stored error of the last backfill of ``symbol``, a watched symbol without bars.

    Its status row is one of the watched rows with nothing stored (:meth:`Store.status_rows`
    with ``behind_before`` at the calendar's first day): there is no read of one row by name.
    """
    rows = await store.status_rows(behind_before=calendar.FIRST_DATE)
    return next((r.last_error for r in rows if r.symbol == symbol), None)
