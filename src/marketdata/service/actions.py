"""Corporate actions: load splits and dividends (from a provider or a file), then re-score.

A split or dividend explains a price jump on its date, so the bars of every symbol whose
actions changed are re-validated at once; adjusted reads need nothing: they are computed from
the stored actions on every read (:mod:`marketdata.service.history`).

Backfills fetch the actions of the days they fetch bars for, from the same provider
(:func:`plan_actions`); what each provider was already asked about is remembered per symbol
(:func:`read_checked`), so only new days cost a call.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from marketdata.bars import DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.errors import InputError
from marketdata.providers.base import Provider
from marketdata.service.plan import SymbolPlan
from marketdata.service.quality import revalidate
from marketdata.service.simulated import SYNTHETIC
from marketdata.storage.base import Store, SymbolStatus, prepare_dividends, prepare_splits


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionsReport:
    """What loading corporate actions did."""

    splits: int  # rows given
    dividends: int
    splits_changed: int  # rows new or changed in the store
    dividends_changed: int
    rescored: tuple[str, ...]  # symbols whose bars were re-validated


async def store_actions(
    store: Store,
    *,
    splits: pl.DataFrame | None = None,
    dividends: pl.DataFrame | None = None,
    source: str,
    at: dt.datetime,
) -> ActionsReport:
    """Store ``splits`` and ``dividends``; re-score the stored bars of symbols they changed."""
    splits = splits if splits is not None else pl.DataFrame(schema=SPLIT_SCHEMA)
    dividends = dividends if dividends is not None else pl.DataFrame(schema=DIVIDEND_SCHEMA)
    named = sorted(set(splits["symbol"].to_list()) | set(dividends["symbol"].to_list()))
    # Which symbols' actions really change: only their bars need scoring again.
    touched_symbols = _changed_symbols(
        prepare_splits(splits, source=source), await store.read_splits(named), SPLIT_SCHEMA
    ) | _changed_symbols(
        prepare_dividends(dividends, source=source),
        await store.read_dividends(named),
        DIVIDEND_SCHEMA,
    )
    split_changes = await store.upsert_splits(splits, source=source, at=at)
    dividend_changes = await store.upsert_dividends(dividends, source=source, at=at)
    touched: list[str] = []
    if touched_symbols:
        statuses = await store.symbol_statuses(sorted(touched_symbols))
        stored = [s.symbol for s in statuses if s.bar_count]
        touched = [q.symbol for q in await revalidate(store, stored, at=at)]
    return ActionsReport(
        splits=splits.height,
        dividends=dividends.height,
        splits_changed=split_changes,
        dividends_changed=dividend_changes,
        rescored=tuple(touched),
    )


def _changed_symbols(
    given: pl.DataFrame, stored: pl.DataFrame, schema: dict[str, pl.DataType]
) -> set[str]:
    """Symbols with a row in ``given`` that ``stored`` lacks or holds with other values."""
    columns = list(schema)
    fresh = given.select(columns).join(
        stored.select(columns), on=columns, how="anti", nulls_equal=True
    )
    return set(fresh["symbol"].to_list())


async def fetch_actions(
    store: Store,
    provider: Provider,
    symbols: Sequence[str],
    *,
    at: dt.datetime,
    since: dt.date | None = None,
) -> ActionsReport:
    """Fetch ``symbols``' splits and dividends from ``provider`` and store them."""
    return await store_actions(
        store,
        splits=await provider.splits(symbols, since=since),
        dividends=await provider.dividends(symbols, since=since),
        source=provider.name,
        at=at,
    )


