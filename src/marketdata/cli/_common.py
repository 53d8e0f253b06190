"""What every command shares: the consoles, settings from the context, a store for a call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from marketdata.errors import ConfigError
from marketdata.settings import Settings

if TYPE_CHECKING:
    from marketdata.storage import Store

T = TypeVar("T")

#: Exit status when a command finished but found problems (rejected rows, differences).
EXIT_PARTIAL = 3

out = Console(soft_wrap=True)  # paths and commands in messages must not be broken
err = Console(stderr=True, soft_wrap=True)


def date_option(help_text: str) -> Any:
    """A ``--start``/``--end`` style option: a ``YYYY-MM-DD`` date, no default shown."""
    return typer.Option(help=help_text, formats=["%Y-%m-%d"], show_default=False)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with command-line overrides; errors become one line."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback read."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)  # set by the root callback
    return settings


def with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run ``fn`` on it in an event loop, and close it."""
    from marketdata.storage import open_store

    async def go() -> T:
        store = await open_store(settings.database_url)
        try:
            return await fn(store)
        finally:
            await store.aclose()

    return asyncio.run(go())
