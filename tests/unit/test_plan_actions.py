"""``plan_actions``: which days of splits and dividends a backfill asks its provider for.

Per symbol with work, the days wanted are those it gets bars for plus those it holds; what the
same provider was already asked about (``actions_checked:{provider}``) is trusted only while
the symbol's stored bars are that provider's. Symbols needing days before what is checked share
one request from the earliest such day; those needing only later days are asked again from
:data:`RECHECK` before the end of their check; simulated bars that real ones replace wait.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketdata.service.actions import (
    CHECKED_KEY,
    RECHECK,
    ActionsPlan,
    Span,
    plan_actions,
    read_checked,
    save_checked,
)
from marketdata.service.plan import SymbolPlan
from marketdata.service.simulated import SYNTHETIC
from marketdata.storage.base import Store, SymbolStatus

AT = dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC)
THROUGH = dt.date(2026, 11, 20)  # the plan's end: the last session any symbol gets


def d(iso: str) -> dt.date:
    """The date of an ISO ``YYYY-MM-DD`` string."""
    return dt.date.fromisoformat(iso)


def span(first: str, last: str) -> Span:
    """The span of two ISO dates."""
    return Span(first=d(first), last=d(last))


def busy(symbol: str, first: str, last: str, *, grouped: bool = False) -> SymbolPlan:
    """``symbol`` getting bars from ``first`` to ``last`` by one range call (or grouped)."""
    return SymbolPlan(
        symbol=symbol,
        missing=10,
        refresh=0,
        start=d(first),
        end=d(last),
        range_calls=0 if grouped else 1,
        grouped_sessions=10 if grouped else 0,
    )


def idle(symbol: str, first: str | None = None, last: str | None = None) -> SymbolPlan:
    """``symbol`` with no call to make (its dates, if any, are ignored)."""
    return SymbolPlan(
        symbol=symbol,
        missing=0,
        refresh=0,
        start=d(first) if first else None,
        end=d(last) if last else None,
        range_calls=0,
        grouped_sessions=0,
    )


def held(
    symbol: str, first: str | None, last: str | None, source: str | None = "polygon"
) -> SymbolStatus:
    """``symbol``'s status: bars stored from ``first`` to ``last`` (None: none), last written
    by ``source``."""
    return SymbolStatus(
        symbol=symbol,
        first_date=d(first) if first else None,
        last_date=d(last) if last else None,
        bar_count=0 if first is None else 100,
        validated_count=0,
        gap_count=0,
        last_fetch=None,
        last_error=None,
        updated_at=AT,
        source=source,
    )


def requests(**by_day: tuple[str, ...]) -> dict[dt.date, tuple[str, ...]]:
    """Expected requests, keyed ``on_YYYY_MM_DD``."""
    return {d(key.removeprefix("on_").replace("_", "-")): names for key, names in by_day.items()}


# --- plan_actions: the requests ----------------------------------------------------------------

PG = busy("PG", "2025-01-02", "2026-11-20")


@pytest.mark.parametrize(
    ("symbols", "stored", "checked", "provider", "expected"),
    [
        pytest.param([], [], {}, "polygon", {}, id="empty-inputs"),
        pytest.param(
            [], [held("PG", "2020-01-02", "2026-11-20")], {"PG": span("2020-01-02", "2026-11-20")},
            "polygon", {}, id="no-symbols-with-a-plan",
        ),
        pytest.param(
            [PG], [], {}, "polygon", requests(on_2025_01_02=("PG",)),
            id="nothing-stored-nothing-checked",
        ),
        pytest.param(
            [PG], [held("PG", None, None)], {}, "polygon", requests(on_2025_01_02=("PG",)),
            id="status-row-without-bars",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")], [held("PG", "2020-01-02", "2026-11-19")],
            {}, "polygon", requests(on_2020_01_02=("PG",)),
            id="nothing-checked-asks-for-the-stored-days-too",
        ),
        pytest.param(
            [busy("PG", "2020-01-02", "2020-03-31")], [held("PG", "2025-01-02", "2026-11-20")],
            {}, "polygon", requests(on_2020_01_02=("PG",)),
            id="nothing-checked-plan-before-the-stored-days",
        ),
        pytest.param(
            [busy("PG", "2025-06-03", "2025-06-03")], [held("PG", "2020-01-02", "2026-11-20")],
            {"PG": span("2020-01-02", "2026-11-20")}, "polygon", {},
            id="hole-inside-the-checked-span",
        ),
        pytest.param(
            [busy("PG", "2020-01-02", "2026-11-20")], [held("PG", "2020-01-02", "2026-11-20")],
            {"PG": span("2020-01-02", "2026-11-20")}, "polygon", {},
            id="exactly-the-checked-span",
        ),
        pytest.param(
            [busy("PG", "2025-06-03", "2025-06-05", grouped=True)],
            [held("PG", "2020-01-02", "2026-11-20")],
            {"PG": span("2020-01-02", "2026-11-20")}, "polygon", {},
            id="grouped-sessions-inside-the-checked-span",
        ),
        pytest.param(
            [busy("PG", "2026-11-19", "2026-11-20")], [held("PG", "2020-01-02", "2026-11-18")],
            {"PG": span("2020-01-02", "2026-11-18")}, "polygon",
            requests(on_2026_10_19=("PG",)), id="later-days-recheck-from-30-days-before-the-end",
        ),
        pytest.param(
            [busy("PG", "2026-10-01", "2026-11-20")], [held("PG", "2020-01-02", "2026-10-31")],
            {"PG": span("2020-01-02", "2026-10-31")}, "polygon",
            requests(on_2026_10_01=("PG",)), id="overlapping-the-end-recheck-not-from-the-start",
        ),
        pytest.param(
            [busy("PG", "2026-11-01", "2026-11-20")], [held("PG", "2020-01-02", "2026-10-31")],
            {"PG": span("2020-01-02", "2026-10-31")}, "polygon",
            requests(on_2026_10_01=("PG",)), id="adjacent-after-the-checked-span",
        ),
        pytest.param(
            [busy("PG", "2026-11-01", "2026-11-20")], [held("PG", "2026-10-20", "2026-10-31")],
            {"PG": span("2026-10-20", "2026-10-31")}, "polygon",
            requests(on_2026_10_01=("PG",)), id="recheck-may-start-before-a-short-check",
        ),
        pytest.param(
            [busy("PG", "2019-12-02", "2019-12-31")], [held("PG", "2020-01-02", "2026-11-20")],
            {"PG": span("2020-01-02", "2026-11-20")}, "polygon",
            requests(on_2019_12_02=("PG",)), id="adjacent-before-the-checked-span",
        ),
        pytest.param(
            [busy("PG", "2021-01-04", "2022-12-30")], [held("PG", "2023-01-03", "2026-11-20")],
            {"PG": span("2023-01-03", "2026-11-20")}, "polygon",
            requests(on_2021_01_04=("PG",)), id="extending-history-backwards",
        ),
        pytest.param(
            [busy("PG", "2021-01-04", "2023-06-30")], [held("PG", "2023-01-03", "2026-11-20")],
            {"PG": span("2023-01-03", "2026-11-20")}, "polygon",
            requests(on_2021_01_04=("PG",)), id="overlapping-the-start",
        ),
        pytest.param(
            [busy("PG", "2021-01-04", "2026-11-20")], [held("PG", "2023-01-03", "2026-10-30")],
            {"PG": span("2023-01-03", "2026-10-30")}, "polygon",
            requests(on_2021_01_04=("PG",)), id="both-ends-one-request-from-the-earliest-day",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")], [held("PG", "2020-01-02", "2026-11-19")],
            {"PG": span("2023-01-03", "2026-11-19")}, "polygon",
            requests(on_2020_01_02=("PG",)), id="stored-bars-older-than-the-check",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")], [held("PG", "2020-01-02", "2026-11-19")],
            {"PG": span("2010-01-04", "2026-11-19")}, "polygon",
            requests(on_2026_10_20=("PG",)), id="check-older-than-the-stored-bars",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")],
            [held("PG", "2020-01-02", "2026-11-19", source="yahoo")],
            {"PG": span("2020-01-02", "2026-11-19")}, "polygon",
            requests(on_2020_01_02=("PG",)), id="provider-switch-bars-of-another-provider",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")],
            [held("PG", "2020-01-02", "2026-11-19", source=None)],
            {"PG": span("2020-01-02", "2026-11-19")}, "polygon",
            requests(on_2020_01_02=("PG",)), id="bars-of-unknown-source",
        ),
        pytest.param(
            [PG], [held("PG", None, None)], {"PG": span("2020-01-02", "2026-11-19")}, "polygon",
            requests(on_2025_01_02=("PG",)), id="check-of-purged-bars-not-trusted",
        ),
        pytest.param(
            [PG], [], {"PG": span("2020-01-02", "2026-11-19")}, "polygon",
            requests(on_2025_01_02=("PG",)), id="check-without-status-row-not-trusted",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")],
            [held("PG", "2020-01-02", "2026-11-19", source="yahoo")],
            {"PG": span("2020-01-02", "2026-11-19")}, "yahoo",
            requests(on_2026_10_20=("PG",)), id="same-check-trusted-by-its-own-provider",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")],
            [held("PG", "2020-01-02", "2026-11-19", source=SYNTHETIC)],
            {}, "polygon", {}, id="simulated-bars-replaced-wait-for-later",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")],
            [held("PG", "2020-01-02", "2026-11-19", source=SYNTHETIC)],
            {"PG": span("2020-01-02", "2026-11-19")}, SYNTHETIC,
            requests(on_2026_10_20=("PG",)), id="simulated-bars-by-the-simulator-itself",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")],
            [held("PG", "2020-01-02", "2026-11-19", source="polygon")],
            {}, SYNTHETIC, requests(on_2020_01_02=("PG",)),
            id="simulator-after-real-bars-asks-everything",
        ),
        pytest.param(
            [idle("PG"), idle("XOM", "2025-01-02", "2026-11-20")], [], {}, "polygon", {},
            id="symbols-without-calls-left-out",
        ),
        pytest.param(
            [busy("PG", "2025-01-02", "2026-11-20", grouped=True)], [], {}, "polygon",
            requests(on_2025_01_02=("PG",)), id="grouped-sessions-count-as-work",
        ),
        pytest.param(
            [busy("XOM", "2024-01-02", "2026-11-20"), PG, busy("AAPL", "2025-06-02", "2026-11-20")],
            [], {}, "polygon", requests(on_2024_01_02=("AAPL", "PG", "XOM")),
            id="several-symbols-share-one-request-from-the-earliest",
        ),
        pytest.param(
            [busy("AAPL", "2026-11-20", "2026-11-20"), busy("PG", "2026-11-20", "2026-11-20")],
            [held("AAPL", "2020-01-02", "2026-11-19"), held("PG", "2021-01-04", "2026-11-19")],
            {"AAPL": span("2020-01-02", "2026-11-19"), "PG": span("2021-01-04", "2026-11-19")},
            "polygon", requests(on_2026_10_20=("AAPL", "PG")),
            id="several-symbols-same-recheck-day",
        ),
        pytest.param(
            [busy("AAPL", "2026-11-20", "2026-11-20"), busy("PG", "2026-11-20", "2026-11-20")],
            [held("AAPL", "2020-01-02", "2026-11-19"), held("PG", "2020-01-02", "2026-11-13")],
            {"AAPL": span("2020-01-02", "2026-11-19"), "PG": span("2020-01-02", "2026-11-13")},
            "polygon", requests(on_2026_10_14=("PG",), on_2026_10_20=("AAPL",)),
            id="several-symbols-different-recheck-days",
        ),
        pytest.param(
            [
                busy("AAPL", "2026-11-20", "2026-11-20"),
                busy("MSFT", "2025-06-03", "2025-06-03"),
                busy("NEW", "2025-01-02", "2026-11-20"),
                busy("OLD", "2019-01-02", "2019-12-31"),
                idle("XOM"),
            ],
            [
                held("AAPL", "2020-01-02", "2026-11-19"),
                held("MSFT", "2020-01-02", "2026-11-20"),
                held("OLD", "2020-01-02", "2026-11-20"),
                held("XOM", "2020-01-02", "2026-11-19"),
            ],
            {
                "AAPL": span("2020-01-02", "2026-11-19"),
                "MSFT": span("2020-01-02", "2026-11-20"),
                "OLD": span("2020-01-02", "2026-11-20"),
            },
            "polygon", requests(on_2019_01_02=("NEW", "OLD"), on_2026_10_20=("AAPL",)),
            id="several-symbols-older-recheck-nothing-and-idle",
        ),
        pytest.param(
            [busy("AAPL", "2026-11-20", "2026-11-20"), busy("NEW", "2026-10-20", "2026-11-20")],
            [held("AAPL", "2020-01-02", "2026-11-19")],
            {"AAPL": span("2020-01-02", "2026-11-19")},
            "polygon", requests(on_2026_10_20=("AAPL", "NEW")),
            id="recheck-and-older-on-the-same-day-merge",
        ),
        pytest.param(
            [busy("AAPL", "2026-11-20", "2026-11-20"), busy("PG", "2026-11-20", "2026-11-20")],
            [held("AAPL", "2020-01-02", "2026-11-19", SYNTHETIC), held("PG", None, None)],
            {}, "polygon", requests(on_2026_11_20=("PG",)),
            id="several-symbols-one-simulated",
        ),
        pytest.param(
            [PG], [held("XOM", "2020-01-02", "2026-11-19"), held("PG", None, None)],
            {"XOM": span("2020-01-02", "2026-11-19")}, "polygon",
            requests(on_2025_01_02=("PG",)), id="statuses-and-checks-of-other-symbols-ignored",
        ),
    ],
)  # fmt: skip
def test_requests(
    symbols: list[SymbolPlan],
    stored: list[SymbolStatus],
    checked: dict[str, Span],
    provider: str,
    expected: dict[dt.date, tuple[str, ...]],
) -> None:
    """Each planned request starts on the expected day and names the expected symbols, in
    order of day then symbol; nothing else is asked."""
    plan = plan_actions(symbols, stored, checked, provider=provider)
    assert plan.requests == expected
    assert list(plan.requests) == sorted(plan.requests)
    assert all(list(names) == sorted(names) for names in plan.requests.values())


# --- plan_actions: what the requests are for ---------------------------------------------------


@pytest.mark.parametrize(
    ("symbols", "stored", "checked", "wanted", "known", "later"),
    [
        pytest.param([], [], {}, {}, {}, frozenset(), id="empty-inputs"),
        pytest.param(
            [PG], [], {"PG": span("2020-01-02", "2026-11-20")},
            {"PG": span("2025-01-02", "2026-11-20")}, {}, frozenset(),
            id="only-the-days-of-the-plan",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")], [held("PG", "2020-01-02", "2026-11-19")],
            {"PG": span("2010-01-04", "2026-11-19")},
            {"PG": span("2020-01-02", "2026-11-20")}, {"PG": span("2010-01-04", "2026-11-19")},
            frozenset(), id="stored-days-added-check-kept-whole",
        ),
        pytest.param(
            [busy("PG", "2019-06-03", "2019-06-28")], [held("PG", "2020-01-02", "2020-03-31")],
            {}, {"PG": span("2019-06-03", "2020-03-31")}, {}, frozenset(),
            id="disjoint-plan-and-stored-days-bridged",
        ),
        pytest.param(
            [busy("PG", "2026-11-20", "2026-11-20")],
            [held("PG", "2020-01-02", "2026-11-19", "yahoo")],
            {"PG": span("2020-01-02", "2026-11-19")},
            {"PG": span("2020-01-02", "2026-11-20")}, {}, frozenset(), id="other-providers-bars",
        ),
        pytest.param(
            [busy("AAPL", "2026-11-20", "2026-11-20"), PG, idle("XOM")],
            [
                held("AAPL", "2020-01-02", "2026-11-19", SYNTHETIC),
                held("PG", "2024-01-02", "2024-12-31"),
                held("XOM", "2020-01-02", "2026-11-19"),
            ],
            {"AAPL": span("2020-01-02", "2026-11-19"), "XOM": span("2020-01-02", "2026-11-19")},
            {"PG": span("2024-01-02", "2026-11-20")}, {}, frozenset({"AAPL"}),
            id="simulated-later-idle-absent",
        ),
    ],
)  # fmt: skip
def test_wanted_known_later(
    symbols: list[SymbolPlan],
    stored: list[SymbolStatus],
    checked: dict[str, Span],
    wanted: dict[str, Span],
    known: dict[str, Span],
    later: frozenset[str],
) -> None:
    """The days each symbol must cover, the checks still trusted, and the symbols left for
    after their bars."""
    plan = plan_actions(symbols, stored, checked, provider="polygon")
    assert (plan.wanted, plan.known, plan.later) == (wanted, known, later)


def test_inverted_symbol_plan_is_rejected() -> None:
    """A symbol plan ending before it starts is a caller's bug: no span is made of it."""
    with pytest.raises(ValueError, match="after its end"):
        plan_actions([busy("PG", "2026-11-20", "2026-11-19")], [], {}, provider="polygon")


