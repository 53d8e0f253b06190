"""Test databases: a migrated SQLite template copied per test, and one PostgreSQL database per
test session (created fresh, migrated once, truncated before each test, dropped at the end)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from marketdata.storage import DatabaseUrl, upgrade
from marketdata.storage.schema import metadata

#: Where the test PostgreSQL server is; a database is created next to this one.
ADMIN_URL = os.environ.get("MARKETDATA_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

BACKENDS = ["sqlite", "postgresql"]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")  # only outside CI (see above)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the schema applied, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(DatabaseUrl.parse(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """A freshly created, migrated PostgreSQL database for this test session; dropped after."""
    admin = DatabaseUrl.parse(ADMIN_URL)
    name = f"marketdata_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(admin.conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        _unavailable(str(exc).strip().splitlines()[0])
    url = admin.with_database(name)
    try:
        upgrade(url)
        yield url.conninfo
    finally:
        with psycopg.connect(admin.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def truncate_all(conninfo: str) -> None:
    """Empty every table (fast per-test isolation on the shared session database)."""
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on each backend in turn."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "marketdata.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_session_url")
    truncate_all(url)
    return str(url)
