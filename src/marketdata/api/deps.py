"""Request dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from marketdata.settings import Settings
from marketdata.storage.base import Store


def get_store(request: Request) -> Store:
    """The store opened by the app's lifespan."""
    return cast("Store", request.state.store)


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return cast("Settings", request.app.state.settings)


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
