"""The PostgreSQL client tools: finding ``pg_dump``/``pg_restore``, checking and running them.

A tool is looked for in a given directory or on ``PATH`` and refused when its major version
is older than the server's. :func:`run_tool` runs one while the caller works, polling for a
``stop`` event (the child process is killed) and turning a failure into a
:class:`~marketdata.errors.StorageError` with the tool's first error line.

The password never appears on a command line or in a message: :func:`libpq_url_and_env`
gives the tools a connection URL without it and passes it in ``PGPASSWORD``. The copies and
restores that use these tools live in :mod:`marketdata.storage.dumps`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote

import sqlalchemy as sa

from marketdata.errors import ConfigError, StorageError
from marketdata.logs import redact_url_passwords
from marketdata.storage.snapshot import Stopped
from marketdata.storage.urls import DatabaseUrl

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_POLL_SECONDS = 0.2


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Stopped


def find_tool(name: str, bin_dir: Path | None) -> Path:
    """The ``pg_dump``/``pg_restore`` executable, in ``bin_dir`` or on ``PATH``."""
    found = shutil.which(name, path=str(bin_dir) if bin_dir else None)
    if found is None:
        where = f"in {bin_dir}" if bin_dir else "on PATH"
        msg = (
            f"{name} not found {where}: install the PostgreSQL client tools (the server's "
            "major version or newer) or point MARKETDATA_BACKUP_PG_BIN_DIR at them"
        )
        raise ConfigError(msg)
    return Path(found)


def tool_version(tool: Path) -> tuple[int, str]:
    """The major version of a PostgreSQL client tool, and its version line."""
    try:
        done = subprocess.run(  # noqa: S603  # a located executable, fixed arguments
            [str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        msg = f"cannot run {tool}: {exc.strerror}"
        raise ConfigError(msg) from None
    line = done.stdout.strip()
    match = _VERSION.search(line)
    if done.returncode != 0 or match is None:
        msg = (
            f"{tool} --version did not report a PostgreSQL version: {line or done.stderr.strip()!r}"
        )
        raise ConfigError(msg)
    return int(match.group(1)), line


def server_major(conn: sa.Connection) -> int:
    """The server's major version (``server_version_num`` 150020 → 15)."""
    number = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
    return number // 10000 if number >= 100000 else number // 100


def checked_tool(name: str, bin_dir: Path | None, *, server: int) -> tuple[Path, str]:
    """The tool, refused when its major version is older than the server's."""
    tool = find_tool(name, bin_dir)
    major, line = tool_version(tool)
    if major < server:
        msg = (
            f"{name} is version {major} but the server is PostgreSQL {server}: {name} must be "
            f"at least the server's version; install the PostgreSQL {server} client tools or "
            "point MARKETDATA_BACKUP_PG_BIN_DIR at them"
        )
        raise ConfigError(msg)
    return tool, line


def libpq_url_and_env(db: DatabaseUrl) -> tuple[str, dict[str, str]]:
    """The connection URL without its password, and the environment carrying it."""
    netloc = db.parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    url = db.parts._replace(netloc=f"{user}@{hostport}" if at and user else hostport).geturl()
    env = dict(os.environ)  # the child needs PATH, locale, PGSSL* settings …
    if db.password is not None:
        env["PGPASSWORD"] = unquote(db.password)
    return url, env


@contextlib.contextmanager
def run_tool(
    command: Sequence[str],
    *,
    env: dict[str, str],
    what: str,
    stop: threading.Event | None,
    progress: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Start a tool, run the body while it works, then wait for it; it is killed when ``stop``
    is set or the body fails. Its first error line is the message of a failure (passwords
    redacted)."""
    with tempfile.TemporaryFile("w+") as errors:
        try:
            process = subprocess.Popen(  # noqa: S603  # located executable, our own arguments
                command, stdout=subprocess.DEVNULL, stderr=errors, env=env, text=True
            )
        except OSError as exc:
            msg = f"cannot run {command[0]}: {exc.strerror}"
            raise ConfigError(msg) from None
        try:
            yield
            while True:
                try:
                    code = process.wait(timeout=_POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    _check(stop)
                    if progress is not None:
                        progress()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            errors.seek(0)
            lines = [ln.strip() for ln in errors.read().splitlines() if ln.strip()]
            detail = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "")
            msg = f"{what} failed (exit status {code}): {redact_url_passwords(detail)}"
            raise StorageError(msg)
