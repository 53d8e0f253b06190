"""Building a data provider from the settings, by name."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

from marketdata import calendar
from marketdata.errors import ConfigError
from marketdata.providers.base import Provider
from marketdata.settings import Settings

ProviderName = Literal["polygon", "synthetic"]


def open_provider(
    settings: Settings,
    name: ProviderName | None = None,
    *,
    now: dt.datetime | None = None,
    universe: Sequence[str] = (),
) -> Provider:
    """The provider called ``name``; by default Polygon when a key is set, else the simulator.

    The simulator's data ends at the last session completed at ``now`` (default: the clock);
    its "all symbols" (grouped bars) are the default watchlist plus ``universe``.

    Asking for ``polygon`` without ``POLYGON_API_KEY`` is a :class:`ConfigError`.
    """
    chosen = name or ("polygon" if settings.polygon_api_key is not None else "synthetic")
    if chosen == "synthetic":
        from marketdata.providers.simulator import SyntheticProvider

        at = now or dt.datetime.now(dt.UTC)
        names = tuple(dict.fromkeys((*settings.symbols, *universe)))
        return SyntheticProvider(today=calendar.last_completed_session(at), universe=names)
    if settings.polygon_api_key is None:
        msg = "the polygon provider needs an API key: set POLYGON_API_KEY (or MASSIVE_API_KEY)"
        raise ConfigError(msg)
    from marketdata.providers.polygon import PolygonClient

    return PolygonClient(
        api_key=settings.polygon_api_key.get_secret_value(),
        base_url=settings.polygon_base_url,
        calls_per_minute=settings.polygon_calls_per_minute,
        timeout=settings.polygon_timeout,
        retry_deadline=settings.polygon_retry_deadline,
    )
