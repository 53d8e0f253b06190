"""Verifying and restoring backups: check the file against its manifest, restore it (into a
scratch database, or into the target), checksum every table and compare.

``marketdata backup verify``, ``marketdata restore`` and the verification step of every backup
run this; the copies and digests come from :mod:`marketdata.storage.dumps` and
:mod:`marketdata.storage.snapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from marketdata import __version__
from marketdata.errors import (
    ConfigError,
    Conflict,
    DatabaseUnreachable,
    InputError,
    MarketDataError,
    SchemaOutOfDate,
    StorageError,
)
from marketdata.service.backup import Comparison, Manifest, compare
from marketdata.service.backup_files import BackupConfig, resolve, run_blocking, write_manifest
from marketdata.storage import dumps, leftovers
from marketdata.storage.snapshot import (
    DIGEST_ALGORITHM,
    Progress,
    Snapshot,
    Stopped,
    revision_kind,
    tables_with_rows,
    take_snapshot,
)
from marketdata.storage.urls import DatabaseUrl

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """A backup restored into a scratch database and compared with its manifest."""

    manifest: Manifest
    comparison: Comparison


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreOutcome:
    """A backup restored into a database, checked, and upgraded if it was older."""

    manifest: Manifest
    target: str  # the database, for humans
    comparison: Comparison
    upgraded_to: str | None = None  # the revision reached when the backup was older


# -- verifying --------------------------------------------------------------------------------


def _check_file(backup: Path, manifest: Manifest, *, stop: threading.Event) -> None:
    sha256, size = dumps.file_sha256(backup, stop=stop)
    if (sha256, size) != (manifest.file_sha256, manifest.file_size):
        msg = (
            f"backup {backup.name} is corrupt or truncated: its SHA-256 differs from the "
            f"manifest's ({size:,} bytes, manifest {manifest.file_size:,})"
        )
        raise InputError(msg)


def _check_digest(manifest: Manifest) -> None:
    if manifest.digest != DIGEST_ALGORITHM:
        msg = (
            f"backup {manifest.name} was checksummed as {manifest.digest!r}; this version "
            f"of marketdata computes {DIGEST_ALGORITHM!r} and cannot compare them"
        )
        raise InputError(msg)


def _restore_into(
    backup: Path,
    manifest: Manifest,
    target: DatabaseUrl,
    *,
    config: BackupConfig,
    clear: bool,
    progress: Progress | None,
    stop: threading.Event,
) -> Snapshot:
    """Check the file, restore it into ``target`` and digest the result."""
    if progress is not None:
        progress(f"checking {backup.name}")
    _check_file(backup, manifest, stop=stop)
    if progress is not None:
        progress(f"restoring {backup.name}")
    if manifest.backend == "sqlite":
        dumps.restore_sqlite(backup, target.sqlite_path, stop=stop)
    else:
        dumps.restore_postgres(
            backup, target, bin_dir=config.pg_bin_dir, clear=clear, progress=progress, stop=stop
        )
    return take_snapshot(target, progress=progress, stop=stop)


@contextlib.contextmanager
def _scratch(manifest: Manifest, backup: Path, server: DatabaseUrl | None) -> Iterator[DatabaseUrl]:
    if manifest.backend == "sqlite":
        leftovers.sweep_directory(backup.parent)
        with dumps.scratch_sqlite(backup.parent) as scratch:
            yield scratch
        return
    if server is None or server.backend != "postgresql":
        msg = (
            f"{backup.name} is a PostgreSQL backup: verifying it needs a PostgreSQL server to "
            "restore it into; pass --database-url postgresql://…"
        )
        raise InputError(msg)
    leftovers.sweep_scratch_databases(server, now=dt.datetime.now(dt.UTC))
    with dumps.scratch_postgres(server) as scratch:
        yield scratch


class _BackupFailed(Exception):
    """The backup itself failed verification (a SHA-256 mismatch, a restore the file broke):
    carries the error to record in the manifest and raise."""

    def __init__(self, error: MarketDataError) -> None:
        super().__init__(str(error))
        self.error = error


def _verify(
    backup: Path,
    manifest: Manifest,
    *,
    server: DatabaseUrl | None,
    config: BackupConfig,
    progress: Progress | None,
    stop: threading.Event,
) -> Comparison:
    with _scratch(manifest, backup, server) as scratch:
        try:
            restored = _restore_into(
                backup,
                manifest,
                scratch,
                config=config,
                clear=False,
                progress=progress,
                stop=stop,
            )
        except (ConfigError, DatabaseUnreachable, Stopped):
            raise  # the tools, the server or the caller: nothing learnt about the backup
        except MarketDataError as exc:
            raise _BackupFailed(exc) from None
    return compare(manifest, restored)


async def verify_backup(
    path: Path,
    config: BackupConfig,
    *,
    server: DatabaseUrl | None,
    at: dt.datetime,
    progress: Progress | None = None,
    update_manifest: bool = True,
) -> Verification:
    """Restore the backup at ``path`` into a scratch database (a temporary SQLite file, or a
    temporary database on ``server``) and compare every table with the manifest.

    The result is recorded in the manifest (unless ``update_manifest`` is false), a failure
    too: a file that does not match its recorded SHA-256, or that the restore cannot read, is
    recorded as failed with the reason, then raises. Errors that say nothing about the file
    (no server to restore into, missing tools, a stop) raise without recording anything.
    """
    backup, manifest = resolve(path)
    _check_digest(manifest)
    try:
        comparison = await run_blocking(
            _verify, backup, manifest, server=server, config=config, progress=progress
        )
    except _BackupFailed as failed:
        if update_manifest:
            _record(backup, manifest.with_verification(verified=False, at=at, error=str(failed)))
        raise failed.error from None
    if update_manifest:
        manifest = manifest.with_verification(
            verified=comparison.matches, at=at, error=comparison.describe() or None
        )
        _record(backup, manifest)
    return Verification(manifest=manifest, comparison=comparison)


def _record(backup: Path, manifest: Manifest) -> None:
    """Write the verification's result into the manifest, if the medium takes writes."""
    with contextlib.suppress(StorageError):  # a read-only medium still verifies
        write_manifest(backup.parent, manifest)


