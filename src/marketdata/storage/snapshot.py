"""Row counts and content checksums of every table, computed the same way on both backends.

A backup's manifest records, per table, how many rows it holds and a SHA-256 of its content;
a restore recomputes them on the restored database and compares. So the digest must depend on
the data only, never on the backend that holds it:

- tables and columns are *reflected* from the database (a backup of an older schema revision
  is checked before it is upgraded), columns sorted by name;
- rows are read in primary-key order; text keys sort by code point on both backends
  (``COLLATE "C"`` on PostgreSQL is SQLite's ``BINARY`` order for UTF-8);
- each value is normalised by its column's type: floats as :meth:`float.hex` (exact),
  integers in decimal, booleans as 0/1, dates ISO, timestamps as UTC ISO with microseconds,
  JSON canonical (sorted keys), text JSON-quoted, NULL as ``~``;
- rows are streamed in batches through SQLAlchemy Core and hashed as they come, so memory
  stays bounded on any table size.

``alembic_version`` is not digested: its one value is the schema revision, reported apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from marketdata.errors import DatabaseUnreachable, MarketDataError, StorageError
from marketdata.storage.urls import DatabaseUrl

#: Rows fetched and hashed per batch.
BATCH_ROWS = 20_000
#: Names the digest algorithm in manifests; bump it when the normalisation changes.
DIGEST_ALGORITHM = "sha256/v1: columns by name, rows by primary key, typed normalisation"
_VERSION_TABLE = "alembic_version"

Progress = Callable[[str], None]
Normaliser = Callable[[Any], str]


class Stopped(MarketDataError):
    """The operation was stopped before it finished."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TableDigest:
    """One table's row count and content checksum."""

    rows: int
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What a database holds: its schema revision and every table's digest, by table name."""

    revision: str | None
    tables: Mapping[str, TableDigest]

    @property
    def rows(self) -> int:
        """Rows in all tables."""
        return sum(t.rows for t in self.tables.values())


# -- value normalisation -------------------------------------------------------------------


def _float(value: Any) -> str:
    return float(value).hex()


def _integer(value: Any) -> str:
    return str(int(value))


def _boolean(value: Any) -> str:
    return "1" if value in (True, 1, "1", "true", "t") else "0"


def _date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return dt.date.fromisoformat(str(value)[:10]).isoformat()


def _timestamp(value: Any) -> str:
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _json(value: Any) -> str:
    data = json.loads(value) if isinstance(value, str | bytes) else value
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _binary(value: Any) -> str:
    return bytes(value).hex()


def _text(value: Any) -> str:
    return json.dumps(str(value))


def normaliser(column_type: sa.types.TypeEngine[Any]) -> Normaliser:
    """How values of a column of ``column_type`` are written into the digest."""
    table: tuple[tuple[type[Any], Normaliser], ...] = (
        (sa.Boolean, _boolean),
        (sa.DateTime, _timestamp),
        (sa.Date, _date),
        (sa.Float, _float),
        (sa.Numeric, _float),
        (sa.Integer, _integer),
        (sa.JSON, _json),
        (sa.LargeBinary, _binary),
    )
    for kind, function in table:
        if isinstance(column_type, kind):
            return function
    return _text


def _line(values: tuple[Any, ...], normalisers: tuple[Normaliser, ...]) -> str:
    return "\x1f".join("~" if v is None else f(v) for v, f in zip(values, normalisers, strict=True))


# -- reading ---------------------------------------------------------------------------------


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Stopped


def table_digest(
    conn: sa.Connection,
    table: sa.Table,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    batch: int = BATCH_ROWS,
) -> TableDigest:
    """Count and hash ``table`` (reflected) through ``conn``."""
    columns = sorted(table.columns, key=lambda c: c.name)
    normalisers = tuple(normaliser(c.type) for c in columns)
    keys = list(table.primary_key.columns) or columns
    postgres = conn.dialect.name == "postgresql"
    order = [
        sa.column(k.name).collate("C")
        if postgres and isinstance(k.type, sa.String)
        else sa.column(k.name)
        for k in keys
    ]
    # Lightweight columns carry no type: values arrive as the driver returns them, without
    # SQLAlchemy's per-dialect conversions, and are normalised here.
    selected: list[sa.ColumnClause[Any]] = [sa.column(c.name) for c in columns]
    query = sa.select(*selected).select_from(sa.table(table.name)).order_by(*order)
    digest = hashlib.sha256()
    digest.update(("\x1f".join(c.name for c in columns) + "\n").encode())
    rows = 0
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
    for part in result.partitions(batch):
        _check(stop)
        chunk = "\n".join(_line(tuple(r), normalisers) for r in part)
        digest.update(chunk.encode())
        digest.update(b"\n")
        rows += len(part)
        if progress is not None:
            progress(f"checksumming {table.name}: {rows:,} rows")
    return TableDigest(rows=rows, sha256=digest.hexdigest())


