"""A dataset export on disk: its names, its manifest, the directory it goes in, reading it back.

:func:`marketdata.service.export.export_dataset` writes the dataset this module describes (the
layout is in :mod:`marketdata.service.export`); here are its file and directory names, whether
a directory holds one (:func:`dataset_state`) or may be exported into
(:func:`check_directory`), and, for an import, its checked manifest (:func:`read_manifest`)
and its splits and dividends (:func:`import_actions`). Everything here is re-exported by
:mod:`marketdata.service.export`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from marketdata.bars import BAR_SCHEMA
from marketdata.errors import InputError
from marketdata.service.actions import ActionsReport, read_actions_file, store_actions
from marketdata.storage.base import Store

#: What a dataset's manifest says it is, and the layout version this code writes and reads.
DATASET_FORMAT = "marketdata-dataset"
DATASET_VERSION = 1
MANIFEST = "_marketdata.json"
SPLITS_FILE = "_splits.parquet"
DIVIDENDS_FILE = "_dividends.parquet"
PART_FILE = "part-0.parquet"
PARTITION_KEY = "symbol"
#: Columns of each part file: the import layout without the symbol (it is the directory).
PART_COLUMNS = [c for c in BAR_SCHEMA if c != PARTITION_KEY]


DatasetState = Literal["absent", "unfinished", "complete"]


def dataset_state(out: Path) -> DatasetState:
    """Whether ``out`` holds no export, an unfinished one (interrupted) or a complete one."""
    path = out / MANIFEST
    if not path.is_file():
        return "absent"
    try:
        complete = json.loads(path.read_text(encoding="utf-8")).get("complete") is True
    except (OSError, ValueError, AttributeError):
        return "unfinished"
    return "complete" if complete else "unfinished"


def partition_name(symbol: str) -> str:
    """``symbol=…`` for ``symbol``, percent-encoding all but letters, digits and ``._-~``."""
    return f"{PARTITION_KEY}={quote(symbol, safe='')}"


def _owned(entry: Path) -> bool:
    """Whether ``entry`` is something an export writes (and ``--overwrite`` may delete)."""
    if entry.is_symlink():
        return False
    if entry.is_dir():
        return entry.name.startswith(f"{PARTITION_KEY}=")
    return entry.name in (MANIFEST, f"{MANIFEST}.tmp", SPLITS_FILE, DIVIDENDS_FILE)


def check_directory(out: Path, *, overwrite: bool) -> list[Path]:
    """What an export into ``out`` would delete, or :class:`InputError` saying what to do.

    A non-empty directory is replaced only when it holds an earlier export and nothing else,
    and only with ``overwrite``; anything else in it is never deleted.
    """
    if not out.exists():
        return []
    if not out.is_dir():
        msg = f"{out} exists and is not a directory"
        raise InputError(msg)
    entries = sorted(out.iterdir())
    if not entries:
        return []
    foreign = [e.name for e in entries if not _owned(e)]
    if not (out / MANIFEST).is_file() or foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        msg = (
            f"{out} is not empty and is not an earlier marketdata export"
            + (f" (it holds {shown})" if foreign else "")
            + ": export into a new or empty directory"
        )
        raise InputError(msg)
    if not overwrite:
        msg = f"{out} holds an earlier export: pass --overwrite to replace it"
        raise InputError(msg)
    return entries


def prepare_directory(out: Path, *, overwrite: bool) -> None:
    """Make ``out`` an empty directory to export into (see :func:`check_directory`)."""
    entries = check_directory(out, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# -- importing a dataset's extras -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A complete dataset's manifest: what an import checks and loads besides the bars."""

    directory: Path
    rows: int
    symbols: dict[str, int]  # symbol → rows
    splits: Path | None
    dividends: Path | None


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest of the dataset in ``directory`` (``None`` if it has none).

    An unfinished export, a newer layout version or a missing part file is an
    :class:`InputError`, so an import never loads half a dataset unawares.
    """
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{path}: not a readable export manifest ({exc})"
        raise InputError(msg) from None
    if not isinstance(data, dict) or data.get("format") != DATASET_FORMAT:
        msg = f"{path}: not a marketdata export manifest"
        raise InputError(msg)
    version = data.get("version")
    if not isinstance(version, int) or version > DATASET_VERSION:
        msg = (
            f"{path}: dataset layout version {version!r} is newer than this marketdata reads "
            f"({DATASET_VERSION}): upgrade marketdata to import it"
        )
        raise InputError(msg)
    if data.get("complete") is not True:
        msg = f"{directory} is an unfinished export (was it interrupted?): export it again"
        raise InputError(msg)
    entries: dict[str, dict[str, Any]] = data.get("symbols") or {}
    absent = [
        e["path"] for e in entries.values() if not (directory / e["path"] / PART_FILE).is_file()
    ]
    if absent:
        msg = f"{directory}: the export lists files that are gone: {', '.join(absent[:5])}"
        raise InputError(msg)
    actions: dict[str, dict[str, Any]] = data.get("actions") or {}

    def action_file(kind: str) -> Path | None:
        name = actions.get(kind, {}).get("path")
        return directory / name if name and (directory / name).is_file() else None

    return Manifest(
        directory=directory,
        rows=int(data.get("rows", 0)),
        symbols={s: int(e["rows"]) for s, e in entries.items()},
        splits=action_file("splits"),
        dividends=action_file("dividends"),
    )


async def import_actions(store: Store, manifest: Manifest, *, at: dt.datetime) -> ActionsReport:
    """Store the splits and dividends of a dataset (before its bars, so they score right)."""
    # As the exporting database stored them: symbols are not normalized (see ingest.check_files)
    splits = read_actions_file(manifest.splits)[0] if manifest.splits else None
    dividends = read_actions_file(manifest.dividends)[1] if manifest.dividends else None
    return await store_actions(
        store,
        splits=splits,
        dividends=dividends,
        source=f"file:{manifest.directory.name}",
        at=at,
    )
