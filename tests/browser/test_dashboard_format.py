"""The dashboard's pure JavaScript helpers (``format.js``, ``nextPage`` in ``common.js``), run in
Chromium from tables of cases: one page load, every case checked."""

from __future__ import annotations

from typing import Any

import pytest

#: Runs each (function, arguments) case; ``{"$date": iso}`` arguments become ``Date`` objects.
RUN_CASES = """async ([module, cases]) => {
  const helpers = await import(module);
  const value = (a) => (a && typeof a === "object" && "$date" in a ? new Date(a.$date) : a);
  return cases.map(([name, args]) => helpers[name](...args.map(value)));
}"""

NOW = {"$date": "2026-11-24T05:00:00Z"}

FORMAT_CASES: list[tuple[str, list[Any], Any]] = [
    ("count", [1234567], "1,234,567"),
    ("count", [0], "0"),
    ("count", [None], "—"),
    ("percent", [0.999203], "99.92 %"),
    ("percent", [1], "100 %"),
    ("percent", [0], "0 %"),
    ("percent", [0.5], "50.00 %"),
    ("percent", [0.99999], "99.99 %"),  # never rounded up to 100 % while a bar is invalid
    ("percent", [None], "—"),
    ("invalidBars", [501, 0.998004], 1),
    ("invalidBars", [1255, 1], 0),
    ("invalidBars", [0, None], 0),
    ("duration", [45], "45 s"),
    ("duration", [720], "12 min"),
    ("duration", [10800], "3 h"),
    ("duration", [-7200], "2 h"),
    ("duration", [172800], "2 d"),
    ("relative", ["2026-11-24T02:00:00Z", NOW], "3 h ago"),
    ("relative", ["2026-11-24T10:00:00Z", NOW], "in 5 h"),
    ("relative", ["2026-11-24T05:00:10Z", NOW], "just now"),
    ("relative", [None, NOW], "—"),
    ("timestamp", ["2026-11-24T02:00:03Z"], "2026-11-24 02:00 UTC"),
    ("timestamp", ["2026-11-24T03:00:00+01:00"], "2026-11-24 02:00 UTC"),
    ("timestamp", [None], "—"),
    ("price", [123.4], "123.40"),
    ("price", [0.1234], "0.1234"),
    ("price", [None], "—"),
    ("freshness", [{"fresh": True, "sessions_behind": 0}], {"label": "✓ fresh", "tone": "ok"}),
    (
        "freshness",
        [{"fresh": False, "sessions_behind": 1}],
        {"label": "⚠ stale · 1 session behind", "tone": "bad"},
    ),
    (
        "freshness",
        [{"fresh": False, "sessions_behind": 5}],
        {"label": "⚠ stale · 5 sessions behind", "tone": "bad"},
    ),
    (
        "freshness",
        [{"fresh": False, "sessions_behind": None}],
        {"label": "no data", "tone": "warn"},
    ),
    ("shade", [{"sessions": 0, "present": 0, "valid": 0}], "none"),
    ("shade", [{"sessions": 21, "present": 21, "valid": 21}], "q4"),
    ("shade", [{"sessions": 21, "present": 21, "valid": 20}], "q3"),
    ("shade", [{"sessions": 21, "present": 12, "valid": 11}], "q2"),
    ("shade", [{"sessions": 21, "present": 1, "valid": 1}], "q1"),
    ("shade", [{"sessions": 21, "present": 0, "valid": 0}], "q0"),
    (
        "cellText",
        ["MSFT", {"month": "2024-12", "sessions": 21, "present": 20, "valid": 19}],
        "MSFT 2024-12: 20 of 21 sessions stored, 1 missing, 1 invalid",
    ),
    (
        "cellText",
        ["MSFT", {"month": "2024-11", "sessions": 20, "present": 20, "valid": 20}],
        "MSFT 2024-11: 20 of 20 sessions stored",
    ),
    (
        "cellText",
        ["MSFT", {"month": "2019-01", "sessions": 0, "present": 0, "valid": 0}],
        "MSFT 2019-01: before the stored history",
    ),
    ("splitRatio", [1, 4], "4-for-1"),
    ("splitRatio", [10, 1], "1-for-10"),
    ("splitRatio", [2, 3], "3-for-2"),
    ("splitRatio", [1, 1.5], "1.5-for-1"),
    ("rangeStart", ["1M", "2024-03-31"], "2024-03-01"),
    ("rangeStart", ["6M", "2024-08-31"], "2024-03-01"),
    ("rangeStart", ["1Y", "2024-11-20"], "2023-11-21"),
    ("rangeStart", ["5Y", "2026-11-24"], "2021-11-25"),
    ("rangeStart", ["all", "2024-01-01"], None),
]

NEXT_PAGE_CASES: list[tuple[str, list[Any], Any]] = [
    ("nextPage", [{"per_symbol": []}, "/api/v1/status"], None),
    ("nextPage", [{"next": None}, "/api/v1/status"], None),
    (
        "nextPage",
        [{"next": "/api/v1/status?cursor=b"}, "/api/v1/status"],
        "/api/v1/status?cursor=b",
    ),
    ("nextPage", [{"next": "abc"}, "/api/v1/status"], "/api/v1/status?cursor=abc"),
    ("nextPage", [{"next": {"href": "/api/v1/status?page=2"}}, "/x"], "/api/v1/status?page=2"),
    (
        "nextPage",
        [{"next_cursor": "a b"}, "/api/v1/historical/A?start=2024-01-02"],
        "/api/v1/historical/A?start=2024-01-02&cursor=a%20b",
    ),
]


@pytest.mark.parametrize(
    ("module", "cases"),
    [
        ("/dashboard/static/format.js", FORMAT_CASES),
        ("/dashboard/static/common.js", NEXT_PAGE_CASES),
    ],
    ids=["format", "next-page"],
)
def test_helpers_give_the_expected_text(
    site: str, page: Any, module: str, cases: list[tuple[str, list[Any], Any]]
) -> None:
    """Each helper returns the tabled answer for each tabled input."""
    page.goto(f"{site}/dashboard")  # same origin as the modules
    got = page.evaluate(RUN_CASES, [module, [[name, args] for name, args, _ in cases]])
    wrong = [
        (name, args, expected, answer)
        for (name, args, expected), answer in zip(cases, got, strict=True)
        if answer != expected
    ]
    assert wrong == []