# --- Span ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(span("2020-01-02", "2020-12-31"), None, span("2020-01-02", "2020-12-31"),
                     id="with-none"),
        pytest.param(span("2020-01-02", "2020-12-31"), span("2020-03-02", "2020-04-30"),
                     span("2020-01-02", "2020-12-31"), id="inside"),
        pytest.param(span("2020-01-02", "2020-12-31"), span("2020-06-01", "2021-06-30"),
                     span("2020-01-02", "2021-06-30"), id="overlapping"),
        pytest.param(span("2021-01-04", "2021-12-31"), span("2020-01-02", "2020-03-31"),
                     span("2020-01-02", "2021-12-31"), id="disjoint-bridged"),
        pytest.param(span("2020-01-02", "2020-01-02"), span("2020-01-02", "2020-01-02"),
                     span("2020-01-02", "2020-01-02"), id="one-day"),
    ],
)  # fmt: skip
def test_span_union(a: Span, b: Span | None, expected: Span) -> None:
    """The union is the smallest span holding both (gaps included), whichever comes first."""
    assert a.union(b) == expected
    if b is not None:
        assert b.union(a) == expected


def test_span_rejects_an_end_before_its_start() -> None:
    """A span may be one day long but not end before it starts."""
    assert span("2020-01-02", "2020-01-02").first == d("2020-01-02")
    with pytest.raises(ValueError, match="starts 2020-01-03, after its end 2020-01-02"):
        span("2020-01-03", "2020-01-02")