def read_revision(conn: sa.Connection) -> str | None:
    """The Alembic revision recorded in the database, if any."""
    if not sa.inspect(conn).has_table(_VERSION_TABLE):
        return None
    revision = conn.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()
    return str(revision) if revision is not None else None


def _reflect(conn: sa.Connection) -> list[sa.Table]:
    metadata = sa.MetaData()
    metadata.reflect(conn)
    return sorted(
        (t for t in metadata.tables.values() if t.name != _VERSION_TABLE), key=lambda t: t.name
    )


def snapshot_of(
    conn: sa.Connection,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> Snapshot:
    """Revision and every table's digest, read through ``conn`` (one transaction: a
    consistent view when the connection's isolation gives one)."""
    tables = {}
    for table in _reflect(conn):
        _check(stop)
        tables[table.name] = table_digest(conn, table, progress=progress, stop=stop)
    return Snapshot(revision=read_revision(conn), tables=tables)


@contextmanager
def connect(db: DatabaseUrl, *, consistent: bool = False) -> Iterator[sa.Connection]:
    """A SQLAlchemy connection to ``db``; with ``consistent``, one read-only repeatable-read
    transaction on PostgreSQL (SQLite reads are already one snapshot per transaction)."""
    engine = sa.create_engine(db.sqlalchemy, poolclass=sa.NullPool)
    try:
        try:
            conn = engine.connect()
        except sa.exc.OperationalError as exc:
            msg = f"cannot connect to {db.display}: {first_line(exc.orig)}"
            raise DatabaseUnreachable(msg) from None
        with conn:
            if consistent and db.backend == "postgresql":
                conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            elif consistent:
                conn.exec_driver_sql("BEGIN")  # pysqlite leaves reads outside transactions
            try:
                yield conn
            except sa.exc.SQLAlchemyError as exc:
                msg = f"{db.display}: {first_line(getattr(exc, 'orig', None) or exc)}"
                raise StorageError(msg) from None
    finally:
        engine.dispose()


def take_snapshot(
    db: DatabaseUrl, *, progress: Progress | None = None, stop: threading.Event | None = None
) -> Snapshot:
    """Digest every table of ``db`` in one consistent read."""
    with connect(db, consistent=True) as conn:
        return snapshot_of(conn, progress=progress, stop=stop)


def tables_with_rows(db: DatabaseUrl) -> list[str]:
    """The tables of ``db`` that hold at least one row (``alembic_version`` aside), by name."""
    with connect(db) as conn:
        return [
            t.name
            for t in _reflect(conn)
            if conn.execute(sa.select(sa.literal(1)).select_from(sa.table(t.name)).limit(1)).first()
            is not None
        ]


def first_line(exc: BaseException | None) -> str:
    """The first line of an exception's text (drivers add context lines)."""
    text = str(exc or "").strip().splitlines()
    return text[0] if text else "unknown error"


# -- revisions -------------------------------------------------------------------------------


def revision_kind(revision: str | None) -> str:
    """``head``, ``older`` (this version can upgrade from it) or ``unknown`` (a newer
    marketdata made it, or it is not a marketdata revision); ``none`` when there is none."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    if revision is None:
        return "none"
    config = Config()
    config.set_main_option("script_location", "marketdata.storage:migrations")
    scripts = ScriptDirectory.from_config(config)
    if revision == scripts.get_current_head():
        return "head"
    try:
        known = scripts.get_revision(revision)
    except CommandError:
        return "unknown"
    return "older" if known is not None else "unknown"
