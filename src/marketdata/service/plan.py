"""The backfill planner: which vendor calls bring every symbol up to date, fewest first.

Polygon answers two kinds of daily-bar request. A *range* request returns up to 50,000 bars of
one symbol between two dates, so one call fills any set of sessions of that symbol within such
a span; a *grouped* request returns every ticker's bar for one session. Five years of history
for three symbols is three range calls but 1,260 grouped ones; yesterday's bar for 500 symbols
is one grouped call but 500 range ones. Real watchlists mix both shapes, so the planner works
out each symbol's needed sessions and picks the set of grouped sessions that minimises the
total (:func:`make_plan`). It is pure: states in, a :class:`Plan` value out, for a runner to
carry out and a dry run to show.

Sessions are handled as positions in the XNYS session list, with every (symbol, session) pair
in flat numpy arrays, so planning thousands of symbols over years takes milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from marketdata import calendar
from marketdata.validation import GapRange

__all__ = [
    "GroupedRequest",
    "Plan",
    "PlanTotals",
    "RangeRequest",
    "Strategy",
    "SymbolPlan",
    "SymbolState",
    "make_plan",
    "sessions_between",
]

Strategy = Literal["auto", "range", "grouped"]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_EPOCH = dt.date(1970, 1, 1).toordinal()  # dates travel as days since 1970-01-01
_NEVER = 10**9  # a day number after every session: "not asked yet"


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolState:
    """What is stored for one symbol and which dates are wanted."""

    symbol: str
    start: dt.date  # first date wanted (inclusive; need not be a session)
    end: dt.date  # last date wanted (inclusive): the last completed session
    first_date: dt.date | None = None  # first stored bar (None: nothing stored)
    last_date: dt.date | None = None  # last stored bar
    gaps: tuple[GapRange, ...] = ()  # missing sessions between first_date and last_date
    # The vendor was already asked back to this date: sessions before first_date and on or
    # after checked_from have no data (listing date, plan window).
    checked_from: dt.date | None = None

    def __post_init__(self) -> None:
        first, last = self.first_date, self.last_date
        if (first is None) != (last is None) or (first and last and first > last):
            msg = f"{self.symbol}: invalid stored range {first} to {last}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeRequest:
    """One per-ticker call: ``symbol``'s bars from ``start`` to ``end`` (sessions, inclusive)."""

    symbol: str
    start: dt.date
    end: dt.date
    sessions: int  # needed sessions this call fills


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupedRequest:
    """One grouped-daily call: every ticker's bar of ``session``, kept for ``symbols``."""

    session: dt.date
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolPlan:
    """One symbol's share of a plan."""

    symbol: str
    missing: int  # needed sessions not stored (head, tail and gaps)
    refresh: int  # stored sessions fetched again to catch vendor corrections
    start: dt.date | None  # first needed session (None: nothing needed)
    end: dt.date | None  # last needed session
    range_calls: int
    grouped_sessions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanTotals:
    """Counts only the planner can know: distinct sessions, and what pure strategies cost."""

    sessions: int
    range_only_calls: int
    grouped_only_calls: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The calls to make. ``strategy`` names the mix: range, grouped, mixed or none."""

    end: dt.date | None  # the latest date wanted by any symbol
    ranges: tuple[RangeRequest, ...]  # by symbol, then start
    grouped: tuple[GroupedRequest, ...]  # by session
    symbols: tuple[SymbolPlan, ...]  # in the order of the states
    strategy: str
    totals: PlanTotals | None = None  # set by make_plan; derived from the requests otherwise
    _index: dict[str, SymbolPlan] = field(init=False, repr=False, compare=False)
    _totals: PlanTotals = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {s.symbol: s for s in self.symbols})
        totals = self.totals
        if totals is None:  # a hand-built plan: exact unless its ranges skip sessions
            spans = (calendar.sessions(r.start, r.end).tolist() for r in self.ranges)
            days = len({g.session for g in self.grouped}.union(*spans))
            busy = sum(s.start is not None for s in self.symbols)
            totals = PlanTotals(sessions=days, range_only_calls=busy, grouped_only_calls=days)
        object.__setattr__(self, "_totals", totals)

    @property
    def calls(self) -> int:
        """Vendor calls the plan makes."""
        return len(self.ranges) + len(self.grouped)

    @property
    def missing(self) -> int:
        """Needed sessions not stored, over every symbol."""
        return sum(s.missing for s in self.symbols)

    @property
    def refresh(self) -> int:
        """Stored sessions fetched again, over every symbol."""
        return sum(s.refresh for s in self.symbols)

    @property
    def sessions(self) -> int:
        """Distinct sessions some symbol needs."""
        return self._totals.sessions

    @property
    def is_empty(self) -> bool:
        """Whether there is nothing to fetch."""
        return not self.ranges and not self.grouped

    @property
    def range_only_calls(self) -> int:
        """What per-ticker range requests alone would cost."""
        return self._totals.range_only_calls

    @property
    def grouped_only_calls(self) -> int:
        """What grouped requests alone would cost: one per distinct session."""
        return self._totals.grouped_only_calls

    def duration(self, calls_per_minute: float) -> float:
        """Seconds the calls take when request starts are spaced 60/cpm apart (0: unlimited)."""
        if calls_per_minute < 0:
            msg = f"calls_per_minute must not be negative, got {calls_per_minute}"
            raise ValueError(msg)
        if calls_per_minute == 0 or self.calls <= 1:
            return 0.0
        return (self.calls - 1) * 60.0 / calls_per_minute

    def for_symbol(self, symbol: str) -> SymbolPlan:
        """``symbol``'s share; ``KeyError`` when it was not planned."""
        return self._index[symbol]


