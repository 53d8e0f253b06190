"""Database URLs: which backend, how each driver wants it, and how to show it safely."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from marketdata.errors import ConfigError

Backend = Literal["sqlite", "postgresql"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseUrl:
    """A parsed ``sqlite:///…`` or ``postgresql://…`` URL."""

    backend: Backend
    url: URL

    @classmethod
    def parse(cls, raw: str) -> DatabaseUrl:
        """Parse ``raw``; a malformed URL or unknown scheme is a :class:`ConfigError`."""
        try:
            url = make_url(raw)
        except ArgumentError as exc:
            msg = "database URL is malformed: expected sqlite:///path or postgresql://host/db"
            raise ConfigError(msg) from exc
        name = url.get_backend_name()
        if name == "sqlite":
            if not url.database or url.database == ":memory:":
                msg = "a SQLite database URL needs a file path: sqlite:///path/to/file.db"
                raise ConfigError(msg)
            return cls(backend="sqlite", url=url.set(drivername="sqlite"))
        if name in ("postgresql", "postgres"):
            if not url.database:
                msg = "a PostgreSQL database URL needs a database name: postgresql://host/db"
                raise ConfigError(msg)
            return cls(backend="postgresql", url=url.set(drivername="postgresql"))
        msg = f"unsupported database {name!r}: use sqlite:///path or postgresql://host/db"
        raise ConfigError(msg)

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file (only for the sqlite backend)."""
        return Path(self.url.database or "")

    @property
    def conninfo(self) -> str:
        """A libpq connection string for psycopg (only for the postgresql backend)."""
        return self.url.render_as_string(hide_password=False)

    @property
    def sqlalchemy(self) -> str:
        """The URL for SQLAlchemy/Alembic, with the driver marketdata ships."""
        driver = "sqlite" if self.backend == "sqlite" else "postgresql+psycopg"
        return self.url.set(drivername=driver).render_as_string(hide_password=False)

    @property
    def display(self) -> str:
        """Where the database is, for messages: host, port and name, never the password."""
        if self.backend == "sqlite":
            return f"SQLite file {self.sqlite_path}"
        host = self.url.host or "localhost (socket)"
        port = f":{self.url.port}" if self.url.port else ""
        user = f"{self.url.username}@" if self.url.username else ""
        return f"PostgreSQL {user}{host}{port}/{self.url.database}"

    def with_database(self, name: str) -> DatabaseUrl:
        """The same server, another database (PostgreSQL) or file (SQLite)."""
        return DatabaseUrl(backend=self.backend, url=self.url.set(database=name))
