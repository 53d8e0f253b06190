"""A client-side pacer shared by every concurrent request to one provider.

The vendor's free plan allows 5 calls a minute and does not promise ``Retry-After``, so we pace
ourselves: request starts are spaced ``60 / calls_per_minute`` seconds apart, which keeps any
60-second window at or under the limit (a leaky bucket with a burst would not). A 429 can push
the next start further out for everyone with :meth:`RateLimiter.pause`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """Evenly spaced request starts; ``calls_per_minute=0`` means unlimited."""

    def __init__(
        self,
        calls_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if calls_per_minute < 0:
            msg = "calls_per_minute must be >= 0"
            raise ValueError(msg)
        self.interval = 60.0 / calls_per_minute if calls_per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for this caller's turn; returns the seconds waited."""
        if not self.interval and self._next <= self._clock():
            return 0.0
        async with self._lock:
            now = self._clock()
            wait = max(0.0, self._next - now)
            if wait:
                await self._sleep(wait)
                now = self._clock()
            self._next = max(now, self._next) + self.interval
            return wait

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` from now (after a 429 with Retry-After)."""
        self._next = max(self._next, self._clock() + seconds)