# --- ActionsPlan.checked: the record after a request ---------------------------------------------


@pytest.mark.parametrize(
    ("plan", "since", "names", "through", "expected"),
    [
        pytest.param(
            plan_actions([PG], [], {}, provider="polygon"),
            d("2025-01-02"), ("PG",), THROUGH, {"PG": span("2025-01-02", "2026-11-20")},
            id="first-check-runs-to-through",
        ),
        pytest.param(
            plan_actions(
                [busy("PG", "2026-11-20", "2026-11-20")], [held("PG", "2020-01-02", "2026-11-19")],
                {"PG": span("2020-01-02", "2026-11-19")}, provider="polygon",
            ),
            d("2026-10-20"), ("PG",), THROUGH, {"PG": span("2020-01-02", "2026-11-20")},
            id="recheck-merges-with-the-known-span",
        ),
        pytest.param(
            plan_actions(
                [busy("PG", "2021-01-04", "2022-12-30")], [held("PG", "2023-01-03", "2026-11-20")],
                {"PG": span("2023-01-03", "2026-11-20")}, provider="polygon",
            ),
            d("2021-01-04"), ("PG",), THROUGH, {"PG": span("2021-01-04", "2026-11-20")},
            id="backwards-merges-with-the-known-span",
        ),
        pytest.param(
            plan_actions(
                [busy("PG", "2026-11-20", "2026-11-20")], [held("PG", "2020-01-02", "2026-11-19")],
                {"PG": span("2010-01-04", "2026-11-19")}, provider="polygon",
            ),
            d("2026-10-20"), ("PG",), THROUGH, {"PG": span("2010-01-04", "2026-11-20")},
            id="known-days-before-the-bars-kept",
        ),
        pytest.param(
            plan_actions(
                [busy("PG", "2026-11-20", "2026-11-20")],
                [held("PG", "2020-01-02", "2026-11-19", "yahoo")],
                {"PG": span("2010-01-04", "2026-11-19")}, provider="polygon",
            ),
            d("2020-01-02"), ("PG",), THROUGH, {"PG": span("2020-01-02", "2026-11-20")},
            id="untrusted-check-replaced",
        ),
        pytest.param(
            plan_actions([busy("PG", "2026-11-20", "2026-11-27")], [], {}, provider="polygon"),
            d("2026-11-20"), ("PG",), THROUGH, {"PG": span("2026-11-20", "2026-11-27")},
            id="wanted-days-past-through",
        ),
        pytest.param(
            plan_actions([PG], [], {}, provider="polygon"),
            d("2025-01-02"), ("PG",), d("2027-01-04"), {"PG": span("2025-01-02", "2027-01-04")},
            id="through-past-the-wanted-days",
        ),
        pytest.param(
            plan_actions(
                [busy("AAPL", "2024-01-02", "2026-11-27"), busy("PG", "2025-01-02", "2025-12-31")],
                [], {}, provider="polygon",
            ),
            d("2024-01-02"), ("AAPL", "PG"), THROUGH,
            {"AAPL": span("2024-01-02", "2026-11-27"), "PG": span("2024-01-02", "2026-11-27")},
            id="shared-request-one-span-for-all",
        ),
        pytest.param(
            plan_actions(
                [busy("AAPL", "2024-01-02", "2026-11-20"), PG], [], {}, provider="polygon"
            ),
            d("2024-01-02"), ("PG",), THROUGH, {"PG": span("2024-01-02", "2026-11-20")},
            id="only-the-names-given",
        ),
    ],
)  # fmt: skip
def test_checked_after_a_request(
    plan: ActionsPlan,
    since: dt.date,
    names: tuple[str, ...],
    through: dt.date,
    expected: dict[str, Span],
) -> None:
    """What a request from ``since`` checked: from ``since`` to the present (``through`` or the
    last day wanted, whichever is later), joined with what was known and still true."""
    assert plan.checked(since, names, through) == expected


