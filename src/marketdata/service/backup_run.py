"""Taking backups: the code ``marketdata backup`` and the weekly scheduled job share.

Copy and digest the database (:mod:`marketdata.storage.dumps`), write the file and its
manifest, verify it (:mod:`marketdata.service.backup_restore`), prune what retention drops
(:mod:`marketdata.service.backup_files`) and record the result for ``/metrics``. The copy runs
in a worker thread that a cancelled task stops (the child process is killed and the partial
file removed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketdata import __version__
from marketdata.errors import MarketDataError, StorageError
from marketdata.service.backup import Comparison, Manifest, backup_name
from marketdata.service.backup_files import BackupConfig, prune, run_blocking, write_manifest
from marketdata.service.backup_restore import verify_backup
from marketdata.service.backup_state import STATE_KEY, BackupState, next_state
from marketdata.settings import Settings
from marketdata.storage import dumps, leftovers
from marketdata.storage.snapshot import Progress, Snapshot
from marketdata.storage.urls import DatabaseUrl

if TYPE_CHECKING:
    from marketdata.service.scheduler import Job
    from marketdata.storage.base import Store

# The scheduler (APScheduler, polars) is imported where needed: `marketdata backup` starts fast.

log = logging.getLogger(__name__)

#: The scheduled backup's name (also its key in ``job_claims``).
BACKUP_JOB = "backup"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupOutcome:
    """A backup taken: its manifest and file, how verification went, what was pruned."""

    path: Path
    manifest: Manifest
    comparison: Comparison | None = None  # None: not verified
    verify_error: str | None = None  # verification could not run
    pruned: tuple[str, ...] = ()
    kept: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Written, and verified when verification was asked for."""
        return self.verify_error is None and (self.comparison is None or self.comparison.matches)


# -- taking -----------------------------------------------------------------------------------


def _dump(
    db: DatabaseUrl,
    target: Path,
    *,
    config: BackupConfig,
    progress: Progress | None,
    stop: threading.Event,
    sqlite_pages: int,
    on_sqlite_step: dumps.StepHook | None,
) -> tuple[Snapshot, str]:
    if db.backend == "sqlite":
        snapshot = dumps.dump_sqlite(
            db.sqlite_path,
            target,
            pages=sqlite_pages,
            on_step=on_sqlite_step,
            progress=progress,
            stop=stop,
        )
        return snapshot, f"SQLite {dumps.sqlite_version()} online backup"
    return dumps.dump_postgres(db, target, bin_dir=config.pg_bin_dir, progress=progress, stop=stop)


async def _write_backup(
    db: DatabaseUrl,
    config: BackupConfig,
    *,
    at: dt.datetime,
    progress: Progress | None,
    sqlite_pages: int,
    on_sqlite_step: dumps.StepHook | None,
) -> tuple[Path, Manifest]:
    """Copy and digest ``db`` under a temporary name, rename it, write its manifest."""
    try:
        config.directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(leftovers.sweep_directory, config.directory)
        taken = [p.name for p in config.directory.iterdir()]
    except OSError as exc:
        msg = f"cannot use the backup directory {config.directory}: {exc.strerror}"
        raise StorageError(msg) from None
    while True:  # reserve the name: a concurrent backup in the same second takes the next
        name = backup_name(at, db.backend, taken=taken)
        final = config.directory / name
        partial = config.directory / f".{name}.partial"
        try:
            partial.touch(exist_ok=False)
            break
        except FileExistsError:
            taken.append(name)
        except OSError as exc:
            msg = f"cannot write into the backup directory {config.directory}: {exc.strerror}"
            raise StorageError(msg) from None
    try:
        with leftovers.held(partial):  # until renamed: a sweep elsewhere keeps it
            snapshot, tool = await run_blocking(
                _dump,
                db,
                partial,
                config=config,
                progress=progress,
                sqlite_pages=sqlite_pages,
                on_sqlite_step=on_sqlite_step,
            )
            if progress is not None:
                progress("checksumming the backup file")
            sha256, size = await run_blocking(dumps.file_sha256, partial)
            os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    manifest = Manifest(
        name=name,
        created=at,
        backend=db.backend,
        schema_revision=snapshot.revision,
        tables=snapshot.tables,
        file_size=size,
        file_sha256=sha256,
        marketdata_version=__version__,
        source=db.display,
        tool=tool,
    )
    write_manifest(config.directory, manifest)
    return final, manifest


