"""Logging state for tests that call ``marketdata.logs.configure``: put back afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from marketdata.logs import LOGGERS


@contextmanager
def loggers_restored() -> Iterator[None]:
    """Handlers, propagation and level of the loggers ``configure`` touches, as before."""
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate, logger.level)
    try:
        yield
    finally:
        for name, (handlers, propagate, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(level)