# --- read_checked / save_checked: the stored record --------------------------------------------


@dataclass
class StateStore:
    """Just the service-state part of a :class:`Store`."""

    state: dict[str, str] = field(default_factory=dict)
    writes: int = 0

    async def get_state(self, key: str) -> str | None:
        return self.state.get(key)

    async def set_state(self, key: str, value: str | None, *, at: dt.datetime) -> None:
        self.writes += 1
        if value is None:
            self.state.pop(key, None)
        else:
            self.state[key] = value


def as_store(fake: StateStore) -> Store:
    """``fake`` typed as the store it stands in for (only its state methods are called)."""
    return cast("Store", fake)


@pytest.mark.parametrize(
    ("before", "saved", "after"),
    [
        pytest.param({}, {}, {}, id="nothing-saved-to-nothing"),
        pytest.param(
            {}, {"PG": span("2025-01-02", "2026-11-20")}, {"PG": span("2025-01-02", "2026-11-20")},
            id="first-record",
        ),
        pytest.param(
            {"PG": span("2025-01-02", "2026-11-20")}, {},
            {"PG": span("2025-01-02", "2026-11-20")}, id="nothing-saved-keeps-the-record",
        ),
        pytest.param(
            {"PG": span("2020-01-02", "2026-11-19"), "XOM": span("2021-01-04", "2026-11-19")},
            {"PG": span("2025-01-02", "2026-11-20")},
            {"PG": span("2025-01-02", "2026-11-20"), "XOM": span("2021-01-04", "2026-11-19")},
            id="same-symbol-replaced-others-kept",
        ),
        pytest.param(
            {"PG": span("2020-01-02", "2026-11-19")},
            {"AAPL": span("2024-01-02", "2026-11-20"), "XOM": span("2024-01-02", "2026-11-20")},
            {
                "AAPL": span("2024-01-02", "2026-11-20"),
                "PG": span("2020-01-02", "2026-11-19"),
                "XOM": span("2024-01-02", "2026-11-20"),
            },
            id="new-symbols-added",
        ),
    ],
)  # fmt: skip
async def test_save_checked_merges_by_symbol(
    before: dict[str, Span], saved: dict[str, Span], after: dict[str, Span]
) -> None:
    """Saving replaces the spans of the symbols saved and keeps the others; saving nothing
    writes nothing."""
    fake = StateStore()
    store = as_store(fake)
    if before:
        await save_checked(store, "polygon", before, at=AT)
    writes = fake.writes
    await save_checked(store, "polygon", saved, at=AT)
    assert await read_checked(store, "polygon") == after
    assert fake.writes == writes + (1 if saved else 0)


