"""Migrations: Alembic head equals schema.py; start-up checks; the plain-table path on PG."""

from __future__ import annotations

import logging
import secrets
import sqlite3
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg import sql

from marketdata.errors import ConfigError, SchemaOutOfDate
from marketdata.storage import DatabaseUrl, ensure_current, head_revision, upgrade
from marketdata.storage.migrate import bars_kind, current_revision
from marketdata.storage.schema import metadata
from tests.integration.test_cli import run_cli
from tests.support.databases import ADMIN_URL


def test_migrations_match_schema(database_url: str) -> None:
    """Applying every migration yields exactly the tables schema.py defines."""
    db = DatabaseUrl.parse(database_url)
    engine = sa.create_engine(db.sqlalchemy, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []
    assert current_revision(db) == head_revision()


def test_new_database_is_created_at_start(tmp_path: Path) -> None:
    """Zero set-up: a new SQLite file gets the schema on first use."""
    db = DatabaseUrl.parse(f"sqlite:///{tmp_path / 'sub' / 'new.db'}")
    ensure_current(db)
    assert current_revision(db) == head_revision()


def test_behind_database_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    """A database at an older revision is not touched; the message says what to run."""
    path = tmp_path / "old.db"
    db = DatabaseUrl.parse(f"sqlite:///{path}")
    upgrade(db)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000_older'")
    with pytest.raises(SchemaOutOfDate, match=r"run `marketdata db upgrade`"):
        ensure_current(db)


def test_uncreated_database_can_be_refused(tmp_path: Path) -> None:
    """With creation off, an empty database is reported, not silently migrated."""
    db = DatabaseUrl.parse(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SchemaOutOfDate, match="no marketdata schema"):
        ensure_current(db, create=False)


def test_upgrade_is_idempotent(database_url: str) -> None:
    """Running the upgrade again is a no-op."""
    db = DatabaseUrl.parse(database_url)
    assert upgrade(db) == head_revision()
    assert upgrade(db) == head_revision()


@pytest.mark.postgres
def test_postgres_without_timescaledb_uses_a_plain_table(
    postgres_session_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """TimescaleDB is not installed here: migrating logs the plain-table path and bars is plain."""
    admin = DatabaseUrl.parse(ADMIN_URL)
    name = f"marketdata_test_plain_{secrets.token_hex(3)}"
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        db = admin.with_database(name)
        caplog.set_level(logging.INFO, logger="marketdata")
        upgrade(db)
        assert bars_kind(db) == "plain table"
        assert any("plain PostgreSQL table" in r.getMessage() for r in caplog.records)
        engine = sa.create_engine(db.sqlalchemy, poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                has_ext = conn.execute(
                    sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
                ).scalar()
        finally:
            engine.dispose()
        assert has_ext == 0
    finally:
        with psycopg.connect(admin.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_sqlite_bars_kind(tmp_path: Path) -> None:
    """SQLite reports its own kind of table."""
    assert bars_kind(DatabaseUrl.parse(f"sqlite:///{tmp_path / 'x.db'}")) == "SQLite table"


def test_a_database_holding_other_tables_is_left_untouched(tmp_path: Path) -> None:
    """A SQLite file of another app: no marketdata tables are added beside its own, the error
    says what to do, and ``upgrade`` (``marketdata db upgrade``) still adds them on request."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    db = DatabaseUrl.parse(f"sqlite:///{path}")
    with pytest.raises(ConfigError, match=r"holds other tables \(invoices\).*database of its own"):
        ensure_current(db)
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"invoices"}
    upgrade(db)
    ensure_current(db)  # now ours: fine
    assert current_revision(db) == head_revision()


@pytest.mark.postgres
def test_postgres_database_of_another_app_is_refused_by_the_cli(
    postgres_session_url: str, tmp_path: Path
) -> None:
    """``marketdata status`` pointed at a database with other tables (the ``postgres``
    maintenance database, say) is one clear line and creates nothing."""
    admin = DatabaseUrl.parse(ADMIN_URL)
    name = f"marketdata_test_foreign_{secrets.token_hex(3)}"
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        db = admin.with_database(name)
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            for table in ("accounts", "orders"):
                conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(table)))
        done = run_cli("--database-url", db.conninfo, "status")
        assert done.returncode == 1
        assert "holds other tables (accounts, orders)" in done.stderr
        assert "Traceback" not in done.stderr
        with psycopg.connect(db.conninfo) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchall()
        assert sorted(r[0] for r in rows) == ["accounts", "orders"]
    finally:
        with psycopg.connect(admin.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
