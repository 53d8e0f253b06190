"""The rule catalogue, flag bits, thresholds and the public surface of the package."""

from __future__ import annotations

import math
from typing import Any

import pytest

import marketdata.validation as validation
from marketdata.validation import (
    DEFAULT_THRESHOLDS,
    LOOKBACK_SESSIONS,
    RULES,
    Flag,
    Severity,
    Thresholds,
    flag_names,
)

HARD = [
    "non_finite_price",
    "non_positive_price",
    "high_below_open_close",
    "low_above_open_close",
    "high_below_low",
    "negative_volume",
    "vwap_outside_range",
    "not_a_session",
    "duplicate_date",
]
SOFT = ["zero_volume", "price_jump", "volume_anomaly", "stale_bar"]
INFO = ["explained_jump"]


def test_public_names() -> None:
    """The package exports the integration surface, and every exported name exists."""
    expected = {
        *("Flag", "Severity", "Rule", "RULES", "Thresholds", "DEFAULT_THRESHOLDS"),
        *("LOOKBACK_SESSIONS", "Validation", "validate", "check_constraints", "flag_names"),
        *("GapRange", "missing_sessions", "count_missing_sessions"),
    }
    assert expected <= set(validation.__all__)
    for name in validation.__all__:
        assert hasattr(validation, name)


def test_rules_in_bit_order_with_names_and_severities() -> None:
    """RULES lists every flag once, in bit order, named in snake_case."""
    assert [rule.name for rule in RULES] == HARD + SOFT + INFO
    assert [int(rule.flag) for rule in RULES] == sorted(int(flag) for flag in Flag)
    assert len(RULES) == len(Flag)
    for rule in RULES:
        assert rule.name == rule.flag.name.lower()  # type: ignore[union-attr]
        assert rule.description.endswith(".")


@pytest.mark.parametrize(
    ("names", "severity", "low", "high"),
    [(HARD, Severity.HARD, 0, 16), (SOFT, Severity.SOFT, 16, 24), (INFO, Severity.INFO, 24, 63)],
)
def test_bit_groups(names: list[str], severity: Severity, low: int, high: int) -> None:
    """Hard rules take the low bits, soft rules bits 16–23, info rules bit 24 and up."""
    for rule in (r for r in RULES if r.name in names):
        assert rule.severity is severity
        assert 1 << low <= int(rule.flag) < 1 << high


def test_default_weights() -> None:
    """Hard rules weigh 1, soft rules 0.1–0.3, info rules 0."""
    for rule in RULES:
        expected = {Severity.HARD: (1.0, 1.0), Severity.SOFT: (0.1, 0.3), Severity.INFO: (0, 0)}
        low, high = expected[rule.severity]
        assert low <= rule.weight <= high
        assert DEFAULT_THRESHOLDS.weights[rule.name] == rule.weight


def test_flag_names() -> None:
    """A mask lists its rules in bit order; unknown bits and zero give nothing."""
    mask = Flag.EXPLAINED_JUMP | Flag.NON_FINITE_PRICE | Flag.ZERO_VOLUME | 1 << 40
    assert flag_names(int(mask)) == ["non_finite_price", "zero_volume", "explained_jump"]
    assert flag_names(0) == []


def test_lookback() -> None:
    """The lookback covers the longest window plus the previous close."""
    assert LOOKBACK_SESSIONS == DEFAULT_THRESHOLDS.lookback == 21
    assert Thresholds(jump_window=30, volume_window=50).lookback == 51


def test_partial_weights_keep_the_defaults() -> None:
    """Naming one weight changes it and keeps every other default."""
    custom = Thresholds(weights={"zero_volume": 0.5})
    assert custom.weights["zero_volume"] == 0.5
    assert custom.weights["price_jump"] == DEFAULT_THRESHOLDS.weights["price_jump"]
    assert set(custom.weights) == {rule.name for rule in RULES}


def test_thresholds_are_frozen_and_hashable() -> None:
    """Thresholds are immutable values."""
    with pytest.raises(AttributeError):
        DEFAULT_THRESHOLDS.jump_k = 3.0  # type: ignore[misc]
    assert hash(Thresholds()) == hash(DEFAULT_THRESHOLDS)
    assert Thresholds() == DEFAULT_THRESHOLDS


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"jump_window": 0}, "jump_window must be a positive integer"),
        ({"volume_window": -5}, "volume_window must be a positive integer"),
        ({"min_history": 2.5}, "min_history must be a positive integer"),
        ({"jump_window": True}, "jump_window must be a positive integer"),
        ({"min_history": 25}, "min_history .* must not exceed"),
        ({"vwap_tolerance": -0.01}, "vwap_tolerance must be in"),
        ({"vwap_tolerance": 1.0}, "vwap_tolerance must be in"),
        ({"vwap_tolerance": math.nan}, "vwap_tolerance must be in"),
        ({"jump_k": 0.0}, "jump_k must be a positive finite number"),
        ({"min_jump": math.inf}, "min_jump must be a positive finite number"),
        ({"volume_z": math.nan}, "volume_z must be a positive finite number"),
        ({"volume_floor": 0}, "volume_floor must be a positive finite number"),
        ({"weights": {"price_jump": 1.5}}, "weight of price_jump must be in"),
        ({"weights": {"zero_volume": -0.1}}, "weight of zero_volume must be in"),
        ({"weights": {"stale_bar": math.nan}}, "weight of stale_bar must be in"),
        ({"weights": {"no_such_rule": 0.1}}, "unknown rule"),
    ],
)
def test_thresholds_refuse_bad_values(fields: dict[str, Any], message: str) -> None:
    """Each bad field is refused with a message naming it."""
    with pytest.raises(ValueError, match=message):
        Thresholds(**fields)
