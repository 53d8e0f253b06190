"""check_constraints: the row-local hard rules, table-driven, on hostile values."""

from __future__ import annotations

import numpy as np
import pytest

from marketdata.validation import Flag, check_constraints, flag_names

NAN, INF = float("nan"), float("inf")
SANE = (10.0, 11.0, 9.0, 10.5, 1000.0, 10.2)  # open, high, low, close, volume, vwap


def names(o: float, h: float, lo: float, c: float, v: float, w: float) -> list[str]:
    """Rule names fired by one row."""
    (mask,) = check_constraints([o], [h], [lo], [c], [v], [w])
    return flag_names(int(mask))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (SANE, []),
        ((NAN, 11.0, 9.0, 10.5, 1000.0, 10.2), ["non_finite_price"]),
        ((10.0, INF, 9.0, 10.5, 1000.0, 10.2), ["non_finite_price"]),
        ((10.0, 11.0, -INF, 10.5, 1000.0, 10.2), ["non_finite_price"]),
        ((10.0, 11.0, 9.0, NAN, 1000.0, 10.2), ["non_finite_price"]),
        ((NAN, NAN, NAN, NAN, NAN, NAN), ["non_finite_price", "negative_volume"]),
        ((NAN, 1.0, 99.0, 50.0, 1000.0, 500.0), ["non_finite_price"]),  # no cascade
        ((10.0, 11.0, 0.0, 10.5, 1000.0, 10.2), ["non_positive_price"]),
        ((-2.0, -1.0, -3.0, -1.5, 1000.0, NAN), ["non_positive_price"]),
        ((0.0, 0.0, 0.0, 0.0, 0.0, NAN), ["non_positive_price"]),
        ((10.0, 9.9, 9.0, 9.5, 1000.0, 9.5), ["high_below_open_close"]),
        ((10.0, 11.0, 10.2, 10.1, 1000.0, 10.5), ["low_above_open_close"]),
        (
            (10.0, 9.0, 11.0, 10.0, 1000.0, NAN),
            ["high_below_open_close", "low_above_open_close", "high_below_low"],
        ),
        ((10.0, 11.0, 9.0, 10.5, -1.0, 10.2), ["negative_volume"]),
        ((10.0, 11.0, 9.0, 10.5, NAN, 10.2), ["negative_volume"]),
        ((10.0, 11.0, 9.0, 10.5, INF, 10.2), ["negative_volume"]),
        ((10.0, 11.0, 9.0, 10.5, -INF, 10.2), ["negative_volume"]),
        ((10.0, 11.0, 9.0, 10.5, 0.0, 10.2), []),  # zero volume is not a hard error
        ((10.0, 11.0, 9.0, 10.5, 1000.0, NAN), []),  # vwap absent
        ((10.0, 11.0, 9.0, 10.5, 1000.0, 9.0 * 0.995), []),  # at the lower tolerance
        ((10.0, 11.0, 9.0, 10.5, 1000.0, 11.0 * 1.005), []),  # at the upper tolerance
        ((10.0, 11.0, 9.0, 10.5, 1000.0, 9.0 * 0.9949), ["vwap_outside_range"]),
        ((10.0, 11.0, 9.0, 10.5, 1000.0, 11.0 * 1.0051), ["vwap_outside_range"]),
        ((10.0, 11.0, 9.0, 10.5, 1000.0, INF), ["vwap_outside_range"]),
        ((10.0, 11.0, 9.0, 10.5, 1000.0, 0.0), ["vwap_outside_range"]),
        ((1e300, 1.1e300, 0.9e300, 1e300, 1e300, 1e300), []),  # huge but consistent
        ((1e308, 1.79e308, 1e308, 1e308, 1e308, 1.797e308), []),  # bound overflows to inf
        ((5e-324, 5e-324, 5e-324, 5e-324, 1.0, 5e-324), []),  # subnormal but positive
    ],
)
def test_row_local_rules(row: tuple[float, ...], expected: list[str]) -> None:
    """Each row fires exactly the planted rules, without numpy warnings."""
    assert names(*row) == expected


def test_tolerance_is_a_parameter() -> None:
    """A vwap 1 % below the low passes with a 2 % tolerance and fails with none."""
    args = ([10.0], [11.0], [9.0], [10.5], [1000.0], [8.91])
    assert check_constraints(*args, tolerance=0.02).tolist() == [0]
    assert check_constraints(*args, tolerance=0.0).tolist() == [int(Flag.VWAP_OUTSIDE_RANGE)]


def test_empty_input() -> None:
    """No rows in, an empty int64 mask out."""
    empty = np.empty(0)
    got = check_constraints(empty, empty, empty, empty, empty, empty)
    assert got.dtype == np.int64
    assert got.size == 0


@pytest.mark.parametrize("tolerance", [-0.1, 1.0, NAN])
def test_bad_tolerance(tolerance: float) -> None:
    """A tolerance outside [0, 1) is refused."""
    with pytest.raises(ValueError, match="tolerance"):
        check_constraints([1.0], [1.0], [1.0], [1.0], [1.0], [1.0], tolerance=tolerance)


def test_mismatched_lengths() -> None:
    """Columns of different lengths are refused."""
    with pytest.raises(ValueError, match="same length"):
        check_constraints([1.0], [1.0, 2.0], [1.0], [1.0], [1.0], [1.0])


def test_block_boundaries_and_naive_agreement() -> None:
    """Over several blocks of hostile random rows, a row is flagged iff the naive check fails."""
    rng = np.random.default_rng(7)
    n = 100_003  # not a multiple of the block size
    columns = [rng.uniform(-1, 100, n) for _ in range(6)]
    for column in columns:
        column[rng.integers(0, n, 500)] = rng.choice([NAN, INF, -INF, 0.0, 1e300], 500)
    columns[5][rng.integers(0, n, 5000)] = NAN  # absent vwap
    o, h, lo, c, v, w = columns
    got = check_constraints(o, h, lo, c, v, w)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
        ordered = (np.minimum(np.minimum(o, c), np.minimum(h, lo)) > 0) & (h >= np.maximum(o, c))
        ordered &= (lo <= np.minimum(o, c)) & (h >= lo)
        vwap_ok = np.isnan(w) | ((w >= lo * 0.995) & (w <= h * 1.005))
        ok = finite & ordered & vwap_ok & (v >= 0) & np.isfinite(v)
    assert np.array_equal(got == 0, ok)
    assert np.array_equal((got & Flag.NON_FINITE_PRICE) != 0, ~finite)
