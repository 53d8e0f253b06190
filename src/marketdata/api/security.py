"""Who may call what: API keys for writes (and optionally reads), CORS, bounded requests.

(Skeleton: implemented in full by the security work of issue 6.)
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from marketdata.settings import Settings


def install_security(app: FastAPI, settings: Settings) -> None:
    """Configure keys, CORS and request limits on ``app``."""
    del app, settings


async def require_read(request: Request) -> None:
    """Dependency of every read route: a key when MARKETDATA_REQUIRE_KEY_FOR_READS is set."""
    del request


async def require_write(request: Request) -> None:
    """Dependency of every write route (POST/DELETE): a valid key from MARKETDATA_API_KEYS."""
    del request
