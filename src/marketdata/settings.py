"""The one settings object, read once at the edge (CLI callback, app factory) and passed down.

Environment variables are prefixed ``MARKETDATA_`` (plus the vendor's ``POLYGON_*`` names) and may
also come from a ``.env`` file in the working directory. Nothing else in marketdata reads
``os.environ``.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from marketdata.crontab import parse_crontab
from marketdata.errors import InputError
from marketdata.logs import LogFormat
from marketdata.symbols import DEFAULT_SYMBOLS, normalize_symbols

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

#: The variable named in the error about each base URL setting.
_URL_VARIABLES = {
    "polygon_base_url": "POLYGON_BASE_URL",
    "yahoo_base_url": "MARKETDATA_YAHOO_BASE_URL",
}
_SUPPORTED_SCHEMES = ("sqlite://", "postgresql://", "postgres://", "postgresql+psycopg://")


class Settings(BaseSettings):
    """Everything configurable about a marketdata installation."""

    model_config = SettingsConfigDict(
        env_prefix="MARKETDATA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(
        default=Path("data"),
        description="Where the embedded SQLite database (and, by default, backups) live.",
    )
    database_url: str = Field(
        default="",
        description=(
            "sqlite:///path/file.db or postgresql://user@host:port/db. "
            "Empty means a SQLite file `marketdata.db` under data_dir."
        ),
    )
    log_level: LogLevel = "INFO"
    log_format: LogFormat = Field(
        default="auto",
        description=(
            "How logs are written to stderr: `json` lines, human `text`, or `auto` "
            "(JSON unless stderr is a terminal)."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address `marketdata serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `marketdata serve` uses.")
    simulate: bool = Field(
        default=True,
        description=(
            "With no POLYGON_API_KEY, fill an empty database with simulated bars so the "
            "service has something to show (clearly marked; replaced by real data)."
        ),
    )
    import_chunk_rows: int = Field(
        default=100_000,
        ge=1_000,
        le=5_000_000,
        description="Rows per transaction when importing files; bounds memory.",
    )
    polygon_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("POLYGON_API_KEY", "MASSIVE_API_KEY"),
        description="Polygon.io / Massive API key (kept secret; never logged).",
    )
    polygon_calls_per_minute: float = Field(
        default=5,
        ge=0,
        validation_alias=AliasChoices(
            "POLYGON_CALLS_PER_MINUTE", "MARKETDATA_POLYGON_CALLS_PER_MINUTE"
        ),
        description="Client-side pacing of vendor calls (5 on the free plan; 0 = unlimited).",
    )
    polygon_timeout: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("POLYGON_TIMEOUT", "MARKETDATA_POLYGON_TIMEOUT"),
        description="Seconds to wait for one vendor response.",
    )
    polygon_retry_deadline: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices(
            "POLYGON_RETRY_DEADLINE", "MARKETDATA_POLYGON_RETRY_DEADLINE"
        ),
        description="Total seconds a vendor call may spend retrying 429s, 5xx and timeouts.",
    )
    polygon_base_url: str = Field(
        default="https://api.massive.com",
        validation_alias=AliasChoices("POLYGON_BASE_URL", "MASSIVE_BASE_URL"),
        description="Base URL of the Polygon/Massive REST API.",
    )
    yahoo_base_url: str = Field(
        default="https://query2.finance.yahoo.com",
        description="Base URL of Yahoo Finance's chart API, used by `marketdata verify`.",
    )

    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_SYMBOLS,
        description=(
            "The default watchlist, comma-separated (e.g. AAPL,MSFT,BRK.B); "
            "`marketdata symbols add/remove` changes it on top of this."
        ),
    )
    backfill_years: int = Field(
        default=5,
        ge=1,
        le=60,
        description="Years of history a watched symbol gets unless added with --years.",
    )
    backfill_overlap: int = Field(
        default=2,
        ge=0,
        le=30,
        description=(
            "Sessions before a symbol's last stored bar that each update fetches again, "
            "to pick up the vendor's corrections."
        ),
    )
    backfill_delay_minutes: int = Field(
        default=60,
        ge=0,
        le=24 * 60,
        description=(
            "Minutes after the close before a session counts as complete at the vendor "
            "(earlier runs stop at the session before)."
        ),
    )
    backfill_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Vendor requests in flight at once (the rate limit still paces them).",
    )
    backfill_cron: str = Field(
        default="0 2 * * *",
        description="When the daily backfill runs: a crontab expression in UTC (02:00 UTC).",
    )
    scheduler: bool = Field(
        default=True,
        description="Run the scheduler (daily backfill) inside `marketdata serve`.",
    )

    backup_dir: Path | None = Field(
        default=None,
        description="Where `marketdata backup` and the scheduled backup write (default: "
        "data_dir/backups).",
    )
    backup_cron: str = Field(
        default="0 3 * * 0",
        description="When the scheduled backup runs: a crontab expression in UTC (Sundays "
        "03:00 UTC); empty turns it off.",
    )
    backup_keep_daily: int = Field(
        default=7,
        ge=0,
        le=3660,
        description="Backups kept by day: the newest of each of the last N days.",
    )
    backup_keep_weekly: int = Field(
        default=8,
        ge=0,
        le=520,
        description="Backups kept by week: the newest of each of the last N ISO weeks "
        "(the newest verified backup is always kept).",
    )
    backup_pg_bin_dir: Path | None = Field(
        default=None,
        description="Directory holding pg_dump and pg_restore (default: found on PATH); they "
        "must be at least the PostgreSQL server's major version.",
    )

    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(),
        description=(
            "Keys that may call the API's write endpoints (POST/DELETE), comma-separated; "
            "sent as X-API-Key or Authorization: Bearer. Empty: writes are refused."
        ),
    )
    require_key_for_reads: bool = Field(
        default=False, description="Also require an API key for every read endpoint."
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Origins allowed to call the API from a browser (CORS), comma-separated.",
    )
    api_max_rows: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="Most bars in one API response; longer results continue with a cursor.",
    )
    dashboard_refresh_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="How often /dashboard refreshes its data (seconds; `?refresh=` overrides).",
    )

    @field_validator("polygon_api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: object) -> object:
        """``POLYGON_API_KEY=`` (as left in a copied .env file) means no key, not an empty one."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _key_list(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        if isinstance(value, list | tuple):
            return tuple(
                (v.get_secret_value() if isinstance(v, SecretStr) else str(v)).strip()
                for v in value
                if str(v).strip()
            )
        msg = "MARKETDATA_API_KEYS must be a comma-separated list of keys"
        raise ValueError(msg)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            msg = "MARKETDATA_CORS_ORIGINS must be a comma-separated list of origins"
            raise ValueError(msg)
        origins = tuple(str(o).strip().rstrip("/") for o in items if str(o).strip())
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                msg = f"MARKETDATA_CORS_ORIGINS: {origin!r} is not an http(s) origin"
                raise ValueError(msg)
        return origins

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        """``debug`` is ``DEBUG``, ``JSON`` is ``json``: people type either."""
        if not isinstance(value, str):
            return value
        value = value.strip()
        return value.upper() if info.field_name == "log_level" else value.lower()

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbol_list(cls, value: object) -> tuple[str, ...]:
        """Comma-separated; empty items are skipped, and an item with a space in it is an
        error (``AAPL MSFT`` is not two symbols here)."""
        try:
            if isinstance(value, str):
                return tuple(normalize_symbols(v for v in value.split(",") if v.strip()))
            if isinstance(value, list | tuple):
                return tuple(normalize_symbols(str(v) for v in value))
        except InputError as exc:
            raise ValueError(f"MARKETDATA_SYMBOLS (comma-separated): {exc}") from None
        msg = "MARKETDATA_SYMBOLS must be a comma-separated list of symbols"
        raise ValueError(msg)

    @field_validator("backfill_cron", "backup_cron")
    @classmethod
    def _crontab(cls, value: str, info: ValidationInfo) -> str:
        value = " ".join(value.split())
        if not value and info.field_name == "backup_cron":
            return value  # scheduled backups off
        try:
            parse_crontab(value)
        except ValueError as exc:
            variable = f"MARKETDATA_{str(info.field_name).upper()}"
            raise ValueError(f"{variable} {value!r}: {exc}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(_SUPPORTED_SCHEMES):
            scheme = value.split(":", 1)[0] if ":" in value else value[:20]
            msg = (
                f"MARKETDATA_DATABASE_URL has unsupported scheme {scheme!r}: "
                "use sqlite:///path/file.db or postgresql://user@host:port/db"
            )
            raise ValueError(msg)
        return value

    @field_validator("polygon_base_url", "yahoo_base_url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            msg = f"{_URL_VARIABLES[str(info.field_name)]} must start with http:// or https://"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'marketdata.db'}"
        return self

    def secret_values(self) -> list[str]:
        """Every secret held here (vendor key, API keys, database password): what logs redact."""
        secrets = [self.polygon_api_key.get_secret_value()] if self.polygon_api_key else []
        secrets += [key.get_secret_value() for key in self.api_keys]
        try:
            password = urlsplit(self.database_url).password
        except ValueError:  # a malformed URL fails later, with its own message
            password = None
        if password:
            secrets += [password, unquote(password)]
        return secrets


def env_variable(field: str) -> str:
    """The environment variable that sets ``field``: its first alias, else ``MARKETDATA_…``."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    return f"MARKETDATA_{field.upper()}"


def describe_errors(exc: ValidationError, *, given: Collection[str] = ()) -> str:
    """``exc`` in the user's terms, one problem after another on one line: each named by its
    environment variable, or by its ``--option`` for the fields in ``given`` (values from the
    command line). Values are not repeated (they may be secrets), except a rejected choice."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        env = env_variable(field) if field in Settings.model_fields else field.upper()
        name = f"--{field.replace('_', '-')}" if field in given else env or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "literal_error" and isinstance(error.get("input"), str):
            message += f", got {error['input'][:40]!r}"
        if env and message.startswith(env):  # the validator named it already
            problems.append(name + message.removeprefix(env))
        else:
            problems.append(f"{name}: {message}")
    return "; ".join(problems)
