"""Backups, the pure part: file names, the manifest, comparing digests, retention.

No I/O here: :mod:`marketdata.service.backup_run` takes and
:mod:`marketdata.service.backup_restore` verifies and restores backups with the storage
layer's dump and digest functions, and decides with these.

A backup is two files in the backup directory: the copy (``marketdata-20261125T030000Z.sqlite``
or ``….pgdump``; names sort by time) and its manifest (``<name>.manifest.json``): when and from
where it was taken, the schema revision, every table's row count and content digest, the
copy's own SHA-256 and size, the marketdata version, and whether it was verified (restored
into a scratch database whose digests matched).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from marketdata.errors import InputError
from marketdata.service.backup_state import iso_utc, parse_aware
from marketdata.storage.snapshot import DIGEST_ALGORITHM, Snapshot, TableDigest
from marketdata.storage.urls import Backend

#: Manifest layout version; a manifest with a higher one was written by a newer marketdata.
MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"
PREFIX = "marketdata-"
EXTENSIONS: Mapping[str, str] = {"sqlite": ".sqlite", "postgresql": ".pgdump"}
_STAMP = "%Y%m%dT%H%M%SZ"

TableStatus = Literal["match", "mismatch", "missing", "unexpected"]


# -- names ------------------------------------------------------------------------------------


def backup_name(at: dt.datetime, backend: str, *, taken: Iterable[str] = ()) -> str:
    """``marketdata-<UTC time>.<ext>``; the next free second when that name is ``taken``, so
    names stay unique and in the order the backups were taken."""
    if at.tzinfo is None:
        msg = "backup time must be timezone-aware"
        raise ValueError(msg)
    used = set(taken)
    when = at.astimezone(dt.UTC).replace(microsecond=0)
    while True:
        name = f"{PREFIX}{when.strftime(_STAMP)}{EXTENSIONS[backend]}"
        if name not in used:
            return name
        when += dt.timedelta(seconds=1)


def manifest_name(name: str) -> str:
    """The manifest file's name for backup ``name``."""
    return name + MANIFEST_SUFFIX


def is_backup_name(name: str) -> bool:
    """Whether ``name`` looks like a backup file this module named."""
    return name.startswith(PREFIX) and name.endswith(tuple(EXTENSIONS.values()))


# -- manifests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a backup holds and how to check it."""

    name: str
    created: dt.datetime
    backend: Backend
    schema_revision: str | None
    tables: Mapping[str, TableDigest]
    file_size: int
    file_sha256: str
    marketdata_version: str
    source: str  # where it was taken from, for humans (never a password)
    tool: str
    digest: str = DIGEST_ALGORITHM
    verified: bool | None = None  # None: not verified (yet, or --no-verify)
    verified_at: dt.datetime | None = None
    verify_error: str | None = None
    format: int = MANIFEST_FORMAT

    @property
    def rows(self) -> int:
        """Rows in all tables."""
        return sum(t.rows for t in self.tables.values())

    def with_verification(
        self, *, verified: bool, at: dt.datetime, error: str | None = None
    ) -> Manifest:
        """This manifest after a verification."""
        return replace(self, verified=verified, verified_at=at, verify_error=error)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready values."""
        return {
            "format": self.format,
            "name": self.name,
            "created": iso_utc(self.created),
            "backend": self.backend,
            "schema_revision": self.schema_revision,
            "marketdata_version": self.marketdata_version,
            "source": self.source,
            "tool": self.tool,
            "file": {"name": self.name, "size": self.file_size, "sha256": self.file_sha256},
            "digest": self.digest,
            "rows": self.rows,
            "tables": {
                name: {"rows": t.rows, "sha256": t.sha256}
                for name, t in sorted(self.tables.items())
            },
            "verified": self.verified,
            "verified_at": iso_utc(self.verified_at) if self.verified_at else None,
            "verify_error": self.verify_error,
        }

    def to_json(self) -> str:
        """The manifest file's text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str) -> Manifest:
        """Parse a manifest file's text; ``where`` names it in errors."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            version = int(data["format"])
            if version > MANIFEST_FORMAT:
                msg = (
                    f"{where} has manifest format {version}: it was written by a newer "
                    "marketdata; use that version to read it"
                )
                raise InputError(msg)
            backend = data["backend"]
            if backend not in get_args(Backend):
                raise ValueError(f"unknown backend {backend!r}")
            return cls(
                name=str(data["name"]),
                created=parse_aware(data["created"]),
                backend=backend,
                schema_revision=data["schema_revision"],
                tables={
                    str(name): TableDigest(rows=int(t["rows"]), sha256=str(t["sha256"]))
                    for name, t in data["tables"].items()
                },
                file_size=int(data["file"]["size"]),
                file_sha256=str(data["file"]["sha256"]),
                marketdata_version=str(data["marketdata_version"]),
                source=str(data.get("source", "")),
                tool=str(data.get("tool", "")),
                digest=str(data["digest"]),
                verified=data.get("verified"),
                verified_at=parse_aware(data["verified_at"]) if data.get("verified_at") else None,
                verify_error=data.get("verify_error"),
                format=version,
            )
        except InputError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            msg = f"{where} is not a valid backup manifest ({detail})"
            raise InputError(msg) from None


# -- comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TableCheck:
    """One table: what the manifest says and what the restored database holds."""

    table: str
    expected: TableDigest | None
    actual: TableDigest | None

    @property
    def status(self) -> TableStatus:
        """``match``, ``mismatch``, ``missing`` (not restored) or ``unexpected`` (extra)."""
        if self.expected is None:
            return "unexpected"
        if self.actual is None:
            return "missing"
        return "match" if self.expected == self.actual else "mismatch"


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """A restored database against its backup's manifest."""

    tables: tuple[TableCheck, ...]
    expected_revision: str | None
    actual_revision: str | None

    @property
    def revision_matches(self) -> bool:
        """Whether the restored schema revision is the manifest's."""
        return self.expected_revision == self.actual_revision

    @property
    def differing(self) -> list[str]:
        """Tables that do not match, by name."""
        return [t.table for t in self.tables if t.status != "match"]

    @property
    def matches(self) -> bool:
        """Every table and the revision match."""
        return self.revision_matches and not self.differing

    def describe(self) -> str:
        """One line naming what differs (empty when everything matches)."""
        parts = []
        if not self.revision_matches:
            parts.append(
                f"schema revision {self.actual_revision or 'none'} (manifest: "
                f"{self.expected_revision or 'none'})"
            )
        for check in self.tables:
            if check.status == "mismatch":
                assert check.expected is not None  # mismatch implies both
                assert check.actual is not None
                rows = (
                    f"{check.actual.rows:,} rows, manifest {check.expected.rows:,}"
                    if check.actual.rows != check.expected.rows
                    else "same row count, different content"
                )
                parts.append(f"{check.table} ({rows})")
            elif check.status != "match":
                parts.append(f"{check.table} ({check.status})")
        return "; ".join(parts)