#: Service-state key: per symbol, the days whose actions ``provider`` was asked for.
CHECKED_KEY = "actions_checked:{provider}"
#: Actions are asked for again from this many days before the last check, to catch late
#: reports, whenever a backfill goes past that check.
RECHECK = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """The days from ``first`` to ``last`` (inclusive)."""

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.first > self.last:
            msg = f"span starts {self.first}, after its end {self.last}"
            raise ValueError(msg)

    def union(self, other: Span | None) -> Span:
        """The smallest span holding both (``self`` when ``other`` is None)."""
        if other is None:
            return self
        return Span(first=min(self.first, other.first), last=max(self.last, other.last))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionsPlan:
    """The actions requests of a backfill, and what they are for."""

    requests: dict[dt.date, tuple[str, ...]]  # first day asked → symbols
    wanted: dict[str, Span]  # the days each symbol's actions must cover
    known: dict[str, Span]  # what the provider was already asked about, still true
    later: frozenset[str]  # simulated now, real after the bars: plan again then

    def checked(self, since: dt.date, symbols: Sequence[str], through: dt.date) -> dict[str, Span]:
        """What ``symbols`` have checked once asked from ``since`` (the answer runs to the
        present, so at least ``through`` and the days wanted)."""
        last = max([through, *(self.wanted[s].last for s in symbols)])
        return {s: Span(first=since, last=last).union(self.known.get(s)) for s in symbols}


def plan_actions(
    symbols: Sequence[SymbolPlan],
    stored: Sequence[SymbolStatus],
    checked: Mapping[str, Span],
    *,
    provider: str,
) -> ActionsPlan:
    """The actions requests that give every symbol with work the splits and dividends of the
    days it gets bars for and of those it holds, from ``provider``.

    ``checked`` holds what ``provider`` was already asked about; it is trusted while the
    symbol's latest bars are that provider's (a purge deletes a symbol's actions with its
    bars). Symbols needing days before what is checked (or with nothing checked) share one
    request, from the earliest such day; those wanting only days after it are asked again from
    :data:`RECHECK` before its end; those wanting nothing new are left out. Symbols holding
    simulated bars that real ones replace are left for ``later``: their purge takes the actions.
    """
    busy = {
        s.symbol: Span(first=s.start, last=s.end)
        for s in symbols
        if s.start and s.end and (s.range_calls or s.grouped_sessions)
    }
    wanted: dict[str, Span] = dict(busy)
    known: dict[str, Span] = {}
    later: set[str] = set()
    for status in stored:
        symbol, span = status.symbol, busy.get(status.symbol)
        if span is None or status.first_date is None or status.last_date is None:
            continue  # nothing stored: the days of the plan
        if status.source == SYNTHETIC != provider:
            later.add(symbol)
            del wanted[symbol]
            continue
        wanted[symbol] = span.union(Span(first=status.first_date, last=status.last_date))
        if status.source == provider and symbol in checked:
            known[symbol] = checked[symbol]
    older: dict[str, dt.date] = {}
    groups: dict[dt.date, list[str]] = {}
    for symbol, span in sorted(wanted.items()):
        done = known.get(symbol)
        if done is None or span.first < done.first:
            older[symbol] = span.first
        elif span.last > done.last:
            groups.setdefault(done.last - RECHECK, []).append(symbol)
    if older:
        groups.setdefault(min(older.values()), []).extend(older)
    return ActionsPlan(
        requests={since: tuple(sorted(names)) for since, names in sorted(groups.items())},
        wanted=wanted,
        known=known,
        later=frozenset(later),
    )


async def read_checked(store: Store, provider: str) -> dict[str, Span]:
    """Per symbol, the days whose actions ``provider`` was asked for (by backfills)."""
    value = await store.get_state(CHECKED_KEY.format(provider=provider))
    spans = json.loads(value) if value else {}
    return {
        symbol: Span(first=dt.date.fromisoformat(first), last=dt.date.fromisoformat(last))
        for symbol, (first, last) in spans.items()
    }


