"""The shared pacer, on a virtual clock (no real sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from marketdata.providers.ratelimit import RateLimiter


class VirtualTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.starts: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_starts_are_spaced_for_the_free_plan() -> None:
    """Five calls a minute: starts 12 s apart, so no 60 s window holds more than five."""
    vt = VirtualTime()
    limiter = RateLimiter(5, clock=vt.clock, sleep=vt.sleep)

    async def call() -> None:
        await limiter.acquire()
        vt.starts.append(vt.now)

    await asyncio.gather(*(call() for _ in range(11)))
    gaps = [b - a for a, b in zip(vt.starts, vt.starts[1:], strict=False)]
    assert gaps == [12.0] * 10
    for start in vt.starts:
        assert sum(start <= s < start + 60 for s in vt.starts) <= 5


async def test_unlimited_never_waits() -> None:
    """0 calls per minute means no pacing at all."""
    vt = VirtualTime()
    limiter = RateLimiter(0, clock=vt.clock, sleep=vt.sleep)
    waits = [await limiter.acquire() for _ in range(100)]
    assert waits == [0.0] * 100
    assert vt.now == 1000.0


async def test_pause_holds_everyone_back() -> None:
    """After pause(30) the next start is 30 s later, even when unlimited."""
    vt = VirtualTime()
    limiter = RateLimiter(0, clock=vt.clock, sleep=vt.sleep)
    limiter.pause(30)
    assert await limiter.acquire() == 30.0
    assert vt.now == 1030.0
    assert await limiter.acquire() == 0.0


def test_negative_rate_is_refused() -> None:
    """A negative rate is a configuration error."""
    with pytest.raises(ValueError, match=">= 0"):
        RateLimiter(-1)
