"""The domain-error → HTTP status table."""

from __future__ import annotations

import pytest

from marketdata.api.errors import status_for
from marketdata.errors import (
    ConfigError,
    DatabaseUnreachable,
    DataRejected,
    InputError,
    MarketDataError,
    NotFound,
    SchemaOutOfDate,
    StorageError,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("x"), 404),
        (InputError("x"), 422),
        (DataRejected("x"), 422),
        (DatabaseUnreachable("x"), 503),
        (SchemaOutOfDate("x"), 503),
        (StorageError("x"), 500),
        (ConfigError("x"), 500),
        (MarketDataError("x"), 500),
    ],
)
def test_status_for(error: MarketDataError, status: int) -> None:
    """Each error class maps to the status a client can act on."""
    assert status_for(error) == status


def test_default_message_is_the_docstring() -> None:
    """An error raised without a message says what its class means."""
    assert str(NotFound()) == "Not found."
