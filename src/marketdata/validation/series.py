"""Time-series rules: a bar judged against the same symbol's earlier bars.

The input is the bars that passed every hard rule, sorted by symbol then date, with
``group_start`` marking each symbol's first bar. Bars that failed a hard rule are not part of
any history: "the previous bar" is the previous *valid* bar, and windows hold valid bars only.
(A bad bar carries no usable price, and skipping it is what a reader of the stored, validated
series sees anyway.) Every window trails: a bar is judged by itself and earlier bars only, so
appending newer bars never changes an older bar's verdict.

Rolling windows are fixed-size rows gathered from the column (numpy sliding-window views,
sorted row-wise in blocks); windows shorter than the rule's window near a symbol's start are
padded with NaN, which sorts last and is left out of the medians. The jump test only builds
windows for returns larger than ``min_jump``, the least threshold it can have.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from marketdata.validation.flags import Flag
from marketdata.validation.report import Fired
from marketdata.validation.thresholds import MAD_TO_SIGMA, Thresholds

__all__ = ["series_rules"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
_BLOCK: Final = 1 << 16  # rows of windows sorted at once (about 10 MB at 20 columns)


def series_rules(
    group_start: Bools,
    prices: tuple[Floats, Floats, Floats, Floats],
    volume: Floats,
    *,
    split_log: Floats,
    cash: Floats,
    thresholds: Thresholds,
) -> list[Fired]:
    """Stale bars, price jumps (explained or not) and volume anomalies of valid, sorted bars.

    ``prices`` are (open, high, low, close); ``split_log`` is ``log(split_from / split_to)``
    of a split executed on a bar's date (else 0) and ``cash`` the dividend going ex that day
    (else 0). Returned rows are positions in these arrays.
    """
    if volume.size == 0:
        return []
    position = _positions(group_start)
    return [
        _stale(group_start, prices, volume),
        *_jumps(group_start, position, prices[3], split_log, cash, thresholds),
        _volume(group_start, position, volume, split_log, thresholds),
    ]


def _positions(group_start: Bools) -> Ints:
    """Each row's position within its symbol (0 for the symbol's first valid bar)."""
    starts = np.flatnonzero(group_start)
    first: Ints = starts[np.cumsum(group_start) - 1]
    return np.arange(group_start.size, dtype=np.int64) - first


def _stale(
    group_start: Bools, prices: tuple[Floats, Floats, Floats, Floats], volume: Floats
) -> Fired:
    """The previous bar's open, high, low and close repeated, with no volume."""
    same = (volume[1:] == 0.0) & ~group_start[1:]
    for column in prices:
        same &= column[1:] == column[:-1]
    return Fired(flag=Flag.STALE_BAR, rows=np.flatnonzero(same) + 1)


def _jumps(
    group_start: Bools,
    position: Ints,
    close: Floats,
    split_log: Floats,
    cash: Floats,
    t: Thresholds,
) -> list[Fired]:
    """Close-to-close log returns beyond ``max(k × robust σ, min_jump)`` of the window.

    The window holds the symbol's previous ``jump_window`` returns, each net of the move its
    own split or dividend explains, so a past split does not inflate the scale.
    """
    log_close = np.log(close)
    ret = np.full(close.size, np.nan)
    ret[1:] = log_close[1:] - log_close[:-1]
    ret[group_start] = np.nan
    expected = split_log.copy()
    paid = np.flatnonzero((cash > 0.0) & ~group_start)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ratio = cash[paid] / close[paid - 1]
    ok = ratio < 1.0  # a dividend worth the whole price explains nothing
    expected[paid[ok]] += np.log1p(-ratio[ok])
    net = ret - expected

    history = np.minimum(position - 1, t.jump_window)
    rows = np.flatnonzero((np.abs(ret) > t.min_jump) & (history >= t.min_history))
    if rows.size == 0:
        return []
    windows = _gather_windows(net, rows, history[rows], t.jump_window)
    _, mad = _median_mad(windows, history[rows])
    limit = np.maximum(t.jump_k * MAD_TO_SIGMA * mad, t.min_jump)
    jump = np.abs(ret[rows]) > limit
    explained = jump & (np.abs(net[rows]) <= limit)
    unexplained = jump & ~explained
    return [
        Fired(
            flag=Flag.PRICE_JUMP,
            rows=rows[unexplained],
            value=ret[rows[unexplained]],
            threshold=limit[unexplained],
        ),
        Fired(
            flag=Flag.EXPLAINED_JUMP,
            rows=rows[explained],
            value=ret[rows[explained]],
            threshold=limit[explained],
        ),
    ]


