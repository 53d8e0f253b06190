"""Crontab expressions with their standard meaning, as APScheduler triggers (UTC).

APScheduler's ``CronTrigger.from_crontab`` numbers weekdays from Monday (0 = Monday), while
cron, and everyone who writes ``0 3 * * 0`` for "Sundays at 03:00", numbers them from Sunday
(0 or 7 = Sunday). Here the day-of-week field is read the standard way (numbers, names, ranges,
lists and steps) and handed to APScheduler as day names, which mean the same thing to both.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from apscheduler.triggers.cron import CronTrigger

_NAMES: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_PART = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def _day(token: str) -> int:
    if token.isdigit():
        value = int(token)
        if value > 7:
            msg = f"day of week {value} is not 0-7"
            raise ValueError(msg)
        return value % 7
    if token[:3] in _NAMES and len(token) >= 3:
        return _NAMES.index(token[:3])
    msg = f"unknown day of week {token!r}"
    raise ValueError(msg)


def _weekdays(field: str) -> str:
    """A standard day-of-week field as APScheduler day names (``*`` unchanged)."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.lower().split(","):
        match = _PART.match(part)
        if match is None:
            msg = f"cannot read day of week {part!r}"
            raise ValueError(msg)
        span, step = match["range"], int(match["step"] or 1)
        if step < 1:
            msg = "a step must be at least 1"
            raise ValueError(msg)
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-")
            first, last = _day(low), int(high) if high == "7" else _day(high)
        else:
            first = last = _day(span)
        if first > last:
            msg = f"day-of-week range {span!r} runs backwards"
            raise ValueError(msg)
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_NAMES[d] for d in sorted(days))


def parse_crontab(expr: str) -> CronTrigger:
    """``minute hour day month weekday`` in UTC; ``ValueError`` saying what is wrong."""
    fields = expr.split()
    if len(fields) != 5:
        msg = (
            "a crontab has 5 fields (minute hour day month weekday), "
            f"e.g. '0 2 * * *'; got {expr!r}"
        )
        raise ValueError(msg)
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekdays(weekday),
        timezone=dt.UTC,
    )
