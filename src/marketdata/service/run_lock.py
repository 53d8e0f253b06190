"""The backfill lock, and recovery of the runs a dead process left ``running``.

Every backfill holds the database's ``backfill`` lock (a PostgreSQL advisory lock, or a lease
row in SQLite) while it runs, so two processes, workers or machines never backfill the same
database at once. :func:`acquire` takes it or raises :class:`~marketdata.errors.Conflict`
naming the run that holds it; holding it, :func:`recover` closes the runs a crash left
``running`` and re-scores what they wrote. Backups take the same lock to restore.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid

from marketdata.errors import Conflict
from marketdata.service.quality import refresh_gap_counts, revalidate
from marketdata.storage.base import Store
from marketdata.storage.jobs import StoreLock

# The runs module's logger: recovery is part of starting a run, and its lines keep their name.
log = logging.getLogger("marketdata.service.runs")

#: The lock every backfill holds while it runs.
LOCK = "backfill"


def holder_id() -> str:
    """Who holds a lock: host, process and a random part (unique per call)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def acquire(store: Store, *, holder: str) -> StoreLock:
    """The backfill lock, or :class:`Conflict` naming the run that holds it."""
    lock = await store.acquire_lock(LOCK, holder=holder)
    if lock is not None:
        return lock
    detail = await running_run(store)
    msg = f"another backfill is running: {detail}; wait for it, or watch it with `marketdata runs`"
    raise Conflict(msg)


async def running_run(store: Store) -> str:
    """The run holding the backfill lock, for messages (``run 12 (scheduled, started …)``)."""
    running = [r for r in await store.list_runs(limit=5) if r.status == "running"]
    if not running:
        return "a run that is starting"
    first = running[0]
    return f"run {first.id} ({first.trigger}, started {first.started_at:%Y-%m-%d %H:%M} UTC)"


async def recover(store: Store, *, at: dt.datetime) -> tuple[int, ...]:
    """Close runs a dead process left ``running`` and re-score the symbols they wrote.

    Bars and checkpoints were written together, so nothing is half-written; but a crash
    between a write and the re-scoring of the stored bars after it leaves stale scores.
    """
    ids = await store.mark_interrupted(
        at=at, message="interrupted: the process stopped before the run finished"
    )
    touched: set[str] = set()
    for run_id in ids:
        record = await store.read_run(run_id)
        if record is not None:
            touched.update(s.symbol for s in record.symbols if s.checkpoint is not None)
    if touched:
        await revalidate(store, sorted(touched), at=at)
        await refresh_gap_counts(store, sorted(touched))
    if ids:
        log.warning(
            "found %d interrupted backfill run(s): %s",
            len(ids),
            ", ".join(map(str, ids)),
            extra={"event": "backfill_recovered", "runs": list(ids)},
        )
    return tuple(ids)
