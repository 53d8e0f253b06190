"""Log output: JSON lines or text by terminal and setting, context ids, and redaction everywhere."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from marketdata.logs import LOGGERS, LogFormat, configure, current_context, log_context, use_json
from marketdata.settings import Settings
from tests.support.logs import loggers_restored

SECRET = "pk_LIVE_0123456789abcdef"
PASSWORD = "hunter2-pw"


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    """Each test configures logging; the loggers are put back as they were afterwards."""
    with loggers_restored():
        yield


def capture(fmt: LogFormat = "json", *, terminal: bool = False) -> io.StringIO:
    """Configure logging into a fresh stream (a terminal or not) and return it."""
    stream = Terminal() if terminal else io.StringIO()
    configure("DEBUG", secrets=[SECRET, PASSWORD], fmt=fmt, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every JSON object written to ``stream``, one per line."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


log = logging.getLogger("marketdata.tests")


def test_json_line_has_the_fixed_fields_and_the_extras() -> None:
    """One object per record: ts (ISO, UTC), level, logger, message, event, then extras."""
    stream = capture()
    log.info("wrote %d bars", 3, extra={"event": "bars_written", "symbol": "BRK.B", "days": [1, 2]})
    log.warning("no event here")
    first, second = lines(stream)
    assert list(first)[:5] == ["ts", "level", "logger", "message", "event"]
    assert first["ts"].endswith("Z")
    assert dt.datetime.fromisoformat(first["ts"]).utcoffset() == dt.timedelta(0)
    assert first["level"] == "INFO"
    assert first["logger"] == "marketdata.tests"
    assert first["message"] == "wrote 3 bars"
    assert (first["event"], first["symbol"], first["days"]) == ("bars_written", "BRK.B", [1, 2])
    assert (second["level"], second["event"]) == ("WARNING", None)


def test_values_json_cannot_encode_are_written_as_text() -> None:
    """A date or other object in ``extra`` is written with str(), not dropped or fatal."""
    stream = capture()
    log.info("day", extra={"event": "day", "day": dt.date(2024, 3, 8)})
    assert lines(stream)[0]["day"] == "2024-03-08"


def test_exceptions_are_one_field_of_the_same_line() -> None:
    """A traceback stays inside its JSON object, so a line is still one record."""
    stream = capture()
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("failed", extra={"event": "failed"})
    (record,) = lines(stream)
    assert "ValueError: bad value" in record["exception"]
    assert "Traceback" in record["exception"]


@pytest.mark.parametrize(
    ("fmt", "terminal", "expect_json"),
    [
        ("auto", False, True),
        ("auto", True, False),
        ("json", True, True),
        ("text", False, False),
    ],
)
def test_format_follows_the_setting_and_the_terminal(
    fmt: LogFormat, terminal: bool, expect_json: bool
) -> None:
    """auto: JSON unless the stream is a terminal; json and text are taken as said."""
    stream = capture(fmt, terminal=terminal)
    log.info("hello", extra={"event": "hello"})
    text = stream.getvalue().strip()
    if expect_json:
        assert json.loads(text)["message"] == "hello"
    else:
        assert text.endswith(" INFO marketdata.tests: hello")
    assert use_json(fmt, stream) is expect_json


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_never_appear_in_either_format(fmt: LogFormat) -> None:
    """Configured secrets and URL passwords are redacted in messages, extras and tracebacks."""
    stream = capture(fmt)
    url = f"postgresql://app:{PASSWORD}@db/marketdata"
    log.info("calling with %s", SECRET, extra={"event": "call", "key": SECRET, "urls": [url]})
    try:
        raise RuntimeError(f"cannot connect to {url} with {SECRET}")
    except RuntimeError:
        log.exception("connect failed", extra={"event": "connect_failed"})
    written = stream.getvalue()
    assert SECRET not in written
    assert PASSWORD not in written
    assert "***" in written
    if fmt == "json":
        first, second = lines(stream)
        assert first["key"] == "***"
        assert first["urls"] == ["postgresql://app:***@db/marketdata"]
        assert "cannot connect to postgresql://app:***@db" in second["exception"]


def test_context_fields_join_every_record_inside_the_block() -> None:
    """log_context adds its fields inside the block only; nested blocks add to the outer."""
    stream = capture()
    with log_context(request_id="req-1"):
        log.info("outer", extra={"event": "outer"})
        with log_context(run_id=7):
            assert current_context() == {"request_id": "req-1", "run_id": 7}
            log.info("inner", extra={"event": "inner"})
    log.info("after", extra={"event": "after"})
    outer, inner, after = lines(stream)
    assert outer["request_id"] == "req-1"
    assert "run_id" not in outer
    assert (inner["request_id"], inner["run_id"]) == ("req-1", 7)
    assert "request_id" not in after
    assert current_context() == {}


def test_an_explicit_extra_wins_over_the_context() -> None:
    """A field given in ``extra`` is kept; the context only fills what is missing."""
    stream = capture()
    with log_context(symbol="AAPL", run_id=1):
        log.info("explicit", extra={"event": "explicit", "symbol": "MSFT"})
    (record,) = lines(stream)
    assert (record["symbol"], record["run_id"]) == ("MSFT", 1)


def test_context_follows_tasks_started_inside_it_and_stays_apart() -> None:
    """Concurrent tasks each keep their own id, and tasks they start inherit it."""
    stream = capture()

    async def handle(request_id: str) -> None:
        with log_context(request_id=request_id):
            await asyncio.sleep(0)  # let the other task run in between
            await asyncio.create_task(child())

    async def child() -> None:
        log.info("child", extra={"event": "child"})

    async def main() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(main())
    assert sorted(r["request_id"] for r in lines(stream)) == ["a", "b"]


def test_configuring_again_replaces_the_handler() -> None:
    """configure twice: one handler per logger, writing to the latest stream."""
    first = capture()
    second = capture()
    log.info("once", extra={"event": "once"})
    assert first.getvalue() == ""
    assert len(lines(second)) == 1
    for name in LOGGERS:
        streams = [getattr(h, "stream", None) for h in logging.getLogger(name).handlers]
        assert first not in streams
        assert streams.count(second) == 1


def test_without_a_stream_logs_follow_the_current_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stderr replaced after configure (a test runner's capture) still gets the lines."""
    configure("INFO", fmt="json")
    replaced = io.StringIO()
    monkeypatch.setattr("sys.stderr", replaced)
    log.info("here", extra={"event": "here"})
    assert json.loads(replaced.getvalue())["event"] == "here"


