"""Validation: pure checks that turn bar columns into flag masks, quality scores and a log.

Nothing here does I/O, logs or reads the clock: columns in, masks and reports out. The rules
and their bits are in :data:`RULES`; every number they use is a field of :class:`Thresholds`.
"""

from __future__ import annotations

from marketdata.validation.checks import check_constraints
from marketdata.validation.engine import Validation, validate
from marketdata.validation.flags import Flag, Severity
from marketdata.validation.gaps import GapRange, count_missing_sessions, missing_sessions
from marketdata.validation.report import LOG_SCHEMA, SCORE_SCHEMA
from marketdata.validation.rules import RULES, Rule, flag_names
from marketdata.validation.thresholds import DEFAULT_THRESHOLDS, LOOKBACK_SESSIONS, Thresholds

__all__ = [
    "DEFAULT_THRESHOLDS",
    "LOG_SCHEMA",
    "LOOKBACK_SESSIONS",
    "RULES",
    "SCORE_SCHEMA",
    "Flag",
    "GapRange",
    "Rule",
    "Severity",
    "Thresholds",
    "Validation",
    "check_constraints",
    "count_missing_sessions",
    "flag_names",
    "missing_sessions",
    "validate",
]
