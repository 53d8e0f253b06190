"""Backup retention over a simulated calendar, and the other pure backup decisions: names,
manifests, comparisons, the recorded state."""

from __future__ import annotations

import datetime as dt

import pytest

from marketdata.errors import InputError
from marketdata.service.backup import (
    BackupRecord,
    Manifest,
    backup_name,
    compare,
    is_backup_name,
    manifest_name,
    retention,
)
from marketdata.service.backup_state import BackupState, next_state
from marketdata.storage.snapshot import Snapshot, TableDigest

#: A Wednesday, mid-day UTC.
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def daily(days: int, *, unverified_last: int = 0) -> list[BackupRecord]:
    """One backup at 03:00 UTC on each of the ``days`` days up to NOW's; the last
    ``unverified_last`` of them failed verification."""
    first = NOW.date() - dt.timedelta(days=days - 1)
    records = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        created = dt.datetime.combine(day, dt.time(3), dt.UTC)
        records.append(
            BackupRecord(
                name=backup_name(created, "sqlite"),
                created=created,
                verified=i < days - unverified_last,
            )
        )
    return records


def kept_days(kept: dict[str, str], records: list[BackupRecord]) -> list[str]:
    """The dates of the kept backups, oldest first."""
    return sorted(r.created.date().isoformat() for r in records if r.name in kept)


def test_120_days_keep_7_daily_and_8_weekly() -> None:
    """Daily backups for 120 days: the last 7 days, plus the newest of each of the last 8 ISO
    weeks (this week's is today's, the earlier ones are Sundays)."""
    records = daily(120)
    kept = retention(records, now=NOW, keep_daily=7, keep_weekly=8)
    assert kept_days(kept, records) == [
        "2026-10-11",
        "2026-10-18",
        "2026-10-25",
        "2026-11-01",
        "2026-11-08",
        "2026-11-15",
        "2026-11-19",
        "2026-11-20",
        "2026-11-21",
        "2026-11-22",
        "2026-11-23",
        "2026-11-24",
        "2026-11-25",
    ]
    today = backup_name(dt.datetime(2026, 11, 25, 3, tzinfo=dt.UTC), "sqlite")
    assert kept[today] == "newest verified, daily 2026-11-25, weekly 2026-W48"
    sunday = backup_name(dt.datetime(2026, 11, 15, 3, tzinfo=dt.UTC), "sqlite")
    assert kept[sunday] == "weekly 2026-W46"


def test_newest_verified_survives_when_newer_ones_failed() -> None:
    """The last 12 backups failed verification: the newest good one (a Friday, neither in the
    daily window nor a week's newest) is kept anyway, and only it beyond the windows."""
    records = daily(120, unverified_last=12)
    kept = retention(records, now=NOW, keep_daily=7, keep_weekly=2)
    friday = backup_name(dt.datetime(2026, 11, 13, 3, tzinfo=dt.UTC), "sqlite")
    assert kept[friday] == "newest verified"
    assert kept_days(kept, records) == [
        "2026-11-13",
        "2026-11-19",
        "2026-11-20",
        "2026-11-21",
        "2026-11-22",
        "2026-11-23",
        "2026-11-24",
        "2026-11-25",
    ]


def test_zero_windows_keep_only_the_newest_verified() -> None:
    """With no daily or weekly slots, everything but the newest verified backup goes."""
    records = daily(30, unverified_last=3)
    kept = retention(records, now=NOW, keep_daily=0, keep_weekly=0)
    assert kept_days(kept, records) == ["2026-11-22"]
    assert retention(daily(5, unverified_last=5), now=NOW, keep_daily=0, keep_weekly=0) == {}


def test_several_a_day_keep_the_newest_and_future_ones_are_kept() -> None:
    """Two backups today: the later one holds the daily slot; one dated after now is kept."""
    morning = dt.datetime(2026, 11, 25, 3, tzinfo=dt.UTC)
    noon = dt.datetime(2026, 11, 25, 11, 59, tzinfo=dt.UTC)
    future = NOW + dt.timedelta(days=2)
    records = [
        BackupRecord(name="a", created=morning, verified=True),
        BackupRecord(name="b", created=noon, verified=False),
        BackupRecord(name="c", created=future, verified=False),
    ]
    kept = retention(records, now=NOW, keep_daily=7, keep_weekly=0)
    assert kept == {"a": "newest verified", "b": "daily 2026-11-25", "c": "dated after now"}


