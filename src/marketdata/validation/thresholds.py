"""Every number the rules use, in one place, with the reason for each.

A :class:`Thresholds` is a plain value: pass a custom one to ``validate`` to tune the rules or
the quality weights; :data:`DEFAULT_THRESHOLDS` is what the service stores scores with. The
robust scale used throughout is ``1.4826 × MAD`` (median absolute deviation), which estimates
the standard deviation of normal data but ignores a few outliers in the window, so one bad bar
(or one real split) does not blind the rules to the next.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from marketdata.validation.flags import Flag, Severity, rule_name, severity_of

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_WEIGHTS",
    "LOOKBACK_SESSIONS",
    "MAD_TO_SIGMA",
    "Thresholds",
]

#: ``1.4826 × MAD`` estimates σ for normally distributed data (1 / Φ⁻¹(3/4)).
MAD_TO_SIGMA: Final = 1.4826

_SEVERITY_WEIGHT: Final = {Severity.HARD: 1.0, Severity.INFO: 0.0}

#: Quality lost when a rule fires; a bar's quality is ``max(0, 1 − Σ weights of its rules)``.
#: Hard rules weigh 1.0: a bar that contradicts itself is worth nothing. Soft weights rank how
#: likely each symptom is to be a data error rather than a real, rare market event.
DEFAULT_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {rule_name(flag): _SEVERITY_WEIGHT.get(severity_of(flag), 0.0) for flag in Flag}
    | {
        # A listed stock with no trade in a full session: real for thin names, else a gap
        # filled with zeros by the vendor.
        "zero_volume": 0.2,
        # A move far outside the symbol's own recent range: usually an unadjusted split or a
        # decimal slip, sometimes real news; the most likely soft symptom of bad data.
        "price_jump": 0.3,
        # Volume spikes are mostly real (earnings, index rebalances): a light penalty.
        "volume_anomaly": 0.1,
        # The previous bar repeated with no volume: a carried-forward placeholder. Stale bars
        # on full sessions also fire zero_volume, so together they cost 0.4.
        "stale_bar": 0.2,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """Limits and weights of the rules; every field is checked on construction.

    ``weights`` may name only the rules to change: the others keep :data:`DEFAULT_WEIGHTS`.
    """

    #: vwap may sit this far (relative) outside [low, high] before it is an error: vendors
    #: compute vwap over extended hours and round it, so a few basis points outside is normal,
    #: 0.5 % is not.
    vwap_tolerance: float = 0.005
    #: Trailing window, in the symbol's earlier bars, of the close-to-close log returns whose
    #: MAD scales the jump test: 20 bars is about one trading month, long enough for a stable
    #: median, short enough to follow volatility regimes.
    jump_window: int = 20
    #: A return beyond ``jump_k × 1.4826 × MAD`` of the window is a jump. Daily returns are
    #: fat-tailed (5σ moves happen every few years per stock on news), so 10 robust σ keeps
    #: real moves of calm stocks mostly unflagged while any split-sized move is caught.
    jump_k: float = 10.0
    #: ... and never below this absolute log return (0.15 ≈ a 16 % move): a symbol with almost
    #: no recent movement would otherwise flag ordinary 3 % days.
    min_jump: float = 0.15
    #: Earlier values a trailing window needs before the jump or volume test runs at all (half
    #: a window): medians of fewer points are too noisy to judge a bar by.
    min_history: int = 10
    #: Trailing window, in bars, of log(1 + volume) for the volume test (one trading month).
    volume_window: int = 20
    #: A robust z-score of log(1 + volume) beyond this is an anomaly. Day-to-day log volume
    #: has a robust σ of about 0.3 and heavy right tails: earnings days reach z ≈ 5, so 8
    #: flags about 0.3 % of simulated bars, while unit errors (volume in lots of 100, a
    #: ×1000 slip: |Δ| ≥ 4.6) land far beyond it.
    volume_z: float = 8.0
    #: Least robust scale of log(1 + volume) used as the z-score's denominator, so a window of
    #: identical volumes (MAD 0) does not divide by zero: at z 8, volume must still move by
    #: a factor of e^0.8 ≈ 2.2 from the window's median to be flagged.
    volume_floor: float = 0.1
    #: Quality weight of each rule, in [0, 1], by rule name; see :data:`DEFAULT_WEIGHTS`.
    weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_WEIGHTS, hash=False)

    def __post_init__(self) -> None:
        for name in ("jump_window", "min_history", "volume_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be a positive integer, got {value!r}"
                raise ValueError(msg)
        if self.min_history > min(self.jump_window, self.volume_window):
            msg = (
                f"min_history ({self.min_history}) must not exceed jump_window "
                f"({self.jump_window}) or volume_window ({self.volume_window})"
            )
            raise ValueError(msg)
        if not 0.0 <= self.vwap_tolerance < 1.0:
            msg = f"vwap_tolerance must be in [0, 1), got {self.vwap_tolerance!r}"
            raise ValueError(msg)
        for name in ("jump_k", "min_jump", "volume_z", "volume_floor"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 < value < math.inf):
                msg = f"{name} must be a positive finite number, got {value!r}"
                raise ValueError(msg)
        unknown = sorted(set(self.weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            msg = f"unknown rule(s) in weights: {', '.join(unknown)}"
            raise ValueError(msg)
        for name, weight in self.weights.items():
            if not (isinstance(weight, int | float) and 0.0 <= weight <= 1.0):
                msg = f"weight of {name} must be in [0, 1], got {weight!r}"
                raise ValueError(msg)
        merged = MappingProxyType({**DEFAULT_WEIGHTS, **self.weights})
        object.__setattr__(self, "weights", merged)  # frozen: normalise once, here

    @property
    def lookback(self) -> int:
        """Earlier bars a caller must pass so a new bar is judged as with its full history.

        The jump test needs the previous close plus ``jump_window`` returns before it (one
        more bar than returns); the volume test needs ``volume_window`` bars. Only bars that
        passed the hard rules count (others are skipped by the time-series rules).
        """
        return max(self.jump_window, self.volume_window) + 1


DEFAULT_THRESHOLDS: Final = Thresholds()

#: ``DEFAULT_THRESHOLDS.lookback``: earlier (hard-valid) bars of a symbol to pass along with
#: new ones so every time-series rule of the new bars sees its whole window.
LOOKBACK_SESSIONS: Final = DEFAULT_THRESHOLDS.lookback