def sessions_between(start: dt.date, end: dt.date) -> int:
    """How many XNYS sessions fall in [start, end] (0 when start > end or outside the calendar)."""
    lo, hi = max(start, calendar.FIRST_DATE), min(end, calendar.LAST_DATE)
    return int(calendar.sessions(lo, hi).size) if lo <= hi else 0


def make_plan(
    states: Sequence[SymbolState],
    *,
    overlap: int = 2,
    max_bars: int = 50_000,
    strategy: Strategy = "auto",
) -> Plan:
    """The requests that fetch every symbol's needed sessions with the fewest calls.

    A symbol needs the sessions in [start, end] it lacks: all of them when nothing is stored,
    else the sessions after ``last_date``, its ``gaps``, and the sessions before
    ``first_date`` unless the vendor was already asked back to ``checked_from``. When there
    are new sessions, the last ``overlap`` stored ones are fetched again as well. ``strategy``
    ``"range"`` uses per-ticker calls only, ``"grouped"`` grouped calls only, and ``"auto"``
    the cheaper of those two and a greedy mix (ties go to fewer grouped calls).
    """
    if overlap < 0 or max_bars < 1 or strategy not in ("auto", "range", "grouped"):
        msg = f"invalid overlap={overlap}, max_bars={max_bars} or strategy={strategy!r}"
        raise ValueError(msg)
    if len({s.symbol for s in states}) != len(states):
        msg = "each symbol may be planned only once"
        raise ValueError(msg)
    needs = _needs(states, overlap)
    chunks = _chunk_counts(needs, max_bars)
    union = np.zeros(needs.days.size, dtype=bool)
    union[needs.sess] = True
    range_cost, grouped_cost = int(chunks.sum()), int(union.sum())
    in_s = np.zeros(needs.days.size, dtype=bool)  # S: the sessions fetched grouped
    if strategy == "grouped":
        in_s = union
    elif strategy == "auto":
        mix = _greedy(needs, chunks)
        rest = _chunk_counts(needs, max_bars, keep=~mix[needs.sess]) if mix.any() else chunks
        mixes = [(range_cost, 0, in_s), (int(mix.sum() + rest.sum()), int(mix.sum()), mix)]
        mixes.append((grouped_cost, grouped_cost, union))
        in_s = min(mixes, key=lambda m: m[:2])[2]  # ties: fewer grouped calls
    totals = PlanTotals(
        sessions=grouped_cost, range_only_calls=range_cost, grouped_only_calls=grouped_cost
    )
    return _assemble(states, needs, in_s, max_bars, totals)


class _Needs(NamedTuple):
    """Every needed (symbol, session) pair, sorted by symbol then session."""

    days: Ints  # the sessions of the planning window, as days since 1970-01-01
    sym: Ints  # each pair's symbol: its position in the states
    sess: Ints  # each pair's session: its position in ``days``
    missing: Bools  # False for an overlap refresh of a stored session
    bounds: Ints  # symbol i's pairs are [bounds[i], bounds[i + 1])


