"""Logging set-up: one place, events with stable names, context ids, and secrets never written.

Log calls look like ``log.info("bars written", extra={"event": "bars_written", ...})``.
:func:`configure` installs one handler on the ``marketdata`` and ``uvicorn`` loggers that writes
either JSON lines (one object per record: ``ts``, ``level``, ``logger``, ``message``, ``event``,
then the record's extra fields and the ids of :func:`log_context`) or the human one-line format.
``auto`` picks JSON when the stream is not a terminal (a service under systemd, Docker or cron)
and text on a terminal. Every format goes through :class:`RedactSecrets`: configured secrets
(API keys, database passwords) and URL passwords become ``***``.

:func:`log_context` binds fields (``request_id`` for an HTTP request, ``run_id`` for a backfill
run) to everything logged inside it, in this task and the tasks it starts.

JSON comes from the standard library's ``json``: a log line is small, so a faster encoder buys
nothing worth a dependency, and a plain :class:`logging.Formatter` keeps every existing
``logging`` call, filter and test working unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import IO, Literal

LogFormat = Literal["auto", "json", "text"]

#: Loggers :func:`configure` writes: ours, uvicorn's server and access logs (the access
#: logger named too, as uvicorn's own set-up stops it from propagating), and stamina's (left
#: without a handler, Python's last resort would print its bare messages on stderr).
LOGGERS = ("marketdata", "uvicorn", "uvicorn.access", "stamina")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_URL_PASSWORD = re.compile(r"(?P<prefix>[a-z][a-z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)@", re.I)
_QUERY_KEY = re.compile(
    r"(?P<name>[?&](?:api[_-]?key|access_token|token)=)[^&\s\"'#]+", re.IGNORECASE
)
_EMPTY: Mapping[str, object] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, object]] = ContextVar("marketdata_log_context", default=_EMPTY)
#: Attributes every LogRecord has; anything else on a record came from ``extra`` or a filter.
#: uvicorn's ``color_message`` (the message with terminal colour codes) is left out too.
_STANDARD = frozenset(
    (
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        "color_message",
    )
)


def redact_url_passwords(text: str) -> str:
    """Replace passwords in ``scheme://user:password@host`` URLs inside ``text``."""
    return _URL_PASSWORD.sub(r"\g<prefix>***@", text)


def redact_query_keys(text: str) -> str:
    """Replace the values of key-like query parameters (``apiKey=…``, ``api_key=…``,
    ``access_token=…``, ``token=…``) inside ``text``: a client may send any key that way."""
    return _QUERY_KEY.sub(r"\g<name>***", text)


class RedactSecrets(logging.Filter):
    """Scrub secrets and URL passwords from every record's rendered message."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with each secret and URL password replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_query_keys(redact_url_passwords(text))

    def redact_value(self, value: object) -> object:
        """``value`` with every string in it redacted (through lists, tuples and dicts)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        if isinstance(value, dict):
            return {str(k): self.redact_value(v) for k, v in value.items()}
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, redacted, and keep the record."""
        message = record.getMessage()
        record.msg = self.redact(message)
        record.args = None
        return True


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add ``fields`` to every record logged inside the block (and in tasks started in it)."""
    token = _CONTEXT.set(MappingProxyType({**_CONTEXT.get(), **fields}))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> Mapping[str, object]:
    """The fields :func:`log_context` has bound here (empty outside any block)."""
    return _CONTEXT.get()


class AddContext(logging.Filter):
    """Copy the :func:`log_context` fields onto each record (a field set by ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the bound fields and keep the record."""
        for key, value in _CONTEXT.get().items():
            record.__dict__.setdefault(key, value)
        return True


class TextFormatter(logging.Formatter):
    """The human one-line format, redacted as a whole (tracebacks included)."""

    def __init__(self, redactor: RedactSecrets) -> None:
        super().__init__(TEXT_FORMAT)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The line, with secrets replaced."""
        return self._redactor.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record; each string value is redacted before it is encoded."""

    def __init__(self, redactor: RedactSecrets) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """``{"ts", "level", "logger", "message", "event", ...extra fields}`` on one line."""
        payload: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "event": record.__dict__.get("event"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in payload and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(
            self._redactor.redact_value(payload),
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )


class _Handler(logging.StreamHandler[IO[str]]):
    """The handler :func:`configure` installs (and replaces). Without a stream of its own it
    writes to whatever ``sys.stderr`` is when a record arrives, as ``logging.lastResort``
    does, so a replaced stderr (a test runner's capture, a daemoniser) never breaks logging."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._own = stream
        super().__init__(stream if stream is not None else sys.stderr)

    @property  # overrides StreamHandler's attribute
    def stream(self) -> IO[str]:
        return self._own if self._own is not None else sys.stderr

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        """Ignored: the stream was fixed at construction."""


def use_json(fmt: LogFormat, stream: IO[str]) -> bool:
    """Whether ``fmt`` means JSON on ``stream`` (``auto``: when it is not a terminal)."""
    if fmt != "auto":
        return fmt == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure(
    level: str = "INFO",
    *,
    secrets: Iterable[str] = (),
    fmt: LogFormat = "auto",
    stream: IO[str] | None = None,
) -> None:
    """Send ``marketdata`` (at ``level``), ``uvicorn`` and ``stamina`` logs to ``stream``
    (stderr) in ``fmt``.

    Calling it again replaces the handler it installed before.
    """
    target = stream if stream is not None else sys.stderr
    redactor = RedactSecrets(secrets)
    handler = _Handler(stream)
    handler.setFormatter(
        JsonFormatter(redactor) if use_json(fmt, target) else TextFormatter(redactor)
    )
    handler.addFilter(AddContext())
    handler.addFilter(redactor)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if isinstance(old, _Handler):
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("marketdata").setLevel(level)
    # stamina logs each scheduled retry at WARNING, which the providers' own `provider_retry`
    # warning already says: its record (with the wait) is shown only when debugging.
    debugging = logging.getLogger("marketdata").getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("stamina").setLevel(logging.WARNING if debugging else logging.ERROR)
