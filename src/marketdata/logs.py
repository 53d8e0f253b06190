"""Logging set-up: one place, events with stable names, and secrets never written.

Log calls look like ``log.info("bars written", extra={"event": "bars_written", ...})``.
:func:`configure` installs a handler on the ``marketdata`` logger with a filter that replaces
any configured secret (API keys, database passwords) with ``***``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_URL_PASSWORD = re.compile(r"(?P<prefix>[a-z][a-z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)@", re.I)


def redact_url_passwords(text: str) -> str:
    """Replace passwords in ``scheme://user:password@host`` URLs inside ``text``."""
    return _URL_PASSWORD.sub(r"\g<prefix>***@", text)


class RedactSecrets(logging.Filter):
    """Scrub secrets and URL passwords from every record's rendered message."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def redact(self, text: str) -> str:
        """``text`` with each secret and URL password replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_url_passwords(text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, redacted, and keep the record."""
        message = record.getMessage()
        record.msg = self.redact(message)
        record.args = None
        return True


def configure(level: str = "INFO", *, secrets: Iterable[str] = ()) -> None:
    """Send ``marketdata`` logs to stderr at ``level``, redacting ``secrets``."""
    logger = logging.getLogger("marketdata")
    for handler in list(logger.handlers):
        if getattr(handler, "_marketdata", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._marketdata = True  # type: ignore[attr-defined]  # marks our own handler
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
