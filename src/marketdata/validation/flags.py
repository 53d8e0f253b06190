"""The flag bits: one per rule, so a bar's verdict is one int64 that storage keeps as is.

Bits are grouped by severity so a mask test answers "did any hard rule fire?" in one AND: hard
rules use the low bits (0–15), soft rules bits 16–23 and informational rules bits 24 and up.
Bits are never renumbered once stored; a new rule takes the next free bit of its group.
"""

from __future__ import annotations

from enum import IntFlag, StrEnum
from typing import Final

__all__ = ["HARD_MASK", "INFO_MASK", "SOFT_MASK", "Flag", "Severity", "rule_name", "severity_of"]


class Severity(StrEnum):
    """How much a fired rule says about a bar."""

    HARD = "hard"  # the bar is wrong: it fails validation and scores 0 by default
    SOFT = "soft"  # the bar is suspicious: it stays valid but loses some quality
    INFO = "info"  # worth knowing (logged), not held against the bar


class Flag(IntFlag):
    """One bit per rule; ``rule_name(flag)`` is the snake_case name users see."""

    # Hard: the bar contradicts itself or the calendar.
    NON_FINITE_PRICE = 1 << 0
    NON_POSITIVE_PRICE = 1 << 1
    HIGH_BELOW_OPEN_CLOSE = 1 << 2
    LOW_ABOVE_OPEN_CLOSE = 1 << 3
    HIGH_BELOW_LOW = 1 << 4
    NEGATIVE_VOLUME = 1 << 5
    VWAP_OUTSIDE_RANGE = 1 << 6
    NOT_A_SESSION = 1 << 7
    DUPLICATE_DATE = 1 << 8
    # Soft: the bar is possible but unusual for this symbol.
    ZERO_VOLUME = 1 << 16
    PRICE_JUMP = 1 << 17
    VOLUME_ANOMALY = 1 << 18
    STALE_BAR = 1 << 19
    # Info: explained by a corporate action.
    EXPLAINED_JUMP = 1 << 24


#: Every bit of each severity group.
HARD_MASK: Final = (1 << 16) - 1
SOFT_MASK: Final = ((1 << 24) - 1) & ~HARD_MASK
INFO_MASK: Final = ~((1 << 24) - 1) & ((1 << 63) - 1)


def rule_name(flag: Flag) -> str:
    """The stored and displayed name of a single-bit flag, e.g. ``"price_jump"``."""
    name = flag.name
    if name is None or flag.bit_count() != 1:
        msg = f"expected a single rule flag, got {flag!r}"
        raise ValueError(msg)
    return name.lower()


def severity_of(flag: Flag) -> Severity:
    """The severity group a flag's bit belongs to."""
    if flag & HARD_MASK:
        return Severity.HARD
    if flag & SOFT_MASK:
        return Severity.SOFT
    return Severity.INFO