async def take_backup(
    db: DatabaseUrl,
    config: BackupConfig,
    *,
    at: dt.datetime,
    verify: bool = True,
    store: Store | None = None,
    progress: Progress | None = None,
    sqlite_pages: int = -1,
    on_sqlite_step: dumps.StepHook | None = None,
) -> BackupOutcome:
    """Back up ``db`` into the backup directory, verify the copy (unless ``verify`` is
    false), prune what retention drops (only after a good backup) and, with ``store``,
    record the result for ``/metrics``.

    The copy is written under a temporary name and renamed; its manifest comes after it.
    A failure to copy raises (after recording it); a verification that fails or cannot run
    is reported in the outcome, and the unverified backup is kept.
    """
    try:
        final, manifest = await _write_backup(
            db,
            config,
            at=at,
            progress=progress,
            sqlite_pages=sqlite_pages,
            on_sqlite_step=on_sqlite_step,
        )
    except MarketDataError as exc:
        await _record(store, at=at, name=None, ok=False, verified=None, size=None, error=str(exc))
        raise
    name, size = manifest.name, manifest.file_size
    log.info(
        "backup %s written: %d bytes, %d rows",
        name,
        size,
        manifest.rows,
        extra={"event": "backup_written", "backup": name, "size": size},
    )
    outcome = BackupOutcome(path=final, manifest=manifest)
    if verify:
        outcome = await _verify_new(outcome, db, config, at=at, progress=progress)
    if outcome.ok:
        pruned, kept = await asyncio.to_thread(prune, config, now=at)
        outcome = replace(outcome, pruned=tuple(pruned), kept=kept)
    error = outcome.verify_error or (
        f"verification failed: {outcome.comparison.describe()}"
        if outcome.comparison is not None and not outcome.comparison.matches
        else None
    )
    await _record(
        store,
        at=at,
        name=name,
        ok=outcome.ok,
        verified=outcome.manifest.verified,
        size=size,
        error=error,
    )
    return outcome


async def _verify_new(
    outcome: BackupOutcome,
    db: DatabaseUrl,
    config: BackupConfig,
    *,
    at: dt.datetime,
    progress: Progress | None,
) -> BackupOutcome:
    """Verify a backup just written; the manifest records the result."""
    try:
        checked = await verify_backup(
            outcome.path, config, server=db, at=at, progress=progress, update_manifest=False
        )
    except MarketDataError as exc:
        manifest = outcome.manifest.with_verification(verified=False, at=at, error=str(exc))
        write_manifest(config.directory, manifest)
        log.error(
            "backup %s could not be verified: %s",
            manifest.name,
            exc,
            extra={"event": "backup_verify_failed", "backup": manifest.name},
        )
        return BackupOutcome(path=outcome.path, manifest=manifest, verify_error=str(exc))
    comparison = checked.comparison
    manifest = outcome.manifest.with_verification(
        verified=comparison.matches, at=at, error=comparison.describe() or None
    )
    write_manifest(config.directory, manifest)
    return BackupOutcome(path=outcome.path, manifest=manifest, comparison=comparison)


async def _record(store: Store | None, *, at: dt.datetime, **attempt: Any) -> None:
    """Record the attempt in ``service_state`` (best effort: the backup is what matters)."""
    if store is None:
        return
    try:
        previous = BackupState.from_json(await store.get_state(STATE_KEY))
        state = next_state(previous, at=at, **attempt)
        await store.set_state(STATE_KEY, state.to_json(), at=at)
    except StorageError as exc:
        log.warning(
            "backup result not recorded: %s", exc, extra={"event": "backup_state_not_recorded"}
        )


async def last_backup(store: Store) -> BackupState | None:
    """The recorded newest backup attempt and last success, if a backup ever ran."""
    return BackupState.from_json(await store.get_state(STATE_KEY))


# -- the scheduled job ------------------------------------------------------------------------


def backup_job(
    store: Store,
    settings: Settings,
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Job:
    """The weekly backup (``MARKETDATA_BACKUP_CRON``) as a scheduler job: the same
    :func:`take_backup` as ``marketdata backup``, verified, pruned, recorded."""
    from marketdata.service.scheduler import Job

    config = BackupConfig.from_settings(settings)
    db = DatabaseUrl.parse(settings.database_url)

    async def run(fire_time: dt.datetime) -> None:
        try:
            outcome = await take_backup(db, config, at=clock(), store=store)
        except MarketDataError as exc:
            log.error(
                "scheduled backup (%s) failed: %s",
                fire_time.isoformat(),
                exc,
                extra={"event": "backup_failed"},
            )
            return
        log.info(
            "scheduled backup %s: %s",
            outcome.manifest.name,
            "verified" if outcome.ok else "NOT verified",
            extra={"event": "backup_scheduled_done", "backup": outcome.manifest.name},
        )

    return Job(name=BACKUP_JOB, cron=settings.backup_cron, run=run)
