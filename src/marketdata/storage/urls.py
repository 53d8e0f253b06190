"""Database URLs: which backend, how each driver wants it, and how to show it safely.

Parsed with the standard library so that checking a URL (every CLI start) stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, unquote, urlsplit

from marketdata.errors import ConfigError

Backend = Literal["sqlite", "postgresql"]

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseUrl:
    """A parsed ``sqlite:///…`` or ``postgresql://…`` URL."""

    backend: Backend
    parts: SplitResult

    @classmethod
    def parse(cls, raw: str) -> DatabaseUrl:
        """Parse ``raw``; a malformed URL or unknown scheme is a :class:`ConfigError`."""
        try:
            parts = urlsplit(raw.strip())
            _ = parts.port  # validates the port
        except ValueError as exc:
            msg = f"database URL is malformed ({exc}): expected sqlite:///path or postgresql://host/db"
            raise ConfigError(msg) from None
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            path = parts.path[1:] if parts.path.startswith("/") else parts.path
            if parts.netloc or not path or path == ":memory:":
                msg = "a SQLite database URL needs a file path: sqlite:///path/to/file.db"
                raise ConfigError(msg)
            return cls(backend="sqlite", parts=parts)
        if scheme in _POSTGRES_SCHEMES:
            if not parts.path.strip("/"):
                msg = "a PostgreSQL database URL needs a database name: postgresql://host/db"
                raise ConfigError(msg)
            return cls(backend="postgresql", parts=parts._replace(scheme="postgresql"))
        msg = (
            f"unsupported database {scheme or raw[:20]!r}: "
            "use sqlite:///path or postgresql://host/db"
        )
        raise ConfigError(msg)

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file (only for the sqlite backend)."""
        path = self.parts.path
        return Path(unquote(path[1:] if path.startswith("/") else path))

    @property
    def database(self) -> str:
        """The PostgreSQL database name or the SQLite file."""
        if self.backend == "sqlite":
            return str(self.sqlite_path)
        return unquote(self.parts.path.lstrip("/"))

    @property
    def password(self) -> str | None:
        """The password, if the URL carries one (for redaction)."""
        return self.parts.password

    @property
    def url(self) -> str:
        """The URL as :func:`~marketdata.storage.open_store` takes it (password included: never
        log it, log :attr:`display`)."""
        return _unsplit(self.parts)

    @property
    def conninfo(self) -> str:
        """A libpq connection URL for psycopg (only for the postgresql backend)."""
        return _unsplit(self.parts)

    @property
    def sqlalchemy(self) -> str:
        """The URL for SQLAlchemy/Alembic, with the driver marketdata ships."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        return _unsplit(self.parts._replace(scheme="postgresql+psycopg"))

    @property
    def display(self) -> str:
        """Where the database is, for messages: host, port and name, never the password."""
        if self.backend == "sqlite":
            return f"SQLite file {self.sqlite_path}"
        host = self.parts.hostname or "localhost (socket)"
        port = f":{self.parts.port}" if self.parts.port else ""
        user = f"{unquote(self.parts.username)}@" if self.parts.username else ""
        return f"PostgreSQL {user}{host}{port}/{self.database}"

    def with_database(self, name: str) -> DatabaseUrl:
        """The same server, another database."""
        return DatabaseUrl(backend=self.backend, parts=self.parts._replace(path=f"/{name}"))


def _unsplit(parts: SplitResult) -> str:
    """``parts`` as a URL, keeping ``//`` when there is no host (``postgresql:///db`` means
    the local socket; the standard library would write ``postgresql:/db``)."""
    url = parts.geturl()
    if not parts.netloc:
        url = f"{parts.scheme}://{url.removeprefix(parts.scheme + ':')}"
    return url