async def test_checked_record_is_per_provider() -> None:
    """Each provider has its own record under ``actions_checked:{provider}``, stored as
    sorted JSON of ISO dates; another provider's record is not read."""
    fake = StateStore()
    store = as_store(fake)
    await save_checked(store, "polygon", {"PG": span("2020-01-02", "2026-11-20")}, at=AT)
    await save_checked(store, "yahoo", {"XOM": span("2021-01-04", "2026-11-20")}, at=AT)
    assert await read_checked(store, "polygon") == {"PG": span("2020-01-02", "2026-11-20")}
    assert await read_checked(store, "yahoo") == {"XOM": span("2021-01-04", "2026-11-20")}
    assert await read_checked(store, SYNTHETIC) == {}
    assert json.loads(fake.state[CHECKED_KEY.format(provider="polygon")]) == {
        "PG": ["2020-01-02", "2026-11-20"]
    }


# --- properties --------------------------------------------------------------------------------

BASE = dt.date(2026, 1, 1)
TODAY = BASE + dt.timedelta(days=400)  # after every generated day
NAMES = ("AAPL", "MSFT", "PG", "XOM")
PROVIDERS = ("polygon", "yahoo", SYNTHETIC)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    """A span of days within 400 days of :data:`BASE` (a year of RECHECK and more)."""
    a, b = sorted(draw(st.integers(0, 400)) for _ in range(2))
    return Span(first=BASE + dt.timedelta(days=a), last=BASE + dt.timedelta(days=b))