def _needs(states: Sequence[SymbolState], overlap: int) -> _Needs:
    """Each symbol's needed sessions: intervals of session positions, expanded to pairs."""
    n, first, last = len(states), calendar.FIRST_DATE, calendar.LAST_DATE
    lo = max(min((s.start for s in states), default=last), first)
    hi = min(max((s.end for s in states), default=first), last)
    sessions = calendar.sessions(lo, hi) if lo <= hi else np.empty(0, "datetime64[D]")
    days: Ints = sessions.astype(np.int64)
    stored = np.array([s.first_date is not None for s in states], dtype=bool)
    dates = [(s.start, s.first_date or s.start, s.checked_from, s.end, s.last_date) for s in states]
    cols = np.array([[_day(d) if d else _NEVER for d in row] for row in dates], np.int64)
    cols = cols.reshape(-1, 5).T
    # Positions: s0 is the first session >= start, e1 one past the last session <= end, ...
    s0, f0, c0 = np.searchsorted(days, cols[:3], "left").astype(np.int64)
    e1, l1 = np.searchsorted(days, cols[3:], "right").astype(np.int64)
    head = np.where(stored, np.maximum(l1, s0), s0)  # everything when nothing is stored
    tail_end = np.where(stored, np.minimum(np.minimum(f0, c0), e1), s0)
    refresh = np.maximum(np.maximum(l1 - overlap, s0), f0)
    refresh_end = np.where(stored & (head < e1), l1, refresh)  # only with new sessions
    gaps = [(i, _day(g.start), _day(g.end)) for i, s in enumerate(states) for g in s.gaps]
    own, gap_a, gap_b = np.array(gaps, np.int64).reshape(-1, 3).T
    ga = np.maximum(np.searchsorted(days, gap_a, "left"), s0[own])
    gb = np.minimum(np.searchsorted(days, gap_b, "right"), e1[own])
    a = np.concatenate((head, s0, refresh, ga))
    b = np.concatenate((e1, tail_end, refresh_end, gb))
    who = np.concatenate((np.tile(np.arange(n, dtype=np.int64), 3), own))
    kind = np.repeat(np.array([0, 0, 1, 0], np.int64), [n, n, n, own.size])  # 1: refresh
    keep = np.flatnonzero(b > a)
    keep = keep[np.lexsort((a[keep], who[keep]))]
    a, b, who, kind = a[keep], b[keep], who[keep], kind[keep]
    sym, sess, kind = np.repeat(who, b - a), _expand(a, b), np.repeat(kind, b - a)
    if np.any((who[1:] == who[:-1]) & (a[1:] < b[:-1])):  # overlapping intervals (rare)
        # One key per pair; a missing pair sorts before a refresh of the same session and wins.
        key = np.sort((sym * max(days.size, 1) + sess) * 2 + kind)
        pair, at_first = np.unique(key >> 1, return_index=True)
        sym, sess, kind = pair // max(days.size, 1), pair % max(days.size, 1), key[at_first] & 1
    bounds = np.searchsorted(sym, np.arange(n + 1)).astype(np.int64)
    return _Needs(days, sym, sess, kind == 0, bounds)


def _expand(a: Ints, b: Ints) -> Ints:
    """The concatenation of ``range(a[k], b[k])`` for every k (each ``b[k] >= a[k]``)."""
    lengths = b - a
    offsets: Ints = np.repeat(np.cumsum(lengths) - lengths - a, lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) - offsets


def _chunks(sess: Ints, max_bars: int) -> list[tuple[int, int]]:
    """Split sorted sessions into runs ``sess[p:q]``, each spanning at most ``max_bars``."""
    out, p = [], 0
    while p < sess.size:
        out.append((p, int(np.searchsorted(sess, sess[p] + max_bars, "left"))))
        p = out[-1][1]
    return out


def _chunk_counts(needs: _Needs, max_bars: int, *, keep: Bools | None = None) -> Ints:
    """Range requests each symbol needs for its pairs (only those in ``keep``, when given)."""
    sym, sess = (needs.sym, needs.sess) if keep is None else (needs.sym[keep], needs.sess[keep])
    bounds = np.searchsorted(sym, np.arange(needs.bounds.size))
    counts = (bounds[1:] > bounds[:-1]).astype(np.int64)
    if sess.size:
        span = sess[np.maximum(bounds[1:] - 1, 0)] - sess[np.minimum(bounds[:-1], sess.size - 1)]
        for i in np.flatnonzero(counts.astype(bool) & (span >= max_bars)).tolist():
            counts[i] = len(_chunks(sess[bounds[i] : bounds[i + 1]], max_bars))
    return counts