def compare(manifest: Manifest, restored: Snapshot) -> Comparison:
    """Each table of ``manifest`` against the digests of the restored database."""
    names = sorted(set(manifest.tables) | set(restored.tables))
    return Comparison(
        tables=tuple(
            TableCheck(table=n, expected=manifest.tables.get(n), actual=restored.tables.get(n))
            for n in names
        ),
        expected_revision=manifest.schema_revision,
        actual_revision=restored.revision,
    )


# -- retention ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupRecord:
    """What retention needs to know about one backup."""

    name: str
    created: dt.datetime
    verified: bool | None
    source: str = ""  # the database it copies: retention applies per source


def retention(
    records: Sequence[BackupRecord], *, now: dt.datetime, keep_daily: int, keep_weekly: int
) -> dict[str, str]:
    """The backups to keep, each with why; every other one may be deleted.

    Each source database's backups are counted apart (a directory may hold several):

    - **daily**: the newest backup of each of the last ``keep_daily`` UTC days (today
      included);
    - **weekly**: the newest of each of the last ``keep_weekly`` ISO weeks (this one
      included);
    - **newest verified**: the newest backup that passed verification is always kept, even
      when newer ones failed theirs or retention would drop it;
    - a backup dated after ``now`` (a clock moved back) is kept.
    """
    sources = sorted({r.source for r in records})
    kept: dict[str, str] = {}
    for source in sources:
        group = [r for r in records if r.source == source]
        kept.update(_retain(group, now=now, keep_daily=keep_daily, keep_weekly=keep_weekly))
    return kept


def _retain(
    records: Sequence[BackupRecord], *, now: dt.datetime, keep_daily: int, keep_weekly: int
) -> dict[str, str]:
    """:func:`retention` for the backups of one source."""
    today = now.astimezone(dt.UTC).date()
    this_week = today - dt.timedelta(days=today.weekday())
    newest = sorted(records, key=lambda r: (r.created, r.name), reverse=True)
    reasons: dict[str, list[str]] = {}
    seen_days: set[dt.date] = set()
    seen_weeks: set[dt.date] = set()
    for record in newest:
        day = record.created.astimezone(dt.UTC).date()
        week = day - dt.timedelta(days=day.weekday())
        if day > today:
            reasons.setdefault(record.name, []).append("dated after now")
            continue
        if (today - day).days < keep_daily and day not in seen_days:
            seen_days.add(day)
            reasons.setdefault(record.name, []).append(f"daily {day.isoformat()}")
        if (this_week - week).days // 7 < keep_weekly and week not in seen_weeks:
            seen_weeks.add(week)
            year, number, _ = day.isocalendar()
            reasons.setdefault(record.name, []).append(f"weekly {year}-W{number:02d}")
    verified = next((r for r in newest if r.verified), None)
    if verified is not None:
        reasons.setdefault(verified.name, []).insert(0, "newest verified")
    return {name: ", ".join(why) for name, why in reasons.items()}
