"""The backup directory: configuration, finding a backup and its manifest, listing, pruning,
and running the blocking steps of a backup in a thread that cancellation stops.

Shared by :mod:`marketdata.service.backup_run` (taking) and
:mod:`marketdata.service.backup_restore` (verifying, restoring).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from marketdata.errors import InputError, StorageError
from marketdata.service.backup import (
    BackupRecord,
    Manifest,
    is_backup_name,
    manifest_name,
    retention,
)
from marketdata.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupConfig:
    """Where backups go, how many to keep, where the PostgreSQL tools are."""

    directory: Path
    keep_daily: int = 7
    keep_weekly: int = 8
    pg_bin_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BackupConfig:
        """The configuration ``settings`` describe."""
        return cls(
            directory=settings.backup_dir or settings.data_dir / "backups",
            keep_daily=settings.backup_keep_daily,
            keep_weekly=settings.backup_keep_weekly,
            pg_bin_dir=settings.backup_pg_bin_dir,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """A backup found in the backup directory."""

    path: Path
    manifest: Manifest
    present: bool  # the backup file itself exists
    kept: str | None = None  # why retention keeps it; None: the next backup prunes it

    def record(self) -> BackupRecord:
        """What retention needs."""
        return BackupRecord(
            name=self.manifest.name,
            created=self.manifest.created,
            verified=self.manifest.verified,
            source=f"{self.manifest.backend} {self.manifest.source}",
        )


# -- running blocking steps -------------------------------------------------------------------


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, stop=event, **kwargs)`` in a thread; cancelling sets the event and
    waits until ``fn`` has stopped (it kills its child process, cleans up)."""
    stop = threading.Event()
    future = asyncio.ensure_future(
        asyncio.to_thread(functools.partial(fn, *args, **kwargs), stop=stop)
    )
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(BaseException):
            await future
        raise
    except OSError as exc:  # files of the backup directory
        where = f"{exc.filename}: " if exc.filename else ""
        msg = f"{where}{exc.strerror or exc}"
        raise StorageError(msg) from None


# -- files ------------------------------------------------------------------------------------


def resolve(path: Path) -> tuple[Path, Manifest]:
    """The backup file named by ``path`` (the file or its manifest) and its manifest."""
    text = str(path)
    backup = Path(text.removesuffix(".manifest.json")) if text.endswith(".manifest.json") else path
    manifest_path = backup.with_name(manifest_name(backup.name))
    if not manifest_path.is_file():
        if not backup.exists():
            msg = f"no backup at {backup}"
            raise InputError(msg)
        msg = f"{backup} has no manifest ({manifest_path.name}): it is not a finished backup"
        raise InputError(msg)
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read {manifest_path}: {exc.strerror}"
        raise InputError(msg) from None
    manifest = Manifest.from_json(text, where=str(manifest_path))
    if not backup.is_file():
        msg = f"the backup file {backup} is missing (only its manifest is there)"
        raise InputError(msg)
    return backup, manifest


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write the manifest beside its backup, atomically."""
    final = directory / manifest_name(manifest.name)
    partial = directory / f".{final.name}.partial"
    try:
        partial.write_text(manifest.to_json(), encoding="utf-8")
        os.replace(partial, final)
    except OSError as exc:
        msg = f"cannot write the manifest {final}: {exc.strerror}"
        raise StorageError(msg) from None


def list_backups(config: BackupConfig, *, now: dt.datetime) -> tuple[list[Entry], list[str]]:
    """The backups in the directory, oldest first, each with why retention keeps it; and
    the problems met (unreadable manifests), which are left alone."""
    entries: list[Entry] = []
    problems: list[str] = []
    if not config.directory.is_dir():
        return [], []
    for manifest_path in sorted(config.directory.glob("*.manifest.json")):
        name = manifest_path.name.removesuffix(".manifest.json")
        if not is_backup_name(name):
            continue
        try:
            manifest = Manifest.from_json(
                manifest_path.read_text("utf-8"), where=str(manifest_path)
            )
        except (InputError, OSError) as exc:
            problems.append(str(exc))
            continue
        path = config.directory / name
        entries.append(Entry(path=path, manifest=manifest, present=path.is_file()))
    kept = retention(
        [e.record() for e in entries],
        now=now,
        keep_daily=config.keep_daily,
        keep_weekly=config.keep_weekly,
    )
    entries = [
        Entry(path=e.path, manifest=e.manifest, present=e.present, kept=kept.get(e.manifest.name))
        for e in entries
    ]
    return sorted(entries, key=lambda e: (e.manifest.created, e.manifest.name)), problems


def prune(config: BackupConfig, *, now: dt.datetime) -> tuple[list[str], dict[str, str]]:
    """Delete the backups retention does not keep; (names deleted, names kept with why)."""
    entries, _ = list_backups(config, now=now)
    deleted = []
    for entry in entries:
        if entry.kept is not None:
            continue
        entry.path.unlink(missing_ok=True)
        entry.path.with_name(manifest_name(entry.path.name)).unlink(missing_ok=True)
        deleted.append(entry.manifest.name)
    if deleted:
        log.info(
            "pruned %d backup(s): %s",
            len(deleted),
            ", ".join(deleted),
            extra={"event": "backups_pruned", "count": len(deleted)},
        )
    return deleted, {e.manifest.name: e.kept for e in entries if e.kept is not None}
