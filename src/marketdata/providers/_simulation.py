"""The model behind the synthetic market: raw daily histories as numpy arrays, from a seed.

:mod:`marketdata.providers.simulator` deals with ranges, caching and frames; this module only
turns ``(seed, symbols, n)`` into each symbol's first ``n`` sessions from :data:`ORIGIN`.

Determinism is the contract. Every random quantity of a symbol comes from its own numpy stream,
seeded by ``SeedSequence([seed, blake2b(symbol), stream])`` and drawn session by session, so a
longer history only appends draws; every later step is elementwise or runs forwards in time
(cumulative sums and products, an AR(1) filter in fixed blocks). A session's value therefore
depends neither on ``n`` nor on the other symbols simulated alongside. Symbols are simulated in
batches, as the rows of 2-D arrays, with no Python loop over sessions.

The model: log-volatility is an AR(1) process (volatility clustering); close-to-close log
returns are normal given that volatility; the open is the previous close times an overnight gap;
the intraday range grows with volatility; volume rises with volatility and the size of the move,
with occasional spikes, and halves on early closes. Quarterly ex-dividend dates cut the raw
price by the quarterly yield; splits, decided by the raw price at candidate dates years apart,
divide raw prices and multiply volume: the bars are what an unadjusted vendor feed shows.
(A dividend that rounds to less than a cent, on a penny price, is not reported; the raw price
still drops by its sub-cent amount.)
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from marketdata import calendar

#: First simulated session; every history starts here, whatever range is asked for.
ORIGIN: Final = dt.date(2000, 1, 3)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Days = npt.NDArray[np.datetime64]
Mask = npt.NDArray[np.bool_]

_PHI: Final = 0.97  # persistence of log-volatility per session (half-life ~23 sessions)
_BLOCK: Final = 128  # AR(1) block length; fixed, so results never depend on the history length
_CANDIDATES: Final = 20  # split candidate dates per symbol, 500 to 1,750 sessions apart
_QUARTERS: Final = 4 * (calendar.LAST_DATE.year - ORIGIN.year + 1)
_DECLARED_BEFORE: Final = 30  # sessions from declaration to ex-date
_SPIKE_RATE: Final = 0.015  # share of sessions with a volume spike (x3 to x10)
# Stream numbers (the last SeedSequence word) of the quantities drawn for each symbol.
_STATIC, _RETURN, _VOLATILITY, _GAP, _VOLUME, _HIGH, _LOW, _VWAP, _SPIKE, _TRADES = range(10)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """The sessions a history can cover: :data:`ORIGIN` to the calendar's last date."""

    days: Days  # datetime64[D]; position i is session i of every history
    early: Mask  # early-close sessions
    all_days: Days  # every calendar session (declaration dates may precede ORIGIN)
    offset: int  # position of ORIGIN in ``all_days``


@functools.cache
def timeline() -> Timeline:
    """The shared session timeline, built once from :mod:`marketdata.calendar`."""
    all_days = calendar.sessions(calendar.FIRST_DATE, calendar.LAST_DATE)
    offset = int(np.searchsorted(all_days, np.datetime64(ORIGIN, "D")))
    days = all_days[offset:]
    early = np.isin(days, calendar.early_closes(ORIGIN, calendar.LAST_DATE))
    return Timeline(days=days, early=early, all_days=all_days, offset=offset)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class History:
    """One symbol's first ``n`` raw sessions from ORIGIN, and its actions within them."""

    symbol: str
    n: int
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    vwap: Floats
    transactions: Ints
    split_at: Ints  # session positions of execution dates
    split_from: Floats
    split_to: Floats
    ex_at: Ints  # session positions of ex-dividend dates
    cash: Floats
    declared: Days
    record: Days
    paid: Days