def _greedy(needs: _Needs, chunks: Ints) -> Bools:
    """The cheapest S among the unions of the smallest needs, grown smallest first.

    Candidate j is the union of the needed sessions of the j symbols that need fewest; it
    costs its size plus the range calls of every symbol it does not cover whole. Sessions
    join S once and each pair is counted once, so the work is linear in the pairs.
    """
    _, sym, sess, _, bounds = needs
    width, need = needs.days.size, np.diff(bounds)
    index: tuple[Ints, Ints] | None = None  # session -> symbols, built when first needed
    covered, in_s = np.zeros(need.size, np.int64), np.zeros(width, dtype=bool)
    size, uncovered = 0, int(chunks.sum())
    best, best_steps, added = uncovered, 0, []
    for i in np.argsort(need, kind="stable").tolist():
        if need[i] == 0 or covered[i] == need[i]:
            continue  # adds nothing
        mine = sess[bounds[i] : bounds[i + 1]]
        new = mine[~in_s[mine]]
        if size + new.size >= best:
            break  # this S, and every larger one, costs at least its size
        in_s[new] = True
        size += new.size
        added.append(new)
        if index is None:  # int16 positions (the calendar has fewer) sort in linear time
            small = sess.astype(np.int16 if width < 2**15 else np.int64)
            starts = np.concatenate(([0], np.cumsum(np.bincount(sess, minlength=width))))
            index = sym[np.argsort(small, kind="stable")], starts
        by_session, starts = index
        hit = by_session[_expand(starts[new], starts[new + 1])]
        touched, hits = np.unique(hit, return_counts=True)
        covered[touched] += hits
        uncovered -= int(chunks[touched[covered[touched] == need[touched]]].sum())
        if size + uncovered < best:
            best, best_steps = size + uncovered, len(added)
    chosen = np.concatenate([np.empty(0, np.int64), *added[:best_steps]])
    return np.bincount(chosen, minlength=width) > 0


def _assemble(
    states: Sequence[SymbolState], needs: _Needs, in_s: Bools, max_bars: int, totals: PlanTotals
) -> Plan:
    """The plan that fetches the sessions in ``in_s`` grouped and the rest per ticker."""
    days, sym, sess, missing, bounds = needs
    n, names = len(states), [s.symbol for s in states]
    grouped_pair = in_s[sess]
    order = np.argsort(sess[grouped_pair], kind="stable")
    g_sess, g_sym = sess[grouped_pair][order], sym[grouped_pair][order]
    cuts = np.flatnonzero(np.diff(g_sess)) + 1
    grouped = tuple(
        GroupedRequest(session=_date(part[0]), symbols=tuple(names[k] for k in who.tolist()))
        for part, who in zip(np.split(days[g_sess], cuts), np.split(g_sym, cuts), strict=True)
        if who.size
    )
    r_sym, r_sess = sym[~grouped_pair], sess[~grouped_pair]
    r_bounds = np.searchsorted(r_sym, np.arange(n + 1)).tolist()
    ranges, range_calls = [], [0] * n
    for i in np.flatnonzero(np.diff(r_bounds)).tolist():
        mine = days[r_sess[r_bounds[i] : r_bounds[i + 1]]]
        for p, q in _chunks(r_sess[r_bounds[i] : r_bounds[i + 1]], max_bars):
            start, end = _date(mine[p]), _date(mine[q - 1])
            ranges.append(RangeRequest(symbol=names[i], start=start, end=end, sessions=q - p))
            range_calls[i] += 1
    lacking = np.bincount(sym[missing], minlength=n).tolist()
    via_grouped = np.bincount(sym[grouped_pair], minlength=n).tolist()
    symbols = (
        SymbolPlan(
            symbol=name,
            missing=lacking[i],
            refresh=hi - lo - lacking[i],
            start=_date(days[sess[lo]]) if hi > lo else None,
            end=_date(days[sess[hi - 1]]) if hi > lo else None,
            range_calls=range_calls[i],
            grouped_sessions=via_grouped[i],
        )
        for i, (name, (lo, hi)) in enumerate(zip(names, pairwise(bounds.tolist()), strict=True))
    )
    return Plan(
        end=max((s.end for s in states), default=None),
        ranges=tuple(sorted(ranges, key=lambda r: (r.symbol, r.start))),
        grouped=grouped,
        symbols=tuple(symbols),
        strategy=("none", "grouped", "range", "mixed")[2 * bool(ranges) + bool(grouped)],
        totals=totals,
    )


def _day(value: dt.date) -> int:
    return value.toordinal() - _EPOCH


def _date(days: int | np.integer) -> dt.date:
    return dt.date.fromordinal(int(days) + _EPOCH)
