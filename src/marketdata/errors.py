"""Every error marketdata raises on purpose, in one tree.

Callers catch what they can act on; the CLI and the API turn these into a short
message and an exit code or HTTP status. Messages never carry secrets.

    MarketDataError
    ├── ConfigError            settings are missing or unsafe
    ├── StorageError           the database failed or refused
    │   ├── DatabaseUnreachable    cannot connect (host named, never the password)
    │   └── SchemaOutOfDate        migrations have not been applied
    ├── InputError             a file or argument cannot be used as given
    │   └── DataRejected           rows failed parsing and --strict forbids writing
    └── NotFound               the thing asked for does not exist
"""

from __future__ import annotations


class MarketDataError(Exception):
    """Something went wrong in marketdata."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self)


class ConfigError(MarketDataError):
    """The settings are invalid."""


class StorageError(MarketDataError):
    """The database failed."""


class DatabaseUnreachable(StorageError):
    """Cannot connect to the database."""


class SchemaOutOfDate(StorageError):
    """The database schema is older than this version of marketdata expects."""


class InputError(MarketDataError):
    """The input cannot be used."""


class DataRejected(InputError):
    """The input contains rows that cannot be loaded."""


class NotFound(MarketDataError):
    """Not found."""