def test_uvicorn_records_use_the_same_format() -> None:
    """uvicorn's server and access loggers write through the same handler (and context),
    once each, even after uvicorn's own logging set-up stopped access records propagating."""
    logging.getLogger("uvicorn.access").propagate = False  # as uvicorn's LOGGING_CONFIG does
    stream = capture()
    with log_context(request_id="abc"):
        logging.getLogger("uvicorn.access").warning('127.0.0.1:1 - "GET / HTTP/1.1" 200')
        logging.getLogger("uvicorn.error").warning(
            "Application startup complete.",
            extra={"color_message": "\x1b[36mApplication startup complete.\x1b[0m"},
        )
    access, server = lines(stream)
    assert (access["logger"], access["request_id"]) == ("uvicorn.access", "abc")
    assert (server["logger"], server["request_id"]) == ("uvicorn.error", "abc")
    assert "color_message" not in server  # uvicorn's terminal-coloured copy of the message


def test_the_format_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """MARKETDATA_LOG_FORMAT picks the format; auto by default; other values are refused."""
    assert Settings().log_format == "auto"
    monkeypatch.setenv("MARKETDATA_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("MARKETDATA_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()


def test_every_configured_secret_is_handed_to_redaction() -> None:
    """The vendor key, the API keys and the database password (as written and decoded)."""
    settings = Settings(
        polygon_api_key=SECRET,
        api_keys="first-key-123,second-key-456",
        database_url="postgresql://app:p%40ss-word@db/marketdata",
    )
    assert set(settings.secret_values()) == {
        SECRET,
        "first-key-123",
        "second-key-456",
        "p%40ss-word",
        "p@ss-word",
    }


def test_key_like_query_parameters_are_redacted() -> None:
    """A client may put any key in a URL (Polygon's ``apiKey=``): the access log hides it."""
    stream = capture("text")
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)  # as uvicorn sets it when serving
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5",
        "GET",
        "/v2/aggs/ticker/A/range/1/day/1/2?adjusted=true&apiKey=sk_live_XYZ123&limit=5",
        "1.1",
        200,
    )
    log.info("see https://x.test/a?api_key=abc9876&access_token=t0k3n#frag")
    text = stream.getvalue()
    for secret in ("sk_live_XYZ123", "abc9876", "t0k3n"):
        assert secret not in text
    assert "?adjusted=true&apiKey=***&limit=5" in text
    assert "?api_key=***&access_token=***#frag" in text