@dataclass(frozen=True, slots=True, kw_only=True)
class _Traits:
    """Per-symbol constants (one value per batch row), drawn from the symbol's static stream."""

    start: Floats  # first close, $10 to $500
    drift: Floats  # daily expected log return
    vol: Floats  # daily base volatility
    vol_of_vol: Floats
    shares: Floats  # typical daily volume
    trade_size: Floats
    pays: Mask
    quarterly_yield: Floats
    ex_month: Ints  # month of the first ex-date in each quarter (0 to 2)
    ex_day: Ints  # day of the month, 0-based
    pay_lag: npt.NDArray[np.timedelta64]
    gaps: Ints  # sessions between split candidates
    choice: Floats  # one uniform per split candidate


def symbol_key(symbol: str) -> int:
    """A stable 64-bit key for ``symbol`` (Python's ``hash`` changes between processes)."""
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=8).digest(), "little")


def _rng(seed: int, key: int, stream: int) -> np.random.Generator:
    """The generator of one quantity of one symbol."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, key, stream])))


def _draws(seed: int, keys: Sequence[int], stream: int, n: int, *, normal: bool) -> Floats:
    """One row per symbol: the first ``n`` standard normals or [0, 1) uniforms of a stream."""
    out = np.empty((len(keys), n))
    for row, key in zip(out, keys, strict=True):
        if normal:
            _rng(seed, key, stream).standard_normal(out=row)
        else:
            _rng(seed, key, stream).random(out=row)
    return out


def _traits(seed: int, keys: Sequence[int]) -> _Traits:
    """Draw the constants of each symbol from its static stream, in a fixed order."""
    u = np.stack([_rng(seed, key, _STATIC).random(12 + 2 * _CANDIDATES) for key in keys])
    return _Traits(
        start=np.exp(np.log(10.0) + u[:, 0] * np.log(50.0)),
        drift=(-0.02 + 0.16 * u[:, 1]) / 252,
        vol=(0.15 + 0.35 * u[:, 2]) / np.sqrt(252),
        vol_of_vol=0.05 + 0.04 * u[:, 3],
        shares=np.exp(np.log(2e5) + u[:, 4] * np.log(150.0)),
        trade_size=np.exp(np.log(40.0) + u[:, 5] * np.log(10.0)),
        pays=u[:, 6] < 0.6,
        quarterly_yield=0.002 + 0.008 * u[:, 7],
        ex_month=(u[:, 8] * 3).astype(np.int64),
        ex_day=(u[:, 9] * 25).astype(np.int64),
        pay_lag=(14 + u[:, 10] * 15).astype("timedelta64[D]"),
        gaps=(500 + u[:, 12 : 12 + _CANDIDATES] * 1250).astype(np.int64),
        choice=u[:, 12 + _CANDIDATES :],
    )


def _ar1(shocks: Floats, phi: float) -> Floats:
    """``x[t] = phi * x[t-1] + shocks[t]`` along axis 1, vectorised within fixed blocks."""
    rows, n = shocks.shape
    blocks = -(-n // _BLOCK)
    padded = np.zeros((rows, blocks * _BLOCK))
    padded[:, :n] = shocks
    step = np.arange(_BLOCK, dtype=np.float64)
    # Within a block from a zero start: x[j] = phi^j * sum_{i<=j} phi^-i * e[i].
    x = np.cumsum(padded.reshape(rows, blocks, _BLOCK) * phi**-step, axis=2) * phi**step
    carry = np.zeros(rows)
    decay = phi ** (step + 1)
    for b in range(blocks):  # ~70 blocks in 36 years: carry each block's end into the next
        x[:, b, :] += carry[:, None] * decay
        carry = x[:, b, -1]
    return x.reshape(rows, -1)[:, :n]


def _split_ratios(price: Floats, u: Floats) -> tuple[Floats, Floats]:
    """``(split_to, split_from)`` chosen by raw price; ``(1, 1)`` where nothing happens."""
    high, mid, low, penny = price >= 250, price >= 100, price >= 50, price < 2
    to = np.select(
        [high & (u < 0.5), high, mid & (u < 0.6), mid, low & (u < 0.5), low & (u < 0.8)],
        [4.0, 3.0, 2.0, 3.0, 2.0, 3.0],
        default=1.0,
    )
    frm = np.where((mid & ~high & (u >= 0.8)) | (low & ~mid & (u >= 0.5) & (u < 0.8)), 2.0, 1.0)
    return to, np.where(penny & (u < 0.6), 10.0, frm)  # 1-for-10 reverse split


def _dividend_dates(t: _Traits, n: int) -> tuple[Ints, Mask]:
    """Ex-date positions ``(rows, quarters)`` and which of them happen within ``n`` sessions."""
    line = timeline()
    months = np.datetime64(ORIGIN.replace(day=1), "M") + t.ex_month[:, None]
    targets = (months + np.arange(_QUARTERS) * 3).astype("datetime64[D]") + t.ex_day[:, None]
    ex = np.searchsorted(line.days, targets).astype(np.int64)
    ok = t.pays[:, None] & (ex >= 1) & (ex < n) & (ex + 1 < line.days.size)
    paid = line.days[np.minimum(ex, line.days.size - 1)] + t.pay_lag[:, None]
    return ex, ok & (paid <= line.days[-1])


def _split_events(t: _Traits, value: Floats, dividends: Floats) -> tuple[Ints, Floats, Floats]:
    """Candidate positions and their ``(split_to, split_from)``, decided in date order.

    A candidate looks at the raw close the session before: ``value`` times the ``dividends``
    factor, divided by the earlier splits' ratio.
    """
    n = value.shape[1]
    at = np.cumsum(t.gaps, axis=1)
    rows = np.arange(at.shape[0])
    ratio = np.ones(at.shape[0])
    to, frm = np.ones(at.shape), np.ones(at.shape)
    for j in range(_CANDIDATES):
        live = at[:, j] < n
        before = np.minimum(at[:, j], n) - 1
        price = value[rows, before] * dividends[rows, before] / ratio
        cand_to, cand_from = _split_ratios(price, t.choice[:, j])
        to[:, j], frm[:, j] = np.where(live, cand_to, 1.0), np.where(live, cand_from, 1.0)
        ratio *= to[:, j] / frm[:, j]
    return at, to, frm


def _step_factor(shape: tuple[int, int], at: Ints, where: Mask, values: Floats) -> Floats:
    """Cumulative product along time of ``values`` applied at positions ``at[where]``."""
    factor = np.ones(shape)
    rows = np.nonzero(where)[0]
    factor[rows, at[where]] = values[where]
    return np.cumprod(factor, axis=1, out=factor)


def _round_price(p: Floats) -> Floats:
    """Cents from $1 up, 1/100 cent below, at least $0.0001 (monotone: OHLC order holds)."""
    return np.maximum(np.where(p >= 1.0, np.round(p, 2), np.round(p, 4)), 1e-4)


def simulate(seed: int, symbols: Sequence[str], n: int) -> list[History]:
    """Each symbol's first ``n`` sessions from ORIGIN (1 <= ``n`` <= the timeline's length)."""
    line = timeline()
    if not 0 < n <= line.days.size:
        msg = f"n must be in 1..{line.days.size}, got {n}"
        raise ValueError(msg)
    keys = [symbol_key(s) for s in symbols]
    t = _traits(seed, keys)
    shape = (len(keys), n)

    def draws(stream: int, *, normal: bool = False) -> Floats:
        return _draws(seed, keys, stream, n, normal=normal)

    # Volatility, returns and the price path before dividends and splits.
    shocks = draws(_VOLATILITY, normal=True)
    log_vol_var = t.vol_of_vol**2 / (1 - _PHI**2)
    shocks[:, 1:] *= t.vol_of_vol[:, None]
    shocks[:, 0] *= np.sqrt(log_vol_var)  # start in the stationary distribution
    excess = _ar1(shocks, _PHI) - log_vol_var[:, None]
    sigma = t.vol[:, None] * np.exp(excess)
    z = draws(_RETURN, normal=True)
    log_return = t.drift[:, None] - 0.5 * sigma**2 + sigma * z
    log_return[:, 0] = 0.0
    value = t.start[:, None] * np.cumprod(np.exp(log_return), axis=1)
    gap = np.exp(0.35 * sigma * draws(_GAP, normal=True))
    value_open = np.concatenate([t.start[:, None], value[:, :-1]], axis=1) * gap
    del shocks, log_return, gap

    # Corporate actions, as step factors on the raw price and share count.
    ex, ex_ok = _dividend_dates(t, n)
    drop = np.broadcast_to(1 - t.quarterly_yield[:, None], ex.shape)
    dividend_factor = _step_factor(shape, ex, ex_ok, drop)
    split_at, split_to, split_from = _split_events(t, value, dividend_factor)
    split_ok = split_to != split_from
    shares_factor = _step_factor(shape, split_at, split_ok, split_to / split_from)
    price_factor = dividend_factor / shares_factor
    del dividend_factor

    # Bars.
    early = line.early[:n]
    close = value * price_factor
    open_ = value_open * price_factor
    del value, value_open, price_factor
    reach = 0.45 * sigma * np.where(early, 0.6, 1.0)
    high = np.maximum(open_, close) * (1 - reach * np.log1p(-draws(_HIGH)))
    low = np.minimum(open_, close) / (1 - reach * np.log1p(-draws(_LOW)))
    inside = low + (high - low) * (0.25 + 0.5 * draws(_VWAP))
    vwap = (high + low + close) / 6 + 0.5 * inside
    open_, high, low, close = (_round_price(a) for a in (open_, high, low, close))
    vwap = np.clip(np.round(vwap, 4), low, high)
    spike = draws(_SPIKE)
    boost = np.where(spike < _SPIKE_RATE, 3 + 7 * spike / _SPIKE_RATE, 1.0)
    boost *= np.where(early, 0.5, 1.0)
    activity = np.exp(0.7 * excess + 0.25 * draws(_VOLUME, normal=True)) * (0.75 + 0.3 * np.abs(z))
    volume = np.rint(t.shares[:, None] * shares_factor * activity * boost)
    volume = np.maximum(volume, 100.0)
    per_trade = t.trade_size[:, None] * shares_factor * (0.7 + 0.6 * draws(_TRADES))
    transactions = np.maximum(np.rint(volume / per_trade), 1.0).astype(np.int64)

    # Dividend amounts: the quarterly yield of the raw close before the ex-date, in cents.
    rows = np.arange(len(keys))[:, None]
    cash = np.round(t.quarterly_yield[:, None] * close[rows, np.clip(ex, 1, n) - 1], 2)
    ex_ok &= cash >= 0.01
    pos = line.offset + np.minimum(ex, line.days.size - 1)
    declared = line.all_days[pos - _DECLARED_BEFORE]
    record = line.all_days[np.minimum(pos + 1, line.all_days.size - 1)]
    pay_day = line.days[np.minimum(ex, line.days.size - 1)] + t.pay_lag[:, None]
    paid = line.all_days[
        np.minimum(np.searchsorted(line.all_days, pay_day), line.all_days.size - 1)
    ]

    return [
        History(
            symbol=symbol,
            n=n,
            open=open_[i],
            high=high[i],
            low=low[i],
            close=close[i],
            volume=volume[i],
            vwap=vwap[i],
            transactions=transactions[i],
            split_at=split_at[i][split_ok[i]],
            split_from=split_from[i][split_ok[i]],
            split_to=split_to[i][split_ok[i]],
            ex_at=ex[i][ex_ok[i]],
            cash=cash[i][ex_ok[i]],
            declared=declared[i][ex_ok[i]],
            record=record[i][ex_ok[i]],
            paid=paid[i][ex_ok[i]],
        )
        for i, symbol in enumerate(symbols)
    ]
