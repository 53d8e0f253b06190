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
    ├── NotFound               the thing asked for does not exist
    ├── Conflict               it cannot run now (another backfill holds the lock)
    └── ProviderError          the market-data vendor failed or refused (carries the URL path)
        ├── AuthenticationFailed   401: the API key is missing or unknown
        ├── PlanNotEntitled        403: the plan does not include this data
        │   └── PlanTimeframe          403: the plan's history window excludes these dates
        ├── RateLimited            429s continued past the retry deadline
        ├── ProviderUnavailable    5xx, timeouts or connection errors past the retry deadline
        ├── MalformedResponse      invalid JSON, missing fields, wrong types, unknown status
        └── UpstreamNotFound       404: the endpoint or resource does not exist upstream
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


class Conflict(MarketDataError):
    """The operation cannot run now (e.g. another backfill is running)."""


class ProviderError(MarketDataError):
    """The market-data provider failed."""

    def __init__(
        self,
        message: str | None = None,
        *,
        path: str = "",
        status_code: int | None = None,
        vendor_message: str | None = None,
    ) -> None:
        text = message or (self.__doc__ or "").strip()
        if path:
            text = f"{text} ({path})"
        super().__init__(text)
        self.path = path
        self.status_code = status_code
        self.vendor_message = vendor_message


class AuthenticationFailed(ProviderError):
    """The provider refused the API key (missing or unknown)."""


class PlanNotEntitled(ProviderError):
    """The provider plan does not include this data."""


class PlanTimeframe(PlanNotEntitled):
    """The provider plan does not cover these dates (the free plan keeps about 2 years)."""


class RateLimited(ProviderError):
    """The provider kept answering 429 (too many requests)."""

    def __init__(
        self,
        message: str | None = None,
        *,
        path: str = "",
        status_code: int | None = 429,
        vendor_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, path=path, status_code=status_code, vendor_message=vendor_message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The provider did not answer properly (server error, timeout or connection failure)."""


class MalformedResponse(ProviderError):
    """The provider's response could not be understood."""


class UpstreamNotFound(ProviderError):
    """The provider has no such endpoint or resource."""
