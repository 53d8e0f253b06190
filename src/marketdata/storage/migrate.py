"""Apply and check the Alembic migrations shipped inside the package."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from marketdata.errors import ConfigError, DatabaseUnreachable, SchemaOutOfDate, StorageError
from marketdata.storage.urls import DatabaseUrl

log = logging.getLogger(__name__)


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "marketdata.storage:migrations")
    return cfg


def head_revision() -> str:
    """The newest revision this version of marketdata ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None  # the package always ships migrations
    return head


@contextmanager
def _connect(db: DatabaseUrl) -> Iterator[sa.Connection]:
    if db.backend == "sqlite":
        db.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(db.sqlalchemy, poolclass=sa.NullPool)
    try:
        try:
            conn = engine.connect()
        except sa.exc.OperationalError as exc:
            raise DatabaseUnreachable(
                f"cannot connect to {db.display}: {_first_line(exc.orig)}"
            ) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def _first_line(exc: BaseException | None) -> str:
    text = str(exc or "").strip().splitlines()
    return text[0] if text else "unknown error"


def bars_kind(db: DatabaseUrl) -> str:
    """How ``bars`` is stored: a TimescaleDB hypertable, a plain table, or a SQLite table."""
    if db.backend == "sqlite":
        return "SQLite table"
    with _connect(db) as conn:
        has_extension = conn.execute(
            sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        ).scalar()
        hypertable = (
            has_extension
            and conn.execute(
                sa.text(
                    "SELECT count(*) FROM timescaledb_information.hypertables "
                    "WHERE hypertable_name = 'bars'"
                )
            ).scalar()
        )
    return "TimescaleDB hypertable" if hypertable else "plain table"


def current_revision(db: DatabaseUrl) -> str | None:
    """The revision the database is at, or ``None`` when it has never been migrated."""
    with _connect(db) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: DatabaseUrl, revision: str = "head") -> str:
    """Migrate the database to ``revision``; returns the revision reached."""
    cfg = _config()
    with _connect(db) as conn:
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, revision)
            conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            msg = f"migration of {db.display} failed: {_first_line(exc.orig or exc)}"  # type: ignore[attr-defined]
            raise StorageError(msg) from None
        return MigrationContext.configure(conn).get_current_revision() or ""


def ensure_current(db: DatabaseUrl, *, create: bool = True) -> None:
    """Check the schema at start-up.

    A database that was never migrated (a new SQLite file, an empty PostgreSQL database) is
    created when ``create`` is true: zero set-up. One that is behind raises
    :class:`SchemaOutOfDate` telling the user to run ``marketdata db upgrade``.
    """
    current = current_revision(db)
    head = head_revision()
    if current == head:
        return
    if current is None and create:
        _refuse_foreign(db)
        log.info("creating the schema in %s", db.display, extra={"event": "schema_created"})
        upgrade(db)
        return
    if current is None:
        msg = f"{db.display} has no marketdata schema: run `marketdata db upgrade`"
        raise SchemaOutOfDate(msg)
    msg = (
        f"{db.display} is at schema revision {current}, this version needs {head}: "
        "run `marketdata db upgrade`"
    )
    raise SchemaOutOfDate(msg)


def foreign_tables(db: DatabaseUrl) -> list[str]:
    """Tables in ``db`` (PostgreSQL: in the search path's first schema) that are not
    marketdata's, sorted."""
    from marketdata.storage.schema import metadata  # the tables migrations create

    ours = {t.name for t in metadata.sorted_tables} | {"alembic_version"}
    with _connect(db) as conn:
        names = sa.inspect(conn).get_table_names()
    return sorted(n for n in names if n not in ours)


def _refuse_foreign(db: DatabaseUrl) -> None:
    """:class:`ConfigError` before creating our tables beside someone else's: a database named
    by mistake (``postgres``, another app's) is left untouched. ``marketdata db upgrade``
    still creates them there when that is what the user wants."""
    others = foreign_tables(db)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        msg = (
            f"{db.display} has no marketdata schema but holds other tables ({shown}): give "
            "marketdata a database of its own (an empty one is set up automatically), or run "
            "`marketdata db upgrade` to add its tables there anyway"
        )
        raise ConfigError(msg)