def test_each_source_database_is_retained_apart() -> None:
    """Backups of two databases in one directory: each keeps its own newest verified and its
    own daily slot, however much newer the other's are."""
    old = dt.datetime(2026, 10, 1, 3, tzinfo=dt.UTC)
    records = [
        BackupRecord(name="lite-1", created=old, verified=True, source="sqlite a.db"),
        BackupRecord(
            name="lite-2", created=old.replace(hour=4), verified=True, source="sqlite a.db"
        ),
        BackupRecord(
            name="pg-1", created=NOW.replace(hour=3), verified=True, source="postgresql db"
        ),
        BackupRecord(
            name="pg-2", created=NOW.replace(hour=11), verified=False, source="postgresql db"
        ),
    ]
    kept = retention(records, now=NOW, keep_daily=7, keep_weekly=0)
    assert kept == {
        "lite-2": "newest verified",
        "pg-1": "newest verified",
        "pg-2": "daily 2026-11-25",
    }


def test_names_sort_by_time_and_skip_taken_seconds() -> None:
    """Names carry the UTC second; a taken name moves to the next free second."""
    at = dt.datetime(2026, 11, 25, 4, 0, 0, 500, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    first = backup_name(at, "postgresql")
    assert first == "marketdata-20261125T030000Z.pgdump"
    second = backup_name(at, "postgresql", taken=[first])
    assert second == "marketdata-20261125T030001Z.pgdump"
    assert sorted([second, first]) == [first, second]
    assert manifest_name(first) == "marketdata-20261125T030000Z.pgdump.manifest.json"
    assert is_backup_name(first)
    assert not is_backup_name(manifest_name(first))
    with pytest.raises(ValueError, match="timezone-aware"):
        backup_name(dt.datetime(2026, 1, 1), "sqlite")


def manifest(**tables: TableDigest) -> Manifest:
    """A manifest holding ``tables``."""
    return Manifest(
        name="marketdata-20261125T030000Z.sqlite",
        created=NOW,
        backend="sqlite",
        schema_revision="0004",
        tables=tables,
        file_size=4096,
        file_sha256="ab" * 32,
        marketdata_version="0.1.0",
        source="SQLite file data/marketdata.db",
        tool="SQLite 3.40.1 online backup",
    )


def test_manifest_round_trips_and_refuses_bad_input() -> None:
    """JSON out and back is equal; a newer format and a broken file are clear errors."""
    original = manifest(bars=TableDigest(rows=3, sha256="c" * 64)).with_verification(
        verified=True, at=NOW
    )
    assert Manifest.from_json(original.to_json(), where="m.json") == original
    newer = original.to_json().replace('"format": 1', '"format": 2')
    with pytest.raises(InputError, match="newer marketdata"):
        Manifest.from_json(newer, where="m.json")
    with pytest.raises(InputError, match=r"m\.json is not a valid backup manifest"):
        Manifest.from_json('{"format": 1}', where="m.json")
    with pytest.raises(InputError, match="not a valid backup manifest"):
        Manifest.from_json("[1, 2", where="m.json")


def test_comparison_names_what_differs() -> None:
    """Changed content, a changed count, a missing and an extra table, another revision."""
    same = TableDigest(rows=2, sha256="a" * 64)
    expected = manifest(
        bars=same,
        splits=TableDigest(rows=1, sha256="b" * 64),
        symbols=TableDigest(rows=4, sha256="c" * 64),
        leases=same,
    )
    restored = Snapshot(
        revision="0003",
        tables={
            "bars": same,
            "splits": TableDigest(rows=1, sha256="f" * 64),
            "symbols": TableDigest(rows=3, sha256="c" * 64),
            "extra": same,
        },
    )
    result = compare(expected, restored)
    assert not result.matches
    assert result.differing == ["extra", "leases", "splits", "symbols"]
    assert result.describe() == (
        "schema revision 0003 (manifest: 0004); extra (unexpected); leases (missing); "
        "splits (same row count, different content); symbols (3 rows, manifest 4)"
    )
    equal = Snapshot(revision="0004", tables={"bars": same})
    assert compare(manifest(bars=same), equal).matches


def test_state_carries_the_last_success_through_failures() -> None:
    """A failure after a success keeps the success's time; the JSON round-trips."""
    first = next_state(None, at=NOW, name="a", ok=True, verified=True, size=10, error=None)
    later = NOW + dt.timedelta(days=7)
    failed = next_state(first, at=later, name=None, ok=False, verified=None, size=None, error="x")
    assert (failed.ok, failed.last_success, failed.last_success_name) == (False, NOW, "a")
    assert BackupState.from_json(failed.to_json()) == failed
    assert BackupState.from_json(None) is None
    assert BackupState.from_json("not json") is None