# -- restoring --------------------------------------------------------------------------------


def _check_target(manifest: Manifest, backup: Path, target: DatabaseUrl, *, force: bool) -> None:
    if manifest.backend != target.backend:
        kinds = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
        msg = (
            f"{backup.name} is a {kinds[manifest.backend]} backup and {target.display} is "
            f"{kinds[target.backend]}: restore it into a {kinds[manifest.backend]} database; "
            "to move data between backends use `marketdata export` and `marketdata import`"
        )
        raise InputError(msg)
    if target.backend == "sqlite" and not target.sqlite_path.exists():
        return
    filled = tables_with_rows(target)
    if filled and not force:
        msg = (
            f"{target.display} is not empty ({', '.join(filled)} hold rows): restore into an "
            "empty database, or pass --force to replace its contents"
        )
        raise Conflict(msg)


@contextlib.asynccontextmanager
async def _no_backfill(target: DatabaseUrl) -> AsyncIterator[None]:
    """Hold the backfill lock of ``target`` while the body runs: a backfill running there
    (the service's schedule, a ``marketdata backfill``) refuses the restore with
    :class:`Conflict`, and none can start until it is done.

    A target without a current marketdata schema (a new file, an empty database, an older
    revision) has no backfill of this version running; it is restored without the lock.
    """
    from marketdata.service.runs import LOCK, holder_id, running_run
    from marketdata.storage import open_store

    if target.backend == "sqlite" and not target.sqlite_path.exists():
        yield
        return
    try:
        store = await open_store(target.url, create_schema=False)
    except SchemaOutOfDate:
        yield
        return
    try:
        # An hour between renewal deadlines: a SQLite restore replaces the lease row with the
        # backup's table, and no renewal should report that as a take-over meanwhile.
        lock = await store.acquire_lock(LOCK, holder=holder_id(), ttl=3600.0)
        if lock is None:
            msg = (
                f"a backfill is running in {target.display}: {await running_run(store)}; "
                "let it finish and stop the service (`marketdata serve`) before restoring"
            )
            raise Conflict(msg)
        try:
            yield
        finally:
            with contextlib.suppress(StorageError):  # the restored database lost our row
                await lock.release()
    finally:
        await store.aclose()


async def restore_backup(
    path: Path,
    target: DatabaseUrl,
    config: BackupConfig,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> RestoreOutcome:
    """Restore the backup at ``path`` into ``target`` and prove it: the restored tables must
    match the manifest. A backup from an older schema revision is upgraded afterwards; one
    from a revision this version does not know (a newer marketdata) is refused.

    ``target`` must be empty (no table holds rows) unless ``force``, which replaces it.
    """
    from marketdata.storage import migrate

    backup, manifest = resolve(path)
    _check_digest(manifest)
    kind = revision_kind(manifest.schema_revision)
    if kind == "unknown":
        msg = (
            f"{backup.name} is at schema revision {manifest.schema_revision}, which this "
            f"version of marketdata ({__version__}, schema {migrate.head_revision()}) does not "
            "know: it was made by a newer marketdata (wrong version); restore it with that "
            "version or newer"
        )
        raise InputError(msg)
    await asyncio.to_thread(_check_target, manifest, backup, target, force=force)
    async with _no_backfill(target):
        restored = await run_blocking(
            _restore_into, backup, manifest, target, config=config, clear=force, progress=progress
        )
    comparison = compare(manifest, restored)
    if not comparison.matches:
        msg = (
            f"{target.display} was restored from {backup.name} but does not match its "
            f"manifest: {comparison.describe()}"
        )
        raise StorageError(msg)
    upgraded = None
    if kind == "older":
        if progress is not None:
            progress(f"upgrading the schema from revision {manifest.schema_revision}")
        upgraded = await asyncio.to_thread(migrate.upgrade, target)
    log.info(
        "restored %s into %s",
        backup.name,
        target.display,
        extra={"event": "backup_restored", "backup": backup.name},
    )
    return RestoreOutcome(
        manifest=manifest, target=target.display, comparison=comparison, upgraded_to=upgraded
    )