def _volume(
    group_start: Bools, position: Ints, volume: Floats, split_log: Floats, t: Thresholds
) -> Fired:
    """Robust z-score of log(1 + volume) against the previous ``volume_window`` bars.

    Volumes are counted in shares, so a split multiplies them by ``split_to / split_from``
    from its date on: volumes are compared net of the splits in between (a 1-for-20 split
    does not make the next weeks anomalous). Bars with zero volume are left to
    ``zero_volume`` and ``stale_bar`` (they are not scored here) but stay in later windows.
    """
    width = t.volume_window
    log_volume = np.log1p(volume)
    if split_log.any():  # shift each symbol's log volumes back to its first bar's share count
        total = np.cumsum(split_log)
        starts = np.flatnonzero(group_start)
        before = total[starts] - split_log[starts]
        log_volume += total - before[np.cumsum(group_start) - 1]
    padded = np.concatenate([np.full(width, np.nan), log_volume])
    history = np.minimum(position, width)
    judged = (volume > 0.0) & (history >= t.min_history)
    floor = t.volume_z * t.volume_floor  # |deviation| must exceed this whatever the MAD
    found: list[tuple[Ints, Floats]] = []
    for start in range(0, volume.size, _BLOCK):
        stop = min(start + _BLOCK, volume.size)
        windows = np.array(sliding_window_view(padded[start : stop + width - 1], width))
        counts = history[start:stop]
        _mask_short(windows, counts, width)
        windows.sort(axis=1)
        median = _median_sorted(windows, np.maximum(counts, 1))
        deviation = log_volume[start:stop] - median
        rows = np.flatnonzero(judged[start:stop] & (np.abs(deviation) > floor))
        if rows.size == 0:
            continue
        spread = np.abs(windows[rows] - median[rows, None])
        spread.sort(axis=1)
        scale = np.maximum(MAD_TO_SIGMA * _median_sorted(spread, counts[rows]), t.volume_floor)
        z = deviation[rows] / scale
        big = np.abs(z) > t.volume_z
        found.append((rows[big] + start, z[big]))
    rows = np.concatenate([r for r, _ in found]) if found else np.empty(0, np.int64)
    z = np.concatenate([v for _, v in found]) if found else np.empty(0)
    return Fired(
        flag=Flag.VOLUME_ANOMALY, rows=rows, value=z, threshold=np.full(rows.size, t.volume_z)
    )


def _gather_windows(values: Floats, rows: Ints, counts: Ints, width: int) -> Floats:
    """``values[row - width : row]`` for each row, the first ``width - count`` set to NaN."""
    padded = np.concatenate([np.full(width, np.nan), values])
    windows: Floats = padded[rows[:, None] + np.arange(width)]
    _mask_short(windows, counts, width)
    windows.sort(axis=1)
    return windows


def _mask_short(windows: Floats, counts: Ints, width: int) -> None:
    """In place: NaN out the leading entries of rows whose window holds only ``count`` values."""
    short = np.flatnonzero(counts < width)
    if short.size:
        lead = np.arange(width) < (width - counts[short])[:, None]
        windows[short] = np.where(lead, np.nan, windows[short])


def _median_sorted(windows: Floats, counts: Ints) -> Floats:
    """Median of the first ``count`` entries of each sorted row (NaN sorts last)."""
    rows = np.arange(windows.shape[0])
    return 0.5 * (windows[rows, (counts - 1) // 2] + windows[rows, counts // 2])


def _median_mad(windows: Floats, counts: Ints) -> tuple[Floats, Floats]:
    """Median and median absolute deviation of the first ``count`` entries of sorted rows."""
    median = _median_sorted(windows, counts)
    spread = np.abs(windows - median[:, None])
    spread.sort(axis=1)
    return median, _median_sorted(spread, counts)
