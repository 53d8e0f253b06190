"""The backfill planner: needed sessions per symbol and the cheapest mix of vendor calls."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace

import pytest

from marketdata import calendar
from marketdata.service.plan import (
    GroupedRequest,
    Plan,
    RangeRequest,
    SymbolPlan,
    SymbolState,
    make_plan,
    sessions_between,
)
from marketdata.validation import GapRange, missing_sessions

D = dt.date
FRIDAY = D(2025, 6, 13)  # a Friday session; the 14th and 15th are a weekend
FIVE_YEARS = D(2020, 6, 15)


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    """The XNYS sessions in [start, end] as dates."""
    return list(calendar.sessions(start, end).tolist())


def behind(
    symbol: str, n: int, *, end: dt.date = FRIDAY, start: dt.date = FIVE_YEARS
) -> SymbolState:
    """A symbol stored from ``start`` up to ``n`` sessions before ``end``."""
    stored = days(start, end)
    return SymbolState(
        symbol=symbol, start=start, end=end, first_date=stored[0], last_date=stored[-1 - n]
    )


def expected(state: SymbolState, overlap: int = 2) -> tuple[set[dt.date], set[dt.date]]:
    """Reference needs, straight from the rules: (missing sessions, refreshed sessions)."""
    window = days(state.start, state.end) if state.start <= state.end else []
    if state.first_date is None or state.last_date is None:
        return set(window), set()
    head = {d for d in window if d > state.last_date}
    checked = state.checked_from
    tail = {d for d in window if d < state.first_date and (checked is None or d < checked)}
    interior = {d for g in state.gaps for d in days(g.start, g.end) if d in window}
    missing = head | tail | interior
    stored = [d for d in window if state.first_date <= d <= state.last_date]
    refresh = set(stored[-overlap:] if head and overlap else []) - missing
    return missing, refresh


def check_invariants(plan: Plan, states: list[SymbolState], *, overlap: int = 2) -> None:
    """Every needed session is fetched for its symbol, once, and nothing else is listed."""
    for state in states:
        missing, refresh = expected(state, overlap)
        needed = missing | refresh
        share = plan.for_symbol(state.symbol)
        assert (share.missing, share.refresh) == (len(missing), len(refresh))
        assert share.start == (min(needed) if needed else None)
        assert share.end == (max(needed) if needed else None)
        grouped = {g.session for g in plan.grouped if state.symbol in g.symbols}
        ranges = [r for r in plan.ranges if r.symbol == state.symbol]
        assert grouped <= needed
        assert share.grouped_sessions == len(grouped)
        assert share.range_calls == len(ranges)
        in_ranges: set[dt.date] = set()
        for r in ranges:
            span = set(days(r.start, r.end))
            assert r.start in needed - grouped  # trimmed to what grouped calls miss
            assert r.end in needed - grouped
            assert r.sessions == len(span & (needed - grouped))
            assert not in_ranges & span  # chunks do not overlap
            in_ranges |= span
        assert needed <= grouped | in_ranges
        assert sum(r.sessions for r in ranges) + len(grouped) == len(needed)
    assert all(calendar.is_session(g.session) for g in plan.grouped)
    assert all(g.symbols for g in plan.grouped)
    assert plan.ranges == tuple(sorted(plan.ranges, key=lambda r: (r.symbol, r.start)))
    assert [g.session for g in plan.grouped] == sorted({g.session for g in plan.grouped})


def test_empty_database_uses_one_range_call_per_symbol() -> None:
    """15 symbols × 5 years with nothing stored: 15 range calls, each over [start, end]."""
    states = [SymbolState(symbol=f"S{i:02d}", start=FIVE_YEARS, end=FRIDAY) for i in range(15)]
    plan = make_plan(states)
    window = days(FIVE_YEARS, FRIDAY)
    assert plan.calls == 15
    assert plan.grouped == ()
    assert plan.strategy == "range"
    assert plan.ranges[0] == RangeRequest(
        symbol="S00", start=window[0], end=FRIDAY, sessions=len(window)
    )
    assert {(r.start, r.end, r.sessions) for r in plan.ranges} == {(window[0], FRIDAY, len(window))}
    assert plan.missing == 15 * len(window)
    assert plan.refresh == 0
    assert plan.sessions == len(window)
    assert (plan.range_only_calls, plan.grouped_only_calls) == (15, len(window))
    check_invariants(plan, states)


def test_up_to_date_on_a_weekend_makes_no_calls() -> None:
    """Stored through Friday, planned on the weekend (end = Friday): nothing, not even overlap."""
    states = [behind(f"S{i:02d}", 0) for i in range(15)]
    plan = make_plan(states)
    assert plan.is_empty
    assert plan.calls == 0
    assert plan.strategy == "none"
    assert plan.missing == plan.refresh == plan.sessions == 0
    assert all(s.start is None and s.end is None for s in plan.symbols)
    assert plan.duration(5) == 0.0


def test_a_missing_week_is_one_range_request() -> None:
    """One symbol of 15 lacks a week mid-history: one range call spanning exactly that week."""
    week = days(D(2024, 3, 11), D(2024, 3, 15))
    stored = [d for d in days(FIVE_YEARS, FRIDAY) if d not in week]
    gaps = tuple(missing_sessions(stored))
    assert gaps == (GapRange(start=week[0], end=week[-1], sessions=5),)
    holey = SymbolState(
        symbol="HOLE",
        start=FIVE_YEARS,
        end=FRIDAY,
        first_date=stored[0],
        last_date=FRIDAY,
        gaps=gaps,
    )
    states = [holey, *(behind(f"S{i:02d}", 0) for i in range(14))]
    plan = make_plan(states)
    assert plan.ranges == (RangeRequest(symbol="HOLE", start=week[0], end=week[-1], sessions=5),)
    assert plan.grouped == ()
    assert plan.for_symbol("HOLE").missing == 5
    assert plan.for_symbol("HOLE").refresh == 0  # no new sessions: no overlap refetch
    assert all(s.range_calls == 0 for s in plan.symbols[1:])
    check_invariants(plan, states)


def test_many_symbols_one_session_behind_use_grouped_calls() -> None:
    """500 symbols each missing the last session: 1 + overlap grouped calls."""
    states = [behind(f"S{i:03d}", 1) for i in range(500)]
    plan = make_plan(states)
    assert plan.ranges == ()
    assert plan.calls == 3
    assert plan.strategy == "grouped"
    assert [g.session for g in plan.grouped] == days(FIVE_YEARS, FRIDAY)[-3:]
    assert all(len(g.symbols) == 500 for g in plan.grouped)
    assert (plan.missing, plan.refresh) == (500, 1000)
    assert (plan.range_only_calls, plan.grouped_only_calls) == (500, 3)
    check_invariants(plan, states)


def test_few_symbols_with_long_histories_use_range_calls() -> None:
    """3 symbols × 5 years: 3 range calls beat ~1,260 grouped ones."""
    states = [SymbolState(symbol=s, start=FIVE_YEARS, end=FRIDAY) for s in ("A", "B", "C")]
    plan = make_plan(states)
    assert plan.calls == len(plan.ranges) == 3
    assert plan.grouped == ()
    check_invariants(plan, states)


def test_mixed_plan_groups_recent_sessions_and_trims_the_laggard() -> None:
    """20 symbols a day behind and one a year behind: 3 grouped calls plus one trimmed range."""
    year_ago = days(D(2024, 6, 13), FRIDAY)
    laggard = behind("LAG", len(year_ago) - 1)
    states = [*(behind(f"S{i:02d}", 1) for i in range(20)), laggard]
    plan = make_plan(states)
    recent = year_ago[-3:]  # the missing session and two refreshed ones
    assert plan.strategy == "mixed"
    assert [g.session for g in plan.grouped] == recent
    assert all("LAG" in g.symbols and len(g.symbols) == 21 for g in plan.grouped)
    assert len(plan.ranges) == 1
    (lag,) = plan.ranges
    stored = days(FIVE_YEARS, FRIDAY)
    assert laggard.last_date is not None
    overlap_start = stored[stored.index(laggard.last_date) - 1]
    assert (lag.symbol, lag.start, lag.end) == ("LAG", overlap_start, year_ago[-4])
    assert lag.sessions == len(days(overlap_start, year_ago[-4]))
    assert plan.calls == 4
    assert plan.calls < min(plan.range_only_calls, plan.grouped_only_calls)
    share = plan.for_symbol("LAG")
    assert (share.range_calls, share.grouped_sessions) == (1, 3)
    check_invariants(plan, states)


@pytest.mark.parametrize(("lag", "refresh"), [(0, 0), (1, 2), (3, 2)])
def test_overlap_refetches_only_when_there_is_new_data(lag: int, refresh: int) -> None:
    """The last ``overlap`` stored sessions are refetched only alongside new sessions."""
    plan = make_plan([behind("A", lag)], strategy="range")
    assert (plan.missing, plan.refresh) == (lag, refresh)
    assert plan.calls == (1 if lag else 0)
    if lag:
        stored = days(FIVE_YEARS, FRIDAY)
        assert plan.ranges[0].start == stored[-1 - lag - 1]
        assert plan.ranges[0].sessions == lag + 2


def test_overlap_is_configurable() -> None:
    """overlap=0 fetches only what is missing; overlap=5 refetches five stored sessions."""
    assert make_plan([behind("A", 1)], overlap=0).refresh == 0
    assert make_plan([behind("A", 1)], overlap=5).refresh == 5


def test_tail_skipped_when_already_asked_back_to_start() -> None:
    """History starting after ``start`` is not asked for again once checked back to start."""
    first = days(D(2023, 3, 1), FRIDAY)[0]
    asked = SymbolState(
        symbol="NEW",
        start=FIVE_YEARS,
        end=FRIDAY,
        first_date=first,
        last_date=FRIDAY,
        checked_from=FIVE_YEARS,
    )
    assert make_plan([asked]).is_empty
    assert make_plan([replace(asked, checked_from=D(2001, 1, 1))]).is_empty
    # A Saturday start: asked back to the Monday after it is asked back far enough.
    saturday = replace(asked, start=D(2020, 6, 13), checked_from=D(2020, 6, 15))
    assert make_plan([saturday]).is_empty
    assert make_plan([replace(saturday, checked_from=D(2020, 6, 16))]).missing == 1


def test_tail_planned_when_never_asked() -> None:
    """Without ``checked_from`` the sessions before the first stored bar are needed."""
    stored = days(D(2023, 3, 1), FRIDAY)
    state = SymbolState(
        symbol="NEW", start=FIVE_YEARS, end=FRIDAY, first_date=stored[0], last_date=FRIDAY
    )
    plan = make_plan([state])
    tail = days(FIVE_YEARS, D(2023, 2, 28))
    assert plan.ranges == (
        RangeRequest(symbol="NEW", start=tail[0], end=tail[-1], sessions=len(tail)),
    )
    assert plan.refresh == 0  # the head is empty
    check_invariants(plan, [state])


def test_tail_stops_where_the_vendor_was_already_asked() -> None:
    """Asked back to a date after ``start``: only the sessions before that date are needed."""
    stored = days(D(2023, 3, 1), FRIDAY)
    state = SymbolState(
        symbol="X",
        start=FIVE_YEARS,
        end=FRIDAY,
        first_date=stored[0],
        last_date=FRIDAY,
        checked_from=D(2022, 1, 3),
    )
    plan = make_plan([state])
    tail = days(FIVE_YEARS, D(2021, 12, 31))
    assert plan.ranges == (
        RangeRequest(symbol="X", start=tail[0], end=tail[-1], sessions=len(tail)),
    )
    check_invariants(plan, [state])


def test_unknown_ticker_is_still_planned() -> None:
    """Nothing stored and already asked: every session is planned (the runner reports it)."""
    state = SymbolState(symbol="ZZZ", start=FIVE_YEARS, end=FRIDAY, checked_from=FIVE_YEARS)
    plan = make_plan([state])
    assert plan.missing == len(days(FIVE_YEARS, FRIDAY))


def test_long_spans_split_into_max_bars_chunks() -> None:
    """max_bars=100 over 250 sessions: three consecutive requests of 100, 100 and 50."""
    window = days(D(2024, 1, 1), D(2025, 12, 31))[:250]
    state = SymbolState(symbol="A", start=window[0], end=window[-1])
    plan = make_plan([state], max_bars=100)
    assert [(r.start, r.end, r.sessions) for r in plan.ranges] == [
        (window[0], window[99], 100),
        (window[100], window[199], 100),
        (window[200], window[249], 50),
    ]
    assert plan.range_only_calls == 3
    assert plan.for_symbol("A").range_calls == 3
    check_invariants(plan, [state])


def test_chunks_skip_sessions_that_are_not_needed() -> None:
    """A chunk starts at the next needed session: two far-apart gaps are two small requests."""
    stored = days(D(2024, 1, 1), D(2025, 12, 31))
    gaps = (
        GapRange(start=stored[10], end=stored[11], sessions=2),
        GapRange(start=stored[400], end=stored[400], sessions=1),
    )
    state = SymbolState(
        symbol="A",
        start=stored[0],
        end=stored[-1],
        first_date=stored[0],
        last_date=stored[-1],
        gaps=gaps,
    )
    plan = make_plan([state], max_bars=100)
    assert [(r.start, r.end, r.sessions) for r in plan.ranges] == [
        (stored[10], stored[11], 2),
        (stored[400], stored[400], 1),
    ]
    assert make_plan([state]).ranges == (
        RangeRequest(symbol="A", start=stored[10], end=stored[400], sessions=3),
    )


def test_forced_strategies() -> None:
    """ "range" never uses grouped calls and "grouped" never uses range calls."""
    states = [behind(f"S{i:03d}", 1) for i in range(50)]
    by_range = make_plan(states, strategy="range")
    assert (len(by_range.ranges), len(by_range.grouped)) == (50, 0)
    assert by_range.strategy == "range"
    long = [SymbolState(symbol=s, start=FIVE_YEARS, end=FRIDAY) for s in ("A", "B")]
    by_grouped = make_plan(long, strategy="grouped")
    assert by_grouped.ranges == ()
    assert len(by_grouped.grouped) == len(days(FIVE_YEARS, FRIDAY))
    assert by_grouped.grouped[0] == GroupedRequest(session=D(2020, 6, 15), symbols=("A", "B"))
    assert by_grouped.strategy == "grouped"
    check_invariants(by_range, states)
    check_invariants(by_grouped, long)


def test_ties_prefer_range_calls() -> None:
    """One symbol one session behind, no overlap: 1 range call ties 1 grouped call and wins."""
    plan = make_plan([behind("A", 1)], overlap=0)
    assert (len(plan.ranges), len(plan.grouped)) == (1, 0)
    assert plan.grouped_only_calls == plan.range_only_calls == 1


@pytest.mark.parametrize(
    ("calls", "cpm", "seconds"),
    [(0, 5, 0.0), (1, 5, 0.0), (10, 5, 108.0), (10, 0, 0.0), (3, 60, 2.0), (101, 1000, 6.0)],
)
def test_duration_under_a_pacer(calls: int, cpm: float, seconds: float) -> None:
    """n calls spaced 60/cpm apart take (n−1)·60/cpm seconds; 0 cpm means unlimited."""
    symbols = [f"S{i:03d}" for i in range(calls)]
    plan = make_plan(
        [SymbolState(symbol=s, start=FRIDAY, end=FRIDAY) for s in symbols], strategy="range"
    )
    assert plan.calls == calls
    assert plan.duration(cpm) == pytest.approx(seconds)


def test_duration_refuses_negative_rates() -> None:
    """A negative rate is a mistake, not "unlimited"."""
    with pytest.raises(ValueError, match="negative"):
        make_plan([]).duration(-1)


def test_holidays_are_never_planned() -> None:
    """Christmas 2025 is skipped by range counts and grouped calls; a holiday start moves on."""
    states = [SymbolState(symbol=s, start=D(2025, 12, 25), end=D(2025, 12, 31)) for s in "AB"]
    by_range = make_plan(states, strategy="range")
    assert by_range.ranges[0] == RangeRequest(
        symbol="A", start=D(2025, 12, 26), end=D(2025, 12, 31), sessions=4
    )
    wide = [SymbolState(symbol=s, start=D(2025, 12, 22), end=D(2025, 12, 31)) for s in "AB"]
    by_grouped = make_plan(wide, strategy="grouped")
    sessions = [g.session for g in by_grouped.grouped]
    assert D(2025, 12, 25) not in sessions
    assert sessions == days(D(2025, 12, 22), D(2025, 12, 31))
    assert len(sessions) == 7


def test_start_after_end_plans_nothing() -> None:
    """start > end (or a window with no session) needs nothing."""
    states = [
        SymbolState(symbol="A", start=D(2025, 6, 16), end=FRIDAY),
        SymbolState(symbol="B", start=D(2025, 6, 14), end=D(2025, 6, 15)),  # a weekend
        SymbolState(
            symbol="C",
            start=D(2026, 1, 5),
            end=FRIDAY,
            first_date=FIVE_YEARS,
            last_date=D(2025, 6, 10),
        ),
    ]
    plan = make_plan(states)
    assert plan.is_empty
    assert plan.end == D(2025, 6, 15)
    assert plan.for_symbol("A") == SymbolPlan(
        symbol="A", missing=0, refresh=0, start=None, end=None, range_calls=0, grouped_sessions=0
    )


def test_no_states_is_an_empty_plan() -> None:
    """No symbols: no calls and no end."""
    plan = make_plan([])
    assert plan.is_empty
    assert plan.end is None
    assert plan.symbols == ()
    assert (plan.sessions, plan.range_only_calls, plan.grouped_only_calls) == (0, 0, 0)


def test_plan_keeps_state_order_and_latest_end() -> None:
    """Symbol shares follow the input order; ``end`` is the latest end wanted."""
    states = [behind("B", 1), behind("A", 2, end=D(2025, 6, 12))]
    plan = make_plan(states)
    assert [s.symbol for s in plan.symbols] == ["B", "A"]
    assert plan.end == FRIDAY
    with pytest.raises(KeyError):
        plan.for_symbol("C")


def test_gap_next_to_the_overlap_counts_as_missing_once() -> None:
    """A gap inside the overlap window is missing, not refreshed, and fetched once."""
    stored = days(D(2025, 1, 2), FRIDAY)
    state = SymbolState(
        symbol="A",
        start=stored[0],
        end=FRIDAY,
        first_date=stored[0],
        last_date=stored[-2],
        gaps=(GapRange(start=stored[-3], end=stored[-3], sessions=1),),
    )
    plan = make_plan([state])
    assert (plan.missing, plan.refresh) == (2, 1)
    assert plan.ranges == (RangeRequest(symbol="A", start=stored[-3], end=FRIDAY, sessions=3),)
    check_invariants(plan, [state])


@pytest.mark.parametrize(
    ("first", "last"),
    [(D(2025, 1, 2), None), (None, D(2025, 1, 2)), (D(2025, 1, 3), D(2025, 1, 2))],
)
def test_symbol_state_rejects_inconsistent_stored_ranges(
    first: dt.date | None, last: dt.date | None
) -> None:
    """first_date and last_date come together and in order."""
    with pytest.raises(ValueError, match="invalid stored range"):
        SymbolState(symbol="A", start=FIVE_YEARS, end=FRIDAY, first_date=first, last_date=last)


@pytest.mark.parametrize(
    ("overlap", "max_bars", "strategy"), [(-1, 10, "auto"), (2, 0, "auto"), (2, 10, "fastest")]
)
def test_make_plan_rejects_bad_options(overlap: int, max_bars: int, strategy: str) -> None:
    """Negative overlap, empty requests and unknown strategies are refused."""
    with pytest.raises(ValueError, match="invalid"):
        make_plan(
            [behind("A", 1)],
            overlap=overlap,
            max_bars=max_bars,
            strategy=strategy,  # type: ignore[arg-type]
        )


def test_make_plan_rejects_duplicate_symbols() -> None:
    """A symbol planned twice would be fetched twice."""
    with pytest.raises(ValueError, match="once"):
        make_plan([behind("A", 1), behind("A", 2)])


def test_sessions_between() -> None:
    """Sessions in [start, end]: holidays and weekends excluded, empty when reversed."""
    assert sessions_between(D(2025, 12, 22), D(2025, 12, 31)) == 7
    assert sessions_between(FRIDAY, FRIDAY) == 1
    assert sessions_between(D(2025, 6, 14), D(2025, 6, 15)) == 0
    assert sessions_between(FRIDAY, D(2025, 6, 1)) == 0
    assert sessions_between(D(1900, 1, 1), D(1990, 1, 3)) == 2


def test_hand_built_plan_derives_its_totals() -> None:
    """A Plan built without make_plan still answers sessions and the pure-strategy costs."""
    plan = Plan(
        end=FRIDAY,
        ranges=(RangeRequest(symbol="A", start=D(2025, 6, 11), end=FRIDAY, sessions=3),),
        grouped=(GroupedRequest(session=D(2025, 6, 10), symbols=("B",)),),
        symbols=(
            SymbolPlan(
                symbol="A",
                missing=3,
                refresh=0,
                start=D(2025, 6, 11),
                end=FRIDAY,
                range_calls=1,
                grouped_sessions=0,
            ),
            SymbolPlan(
                symbol="B",
                missing=1,
                refresh=0,
                start=D(2025, 6, 10),
                end=D(2025, 6, 10),
                range_calls=0,
                grouped_sessions=1,
            ),
        ),
        strategy="mixed",
    )
    assert (plan.calls, plan.missing, plan.sessions) == (2, 4, 4)
    assert (plan.range_only_calls, plan.grouped_only_calls) == (2, 4)
    assert plan.for_symbol("B").grouped_sessions == 1


def random_state(rng: random.Random, symbol: str, window: list[dt.date]) -> SymbolState:
    """A symbol with a random wanted range, stored stretch, holes and checked_from."""
    i, j = sorted(rng.sample(range(len(window)), 2))
    start, end = window[i], window[j]
    if rng.random() < 0.2:
        start -= dt.timedelta(days=rng.randint(0, 3))  # maybe a weekend or holiday
    if rng.random() < 0.25:
        return SymbolState(symbol=symbol, start=start, end=end)
    lo, hi = sorted(rng.sample(range(len(window)), 2))
    stored = [window[lo], *(d for d in window[lo:hi] if rng.random() > 0.05), window[hi]]
    checked = rng.choice([None, window[rng.randrange(len(window))], start])
    return SymbolState(
        symbol=symbol,
        start=start,
        end=end,
        first_date=window[lo],
        last_date=window[hi],
        gaps=tuple(missing_sessions(stored)),
        checked_from=checked,
    )


@pytest.mark.parametrize("seed", range(8))
def test_random_states_are_covered_and_auto_is_cheapest(seed: int) -> None:
    """Random states: needs fetched exactly; auto costs no more than either pure strategy."""
    rng = random.Random(seed)
    window = days(D(2024, 1, 1), D(2025, 6, 30))
    states = [random_state(rng, f"S{k:02d}", window) for k in range(rng.randint(1, 30))]
    if seed % 2:  # many symbols a little behind: grouped calls pay off
        states += [behind(f"T{k:02d}", rng.randint(0, 3), end=window[-1]) for k in range(40)]
    overlap = rng.randint(0, 3)
    max_bars = rng.choice([50_000, 40, 7])
    plans = {
        s: make_plan(states, overlap=overlap, max_bars=max_bars, strategy=s)
        for s in ("auto", "range", "grouped")
    }
    for plan in plans.values():
        check_invariants(plan, states, overlap=overlap)
        assert all(sessions_between(r.start, r.end) <= max_bars for r in plan.ranges)
    auto = plans["auto"]
    assert plans["range"].calls == auto.range_only_calls
    assert plans["grouped"].calls == auto.grouped_only_calls
    assert auto.calls <= min(auto.range_only_calls, auto.grouped_only_calls)


def test_benchmark_shapes_plan_as_expected() -> None:
    """The benchmark's cases (bench/backfill.py times them): 500 symbols × 5 years take one
    range call each; 5,000 symbols 1–3 sessions behind take 3 + 2 overlap grouped calls."""
    empty = [SymbolState(symbol=f"S{i:03d}", start=FIVE_YEARS, end=FRIDAY) for i in range(500)]
    recent = [behind(f"T{i:04d}", 1 + i % 3) for i in range(5000)]
    for states, calls in ((empty, 500), (recent, 5)):
        assert make_plan(states).calls == calls
