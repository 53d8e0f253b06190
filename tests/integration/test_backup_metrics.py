"""``GET /metrics`` reports backups on both backends: nothing yet (+Inf), a verified backup,
then a failed attempt; plus the pure family builder."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketdata.api.app import create_app
from marketdata.api.metrics import backup_families
from marketdata.errors import StorageError
from marketdata.service.backup_files import BackupConfig
from marketdata.service.backup_run import take_backup
from marketdata.service.backup_state import BackupState
from marketdata.settings import Settings
from marketdata.storage import DatabaseUrl, open_store
from tests.integration.test_api_metrics import names_with, scrape, value

AGE = "marketdata_backup_last_success_age_seconds"
OK = "marketdata_backup_last_ok"
WHEN = "marketdata_backup_last_timestamp_seconds"
SIZE = "marketdata_backup_last_size_bytes"


async def _back_up(url: str, directory: Path, at: dt.datetime) -> int:
    """Take a backup (recorded in the database); its size."""
    store = await open_store(url)
    try:
        outcome = await take_backup(
            DatabaseUrl.parse(url), BackupConfig(directory=directory), at=at, store=store
        )
    finally:
        await store.aclose()
    assert outcome.ok
    return outcome.manifest.file_size


async def _fail(url: str, directory: Path, at: dt.datetime) -> None:
    """Attempt a backup into a directory that is a file (recorded as failed)."""
    store = await open_store(url)
    try:
        with pytest.raises(StorageError, match="cannot use the backup directory"):
            await take_backup(
                DatabaseUrl.parse(url), BackupConfig(directory=directory), at=at, store=store
            )
    finally:
        await store.aclose()


def test_metrics_follow_backups(database_url: str, tmp_path: Path) -> None:
    """No backup: age +Inf and no other series. A verified one an hour ago: ok 1, its time,
    its size. A failed attempt since: ok 0 with the attempt's time, the age still counts from
    the good one."""
    settings = Settings(database_url=database_url, simulate=False, scheduler=False)
    with TestClient(create_app(settings)) as client:
        samples = scrape(client)
        assert client.get("/health").json()["last_backup"] is None
    assert value(samples, AGE) == math.inf
    for name in (OK, WHEN, SIZE):
        assert not names_with(samples, name)

    good = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    size = asyncio.run(_back_up(database_url, tmp_path / "backups", good))
    with TestClient(create_app(settings)) as client:
        samples = scrape(client)
        health = client.get("/health").json()
    assert health["last_backup"]["ok"] is True
    assert health["last_backup"]["verified"] is True
    assert health["last_backup"]["size"] == size
    assert dt.datetime.fromisoformat(health["last_backup"]["at"]) == good
    assert health["next_backup"] is not None  # the weekly job is scheduled by default
    assert value(samples, OK) == 1
    assert value(samples, WHEN) == pytest.approx(good.timestamp())
    assert value(samples, SIZE) == size
    assert 3600 <= value(samples, AGE) < 3600 + 60

    failed = good + dt.timedelta(minutes=30)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    asyncio.run(_fail(database_url, blocker, failed))
    with TestClient(create_app(settings)) as client:
        samples = scrape(client)
        health = client.get("/health").json()["last_backup"]
    assert (health["ok"], health["name"]) == (False, None)
    assert "backup directory" in health["error"]
    assert dt.datetime.fromisoformat(health["last_success"]) == good
    assert value(samples, OK) == 0
    assert value(samples, WHEN) == pytest.approx(failed.timestamp())
    assert not names_with(samples, SIZE)
    assert 3600 <= value(samples, AGE) < 3600 + 60


def test_backup_families_from_state() -> None:
    """Written but not verified (--no-verify) is not ok; the age counts from it."""
    now = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    at = now - dt.timedelta(days=2)
    state = BackupState(at=at, ok=True, verified=None, size=42, last_success=at)
    families = {f.name: f.samples[0].value for f in backup_families(state, now=now)}
    assert families == {
        AGE: 2 * 86_400,
        OK: 0,
        WHEN: at.timestamp(),
        SIZE: 42,
    }
    [only] = backup_families(None, now=now)
    assert (only.name, only.samples[0].value) == (AGE, math.inf)
