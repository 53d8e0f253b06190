"""Settings, database URLs and secret redaction."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketdata.errors import ConfigError
from marketdata.logs import RedactSecrets, redact_url_passwords
from marketdata.settings import Settings
from marketdata.storage.urls import DatabaseUrl


def test_defaults_use_sqlite_under_data_dir() -> None:
    """Zero configuration: a SQLite file under ./data, the Massive base URL, no key."""
    settings = Settings()
    assert settings.database_url == "sqlite:///data/marketdata.db"
    assert settings.polygon_base_url == "https://api.massive.com"
    assert settings.polygon_api_key is None


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """MARKETDATA_* variables and a .env file are read; the vendor's names too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MARKETDATA_PORT=9001\nPOLYGON_API_KEY=abc123secretkey\n")
    monkeypatch.setenv("MARKETDATA_DATA_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("POLYGON_BASE_URL", "http://127.0.0.1:9/")
    settings = Settings()
    assert settings.port == 9001
    assert settings.database_url == f"sqlite:///{tmp_path / 'store' / 'marketdata.db'}"
    assert settings.polygon_api_key is not None
    assert settings.polygon_api_key.get_secret_value() == "abc123secretkey"
    assert "abc123secretkey" not in repr(settings)
    assert settings.polygon_base_url == "http://127.0.0.1:9"


def test_massive_key_name_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The renamed vendor's MASSIVE_API_KEY works too."""
    monkeypatch.setenv("MASSIVE_API_KEY", "k-massive-1234")
    key = Settings().polygon_api_key
    assert key is not None
    assert key.get_secret_value() == "k-massive-1234"


def test_blank_polygon_key_means_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """``POLYGON_API_KEY=`` left empty in a copied .env keeps the keyless (simulated) mode."""
    monkeypatch.setenv("POLYGON_API_KEY", "  ")
    assert Settings().polygon_api_key is None


@pytest.mark.parametrize(
    ("raw", "conninfo", "sqlalchemy"),
    [
        ("postgresql:///md", "postgresql:///md", "postgresql+psycopg:///md"),
        (
            "postgres:///md?host=/var/run/postgresql",
            "postgresql:///md?host=/var/run/postgresql",
            "postgresql+psycopg:///md?host=/var/run/postgresql",
        ),
        ("postgresql://h:5433/md", "postgresql://h:5433/md", "postgresql+psycopg://h:5433/md"),
    ],
)
def test_socket_urls_keep_their_slashes(raw: str, conninfo: str, sqlalchemy: str) -> None:
    """A URL without a host (the local socket) stays a URL for psycopg and SQLAlchemy."""
    db = DatabaseUrl.parse(raw)
    assert (db.conninfo, db.sqlalchemy) == (conninfo, sqlalchemy)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("MARKETDATA_DATABASE_URL", "mysql://db", "unsupported scheme"),
        ("MARKETDATA_PORT", "0", "greater than or equal to 1"),
        ("POLYGON_BASE_URL", "ftp://x", "must start with http"),
        ("MARKETDATA_LOG_LEVEL", "LOUD", "DEBUG"),
    ],
)
def test_invalid_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    """Unsafe or malformed values fail at start-up with the field named."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_yahoo_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Yahoo's base URL defaults to query2, comes from MARKETDATA_YAHOO_BASE_URL, must be HTTP."""
    assert Settings().yahoo_base_url == "https://query2.finance.yahoo.com"
    monkeypatch.setenv("MARKETDATA_YAHOO_BASE_URL", " http://127.0.0.1:9100/ ")
    assert Settings().yahoo_base_url == "http://127.0.0.1:9100"
    monkeypatch.setenv("MARKETDATA_YAHOO_BASE_URL", "query2.finance.yahoo.com")
    with pytest.raises(ValidationError, match="MARKETDATA_YAHOO_BASE_URL must start with http"):
        Settings()


@pytest.mark.parametrize(
    ("raw", "backend", "display"),
    [
        ("sqlite:///data/m.db", "sqlite", "SQLite file data/m.db"),
        ("sqlite:////var/lib/m.db", "sqlite", "SQLite file /var/lib/m.db"),
        ("postgresql://u:pw@db.local:5433/md", "postgresql", "PostgreSQL u@db.local:5433/md"),
        ("postgres://db.local/md", "postgresql", "PostgreSQL db.local/md"),
        ("postgresql+psycopg://u@h/md", "postgresql", "PostgreSQL u@h/md"),
    ],
)
def test_database_urls(raw: str, backend: str, display: str) -> None:
    """URLs select the backend; display never includes a password."""
    db = DatabaseUrl.parse(raw)
    assert db.backend == backend
    assert db.display == display
    assert "pw" not in db.display


def test_postgres_url_forms() -> None:
    """psycopg gets the URL as given; SQLAlchemy gets the psycopg driver."""
    db = DatabaseUrl.parse("postgres://u:p%40ss@h:5432/md")
    assert db.conninfo == "postgresql://u:p%40ss@h:5432/md"
    assert db.sqlalchemy == "postgresql+psycopg://u:p%40ss@h:5432/md"
    assert db.password == "p%40ss"
    assert db.with_database("other").database == "other"


@pytest.mark.parametrize(
    "raw",
    ["sqlite://", "sqlite:///:memory:", "postgresql://host", "redis://x", "postgresql://h:port/x"],
)
def test_unusable_urls(raw: str) -> None:
    """URLs that cannot name a database are configuration errors."""
    with pytest.raises(ConfigError):
        DatabaseUrl.parse(raw)


def test_redaction_filter_hides_keys_and_url_passwords() -> None:
    """Logged messages never carry the API key or a URL password."""
    record = logging.LogRecord(
        "marketdata",
        logging.INFO,
        __file__,
        1,
        "calling %s with key %s via %s",
        ("polygon", "SECRETKEY123", "postgresql://u:hunter2@h/db"),
        None,
    )
    RedactSecrets(["SECRETKEY123"]).filter(record)
    text = record.getMessage()
    assert "SECRETKEY123" not in text
    assert "hunter2" not in text
    assert "postgresql://u:***@h/db" in text
    assert redact_url_passwords("no url here") == "no url here"
