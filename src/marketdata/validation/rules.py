"""The rule catalogue: what each flag bit means, in words for ``--help`` and the docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from marketdata.validation.flags import Flag, Severity, rule_name, severity_of
from marketdata.validation.thresholds import DEFAULT_THRESHOLDS

__all__ = ["RULES", "Rule", "flag_names"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One validation rule: its bit, stored name, severity, default weight and meaning."""

    flag: Flag
    name: str
    severity: Severity
    weight: float
    description: str


_DESCRIPTIONS: Final = {
    Flag.NON_FINITE_PRICE: "Open, high, low or close is missing, NaN or infinite.",
    Flag.NON_POSITIVE_PRICE: "Open, high, low or close is zero or negative.",
    Flag.HIGH_BELOW_OPEN_CLOSE: "The high is below the open or the close.",
    Flag.LOW_ABOVE_OPEN_CLOSE: "The low is above the open or the close.",
    Flag.HIGH_BELOW_LOW: "The high is below the low.",
    Flag.NEGATIVE_VOLUME: "The volume is negative, missing or not finite.",
    Flag.VWAP_OUTSIDE_RANGE: (
        "The volume-weighted average price lies outside [low, high] by more than the tolerance."
    ),
    Flag.NOT_A_SESSION: "The date is not an NYSE trading session (weekend, holiday or closure).",
    Flag.DUPLICATE_DATE: "The same symbol and date occur more than once in one batch.",
    Flag.ZERO_VOLUME: "No shares traded during a full (not early-close) session.",
    Flag.PRICE_JUMP: (
        "The close-to-close move is far outside the symbol's recent volatility and no split "
        "or dividend explains it."
    ),
    Flag.VOLUME_ANOMALY: (
        "The volume is far from the symbol's recent volumes (robust z-score of log volume)."
    ),
    Flag.STALE_BAR: "Open, high, low and close repeat the previous bar's and no shares traded.",
    Flag.EXPLAINED_JUMP: (
        "A move that would be a price jump is explained by a split or dividend on that date."
    ),
}

#: Every rule, in bit order, with its default weight from :data:`DEFAULT_THRESHOLDS`.
RULES: Final[tuple[Rule, ...]] = tuple(
    Rule(
        flag=flag,
        name=rule_name(flag),
        severity=severity_of(flag),
        weight=DEFAULT_THRESHOLDS.weights[rule_name(flag)],
        description=_DESCRIPTIONS[flag],
    )
    for flag in sorted(Flag, key=int)
)


def flag_names(mask: int) -> list[str]:
    """Names of the rules whose bits are set in ``mask``, in bit order; unknown bits are ignored."""
    return [rule.name for rule in RULES if mask & rule.flag]
