"""What every command shares: the consoles, settings from the context, a store for a call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperCommand, TyperGroup, TyperOption

from marketdata.errors import ConfigError
from marketdata.settings import Settings, describe_errors

if TYPE_CHECKING:
    from marketdata.storage import Store

T = TypeVar("T")

#: Exit status when a command finished but found problems (rejected rows, differences).
EXIT_PARTIAL = 3
#: Exit status after Ctrl-C (128 + SIGINT), as shells expect.
EXIT_INTERRUPTED = 130

out = Console(soft_wrap=True)  # paths and commands in messages must not be broken
err = Console(stderr=True, soft_wrap=True)


class _PlainFlags:
    """Show flags in ``--help`` without a value placeholder.

    typer's rich help prints each option's type, ``<bool>`` after a flag too, as if
    ``--strict`` took a value (``import --strict true x.csv`` then reads ``true`` as a file);
    an empty metavar prints nothing there. Values are parsed as before.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters (the help option included), flags without a placeholder."""
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]  # a click command's
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


class Command(_PlainFlags, TyperCommand):
    """Every ``marketdata`` command: typer's, flags shown as flags."""


class Group(_PlainFlags, TyperGroup):
    """Every ``marketdata`` command group: typer's, flags shown as flags."""


def use_plain_flags(app: typer.Typer) -> None:
    """Make every command and group of ``app`` (registered by now) a :class:`Command` or
    :class:`Group`, wherever it was declared."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = Command
    for group in app.registered_groups:
        if not isinstance(group.cls, type) or group.cls is TyperGroup:  # typer's default
            group.cls = Group
        if isinstance(group.typer_instance, typer.Typer):
            use_plain_flags(group.typer_instance)


def date_option(help_text: str) -> Any:
    """A ``--start``/``--end`` style option: a ``YYYY-MM-DD`` date, no default shown."""
    return typer.Option(help=help_text, formats=["%Y-%m-%d"], show_default=False)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with command-line overrides; errors become one line."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {describe_errors(exc, given=given)}") from None


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
