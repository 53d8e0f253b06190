"""``marketdata backup``, ``backup verify``, ``backup list`` and ``restore`` from the command
line on both backends, and the weekly scheduled backup job."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from marketdata.errors import Conflict
from marketdata.service.backup_run import BACKUP_JOB, backup_job, last_backup
from marketdata.service.periodic import scheduled_jobs
from marketdata.service.scheduler import Scheduler
from marketdata.settings import Settings
from marketdata.storage import DatabaseUrl, Store, open_store
from marketdata.storage.snapshot import take_snapshot
from tests.integration.test_backup import Factory, fill, new_database
from tests.integration.test_cli import invoke, run_cli

__all__ = ["new_database"]  # the fixture, shared with test_backup

#: Wednesday morning: the latest trigger of the default schedule was Sunday 03:00 UTC.
NOW = dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC)
SUNDAY = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


def manifest_of(path: Path) -> Path:
    """The manifest beside backup ``path``."""
    return path.with_name(path.name + ".manifest.json")


async def _fill(url: str) -> None:
    store = await open_store(url)
    try:
        await fill(store)
    finally:
        await store.aclose()


def test_backup_list_verify_restore(
    database_url: str, new_database: Factory, tmp_path: Path
) -> None:
    """backup --json (verified), list --json (kept as the newest verified), verify (exit 0),
    a tampered checksum (exit 3, the table named), restore (refused on data, --force)."""
    asyncio.run(_fill(database_url))
    backups = tmp_path / "backups"
    code, out, _ = invoke(database_url, "backup", "--to", str(backups), "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["ok"] is True
    assert result["manifest"]["verified"] is True
    assert result["verification"]["tables"]["bars"]["status"] == "match"
    path = Path(result["path"])
    assert path.parent == backups
    assert manifest_of(path).is_file()

    code, out, _ = invoke(database_url, "backup", "list", "--dir", str(backups), "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert listed["name"] == path.name
    assert listed["verified"] is True
    assert listed["kept"].startswith("newest verified, daily ")
    assert listed["size"] == path.stat().st_size

    code, out, _ = invoke(database_url, "backup", "verify", str(path), "--json")
    assert code == 0
    assert json.loads(out)["matches"] is True

    manifest = json.loads(manifest_of(path).read_text())
    manifest["tables"]["splits"]["sha256"] = "0" * 64
    manifest_of(path).write_text(json.dumps(manifest))
    code, out, err = invoke(database_url, "backup", "verify", str(path))
    assert code == 3
    assert "splits (same row count, different content)" in err
    assert json.loads(manifest_of(path).read_text())["verified"] is False

    manifest["tables"]["splits"] = result["manifest"]["tables"]["splits"]
    manifest_of(path).write_text(json.dumps(manifest))
    target = new_database()
    code, out, _ = invoke(database_url, "restore", str(path), "--database-url", target)
    assert code == 0
    assert "all matching the manifest" in out
    with pytest.raises(Conflict, match="--force"):
        invoke(database_url, "restore", str(path), "--database-url", target)
    code, _, _ = invoke(database_url, "restore", str(path), "--database-url", target, "--force")
    assert code == 0
    restored = take_snapshot(DatabaseUrl.parse(target))
    assert {n: {"rows": t.rows, "sha256": t.sha256} for n, t in restored.tables.items()} == (
        result["manifest"]["tables"]
    )


def test_backup_without_verification_and_the_default_directory(
    database_url: str, tmp_path: Path
) -> None:
    """--no-verify: written, recorded as not verified, exit 0; MARKETDATA_BACKUP_DIR (here
    the data_dir default) is used and listed."""
    code, out, _ = invoke(database_url, "backup", "--no-verify")
    assert code == 0, out
    assert "not verified" in out
    code, out, _ = invoke(database_url, "backup", "list")
    assert code == 0
    assert "not run" in out
    assert "marketdata-" in out
    assert len(list(Path("data/backups").glob("*.manifest.json"))) == 1  # cwd: a temp dir


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    """No such backup, and no database to back up: one line on stderr, exit 1."""
    missing = tmp_path / "marketdata-20260101T000000Z.sqlite"
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    for args in (["backup", "verify", str(missing)], ["backup"]):
        done = run_cli("--database-url", url, *args)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error: ")
        assert done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "absent.db").exists()


def test_missing_pg_dump_from_the_command_line(postgres_session_url: str, tmp_path: Path) -> None:
    """PATH without pg_dump: one line naming the tool and what to install."""
    done = run_cli("--database-url", postgres_session_url, "backup", env={"PATH": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.startswith("error: pg_dump not found on PATH: install the PostgreSQL")
    assert done.stderr.count("\n") == 1


# -- the scheduled job ------------------------------------------------------------------------


def settings_for(url: str, tmp_path: Path, **changes: Any) -> Settings:
    """Settings on ``url`` with data under ``tmp_path``."""
    return Settings(database_url=url, data_dir=tmp_path, simulate=False, **changes)


async def test_scheduled_backup_runs_once_and_is_recorded(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    """The weekly job (default Sunday 03:00 UTC) is scheduled, claimed once, writes a
    verified backup into data_dir/backups and records it for /metrics."""
    settings = settings_for(database_url, tmp_path)
    assert [j.name for j in scheduled_jobs(store, settings)] == [BACKUP_JOB]
    assert scheduled_jobs(store, settings_for(database_url, tmp_path, backup_cron="")) == []
    await fill(store)
    schedulers = [Scheduler(store, clock=lambda: NOW) for _ in range(2)]
    for scheduler in schedulers:
        scheduler.add(backup_job(store, settings, clock=lambda: NOW))
    assert await schedulers[0].due(BACKUP_JOB) == SUNDAY
    assert await schedulers[0].catch_up() == [BACKUP_JOB]
    assert await schedulers[1].catch_up() == []  # claimed: one backup per trigger
    assert await store.last_claim(BACKUP_JOB) == SUNDAY
    [manifest] = (tmp_path / "backups").glob("*.manifest.json")
    written = json.loads(manifest.read_text())
    assert written["name"].startswith("marketdata-20261125T093000Z.")
    assert written["verified"] is True
    state = await last_backup(store)
    assert state is not None
    assert (state.ok, state.verified, state.at, state.name) == (True, True, NOW, written["name"])
    assert state.size == written["file"]["size"]


def test_backup_cron_is_validated() -> None:
    """A malformed MARKETDATA_BACKUP_CRON is refused, naming the variable."""
    with pytest.raises(ValueError, match="MARKETDATA_BACKUP_CRON '0 3 \\* \\*'"):
        Settings(backup_cron="0 3 * *")