@dataclass(frozen=True, kw_only=True)
class World:
    """Planner inputs: symbol plans, statuses and the provider's record."""

    symbols: list[SymbolPlan]
    stored: list[SymbolStatus]
    checked: dict[str, Span]
    provider: str


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Any mix of busy and idle symbols, stored or not by any source, checked or not."""
    provider = draw(st.sampled_from(PROVIDERS))
    symbols: list[SymbolPlan] = []
    stored: list[SymbolStatus] = []
    checked: dict[str, Span] = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES))):
        days, work = draw(spans()), draw(st.sampled_from(["range", "grouped", "none"]))
        symbols.append(
            SymbolPlan(
                symbol=name,
                missing=1,
                refresh=0,
                start=days.first,
                end=days.last,
                range_calls=int(work == "range"),
                grouped_sessions=int(work == "grouped"),
            )
        )
        row = draw(st.sampled_from(["none", "empty", "bars"]))
        if row != "none":
            bars = draw(spans()) if row == "bars" else None
            source = draw(st.sampled_from([*PROVIDERS, None]))
            stored.append(
                replace(
                    held(name, None, None, source),
                    first_date=bars.first if bars else None,
                    last_date=bars.last if bars else None,
                )
            )
        if draw(st.booleans()):
            checked[name] = draw(spans())
    return World(symbols=symbols, stored=stored, checked=checked, provider=provider)


def covered(plan: ActionsPlan, symbol: str) -> Span | None:
    """The days ``symbol``'s actions are known for once ``plan``'s requests are answered."""
    asked = [since for since, names in plan.requests.items() if symbol in names]
    done = Span(first=asked[0], last=TODAY) if asked else None
    known = plan.known.get(symbol)
    if done is None:
        return known
    if known is not None and known.last < done.first - dt.timedelta(days=1):
        return None  # a hole between what was known and what is asked: not covered
    return done.union(known)


@given(worlds())
def test_every_wanted_day_is_covered_and_nothing_more_asked(world: World) -> None:
    """Every symbol with work (and no simulated bars to replace) is asked about once or not at
    all; once answered, its actions are known over every day it wants without a hole; a symbol
    whose trusted check already covers those days is not asked; nothing else is asked."""
    plan = plan_actions(world.symbols, world.stored, world.checked, provider=world.provider)
    asked = [name for names in plan.requests.values() for name in names]
    assert len(asked) == len(set(asked))
    assert set(asked) <= set(plan.wanted)
    assert not plan.later & set(plan.wanted)
    working = {s.symbol for s in world.symbols if s.range_calls or s.grouped_sessions}
    assert set(plan.wanted) | plan.later == working
    for symbol, wanted in plan.wanted.items():
        known = plan.known.get(symbol)
        assert known is None or known == world.checked[symbol]
        already = known is not None and known.first <= wanted.first and wanted.last <= known.last
        assert (symbol in asked) != already, (symbol, wanted, known)
        done = covered(plan, symbol)
        assert done is not None
        assert done.first <= wanted.first
        assert wanted.last <= done.last


def run(world: World, *, through: dt.date = TODAY) -> World:
    """``world`` after a backfill whose every request succeeds: actions asked as planned and
    recorded, the bars fetched (now the provider's), then the simulated-bar symbols planned
    again with nothing trusted."""
    record = dict(world.checked)
    plan = plan_actions(world.symbols, world.stored, record, provider=world.provider)
    for since, names in plan.requests.items():
        record.update(plan.checked(since, names, through))
    statuses = {s.symbol: s for s in world.stored}
    for symbol in (s for s in world.symbols if s.range_calls or s.grouped_sessions):
        assert symbol.start is not None
        assert symbol.end is not None
        days = Span(first=symbol.start, last=symbol.end)
        before = statuses.get(symbol.symbol)
        if before is not None and before.first_date and before.last_date:
            days = days.union(Span(first=before.first_date, last=before.last_date))
        row = before or held(symbol.symbol, None, None)
        statuses[symbol.symbol] = replace(
            row, first_date=days.first, last_date=days.last, source=world.provider
        )
    stored = list(statuses.values())
    replaced = [s for s in world.symbols if s.symbol in plan.later]
    again = plan_actions(replaced, stored, {}, provider=world.provider)
    assert not again.later
    for since, names in again.requests.items():
        record.update(again.checked(since, names, through))
    return World(symbols=world.symbols, stored=stored, checked=record, provider=world.provider)


@given(worlds())
def test_after_a_run_the_same_plan_asks_nothing(world: World) -> None:
    """Once a backfill's actions requests are answered and recorded, planning the same work
    again asks for nothing, leaves nothing for later and trusts every recorded check; the
    record only grows for the symbols asked about with a trusted check."""
    done = run(world)
    plan = plan_actions(done.symbols, done.stored, done.checked, provider=done.provider)
    assert plan.requests == {}
    assert not plan.later
    assert set(plan.known) == set(plan.wanted)
    first = plan_actions(world.symbols, world.stored, world.checked, provider=world.provider)
    for symbol, known in first.known.items():
        assert done.checked[symbol].union(known) == done.checked[symbol]


@given(worlds(), st.integers(1, 400))
def test_a_later_run_rechecks_only_recent_days(world: World, days: int) -> None:
    """After a run, a backfill of the next days asks each symbol only from :data:`RECHECK`
    before its last check, never from further back."""
    done = run(world)
    later = TODAY + dt.timedelta(days=days)
    symbols = [
        replace(s, start=TODAY + dt.timedelta(days=1), end=later)
        for s in done.symbols
        if s.range_calls or s.grouped_sessions
    ]
    plan = plan_actions(symbols, done.stored, done.checked, provider=done.provider)
    expected: dict[dt.date, list[str]] = {}
    for s in symbols:
        expected.setdefault(done.checked[s.symbol].last - RECHECK, []).append(s.symbol)
    assert plan.requests == {k: tuple(sorted(v)) for k, v in sorted(expected.items())}