async def save_checked(
    store: Store, provider: str, spans: Mapping[str, Span], *, at: dt.datetime
) -> None:
    """Record ``spans`` (replacing those of the same symbols) as asked of ``provider``."""
    if not spans:
        return
    merged = {**await read_checked(store, provider), **spans}
    value = {s: [span.first.isoformat(), span.last.isoformat()] for s, span in merged.items()}
    await store.set_state(
        CHECKED_KEY.format(provider=provider), json.dumps(value, sort_keys=True), at=at
    )


_ALIASES = {"ticker": "symbol"}
_SPLIT_KEYS = {"symbol", "execution_date", "split_from", "split_to"}
_DIVIDEND_KEYS = {"symbol", "ex_dividend_date", "cash_amount"}


def parse_actions(frame: pl.DataFrame, *, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(splits, dividends) from a table holding either kind; a clear error for anything else.

    Column names are matched case-insensitively (``ticker`` is accepted for ``symbol``);
    dates are ISO ``YYYY-MM-DD``; extra columns are ignored.
    """
    renamed = frame.rename(
        {c: _ALIASES.get(c.strip().lower(), c.strip().lower()) for c in frame.columns}
    )
    columns = set(renamed.columns)
    if columns >= _SPLIT_KEYS:
        kind, schema = "split", SPLIT_SCHEMA
    elif columns >= _DIVIDEND_KEYS:
        kind, schema = "dividend", DIVIDEND_SCHEMA
    else:
        msg = (
            f"{name}: expected split columns ({', '.join(sorted(_SPLIT_KEYS))}) or dividend "
            f"columns ({', '.join(sorted(_DIVIDEND_KEYS))}[, declaration_date, record_date, "
            f"pay_date, frequency, dividend_type]); got {', '.join(renamed.columns) or 'none'}"
        )
        raise InputError(msg)
    exprs = []
    for column, dtype in schema.items():
        if column not in columns:
            exprs.append(pl.lit(None, dtype).alias(column))
        elif dtype == pl.Date() and renamed.schema[column] != pl.Date():
            exprs.append(pl.col(column).cast(pl.String).str.to_date("%Y-%m-%d", strict=False))
        else:
            exprs.append(pl.col(column).cast(dtype, strict=False))
    typed = renamed.select(exprs)
    required = _SPLIT_KEYS if kind == "split" else _DIVIDEND_KEYS
    bad = typed.with_row_index("_row").filter(
        pl.any_horizontal(pl.col(c).is_null() for c in required)
    )
    if bad.height:
        row = int(bad["_row"][0]) + 1
        msg = (
            f"{name}: {bad.height} {kind} row(s) with a missing or unparsable value "
            f"(first: data row {row})"
        )
        raise InputError(msg)
    if kind == "split":
        positive = (pl.col("split_from") > 0) & (pl.col("split_to") > 0)
        if not typed.select(positive.all()).item():
            raise InputError(f"{name}: split_from and split_to must be positive numbers")
        return typed, pl.DataFrame(schema=DIVIDEND_SCHEMA)
    if not typed.select((pl.col("cash_amount") >= 0).all()).item():
        raise InputError(f"{name}: cash_amount must not be negative")
    return pl.DataFrame(schema=SPLIT_SCHEMA), typed


def read_actions_file(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(splits, dividends) from a CSV, Parquet or Polygon JSON response file."""
    name = str(path)
    if not path.is_file():
        raise InputError(f"{name}: no such file")
    try:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif suffix == ".json":
            data = json.loads(path.read_bytes())
            rows = data.get("results") if isinstance(data, dict) else data
            if not isinstance(rows, list):
                raise InputError(f"{name}: expected a JSON list or a response with 'results'")
            frame = pl.DataFrame(rows, infer_schema_length=None)
        else:
            frame = pl.read_csv(path, infer_schema=False)
    except InputError:
        raise
    except Exception as exc:  # polars/orjson raise many kinds; the message is what matters
        raise InputError(f"{name}: cannot read: {str(exc).splitlines()[0]}") from None
    return parse_actions(frame, name=name)
