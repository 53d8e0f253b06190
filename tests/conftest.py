"""Shared fixtures: environment scrubbing, databases on both backends, a store."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from marketdata.storage import Store, open_store
from tests.support.databases import database_url, postgres_session_url, sqlite_template

#: The fake Polygon fixtures (``upstream``, ``client``) are available to every test.
pytest_plugins = ["tests.support.polygon"]

__all__ = ["database_url", "postgres_session_url", "sqlite_template"]


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's MARKETDATA_*/POLYGON_* settings or a .env file."""
    for name in list(os.environ):
        if (
            name.startswith(("MARKETDATA_", "POLYGON_", "MASSIVE_"))
            and name != "MARKETDATA_TEST_POSTGRES_URL"
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """An open store on an empty database, on each backend in turn."""
    opened = await open_store(database_url)
    try:
        yield opened
    finally:
        await opened.aclose()
