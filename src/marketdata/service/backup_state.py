"""What ``/metrics`` knows about backups: the newest attempt and the last success, kept as one
JSON value in ``service_state`` (pure: building, reading and writing the value)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass


def iso_utc(value: dt.datetime) -> str:
    """A stored time: UTC ISO text with microseconds."""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def parse_aware(value: object) -> dt.datetime:
    """A stored time back; ValueError unless it is ISO text with an offset."""
    when = dt.datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        raise ValueError(f"time {value!r} has no offset")
    return when


# -- the recorded state -------------------------------------------------------------

#: ``service_state`` key holding :class:`BackupState` as JSON.
STATE_KEY = "backup"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupState:
    """The newest backup attempt, and when a backup last succeeded.

    ``ok`` means written and, when verification ran, verified; a backup taken with
    ``--no-verify`` is ok but not verified.
    """

    at: dt.datetime
    ok: bool
    name: str | None = None
    verified: bool | None = None
    size: int | None = None
    error: str | None = None
    last_success: dt.datetime | None = None
    last_success_name: str | None = None

    def to_json(self) -> str:
        """The stored text."""
        return json.dumps(
            {
                "at": iso_utc(self.at),
                "ok": self.ok,
                "name": self.name,
                "verified": self.verified,
                "size": self.size,
                "error": self.error,
                "last_success": iso_utc(self.last_success) if self.last_success else None,
                "last_success_name": self.last_success_name,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> BackupState | None:
        """Parse the stored text; None when absent or unreadable (as if no backup ran)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(
                at=parse_aware(data["at"]),
                ok=bool(data["ok"]),
                name=data.get("name"),
                verified=data.get("verified"),
                size=data.get("size"),
                error=data.get("error"),
                last_success=parse_aware(data["last_success"])
                if data.get("last_success")
                else None,
                last_success_name=data.get("last_success_name"),
            )
        except (ValueError, TypeError, KeyError):
            return None


def next_state(
    previous: BackupState | None,
    *,
    at: dt.datetime,
    name: str | None,
    ok: bool,
    verified: bool | None,
    size: int | None,
    error: str | None,
) -> BackupState:
    """The state after an attempt taken at ``at``: the attempt, and the last success carried
    forward unless this one succeeded."""
    last, last_name = (
        (previous.last_success, previous.last_success_name) if previous else (None, None)
    )
    if ok:
        last, last_name = at, name
    return BackupState(
        at=at,
        ok=ok,
        name=name,
        verified=verified,
        size=size,
        error=error,
        last_success=last,
        last_success_name=last_name,
    )
