"""The command line's failures are one clear line: a database that cannot be opened, named
symbols without bars, swapped dates; logs stay parseable through retries; help shows flags as
flags; a failed backup verification is recorded."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from marketdata.cli.main import app
from marketdata.errors import InputError, MarketDataError, NotFound, StorageError
from marketdata.testing import FakePolygon
from tests.integration.test_cli import CANONICAL, invoke, run_cli
from tests.support.polygon import KEY, Upstream

runner = CliRunner()


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The message of a run that failed with exit 1 and one ``error:`` line (no traceback)."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def failure(*args: str, env: dict[str, str] | None = None) -> BaseException:
    """The exception a command run in-process ended with (it must end with one)."""
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is not None, result.stdout
    return result.exception


# -- a database that cannot be opened -----------------------------------------------------------


def _wal_database(directory: Path) -> Path:
    """A marketdata SQLite file whose ``-wal`` file cannot be created (a directory is in the
    way): SQLite cannot open it, whoever runs the test (root included)."""
    path = directory / "blocked.db"
    assert invoke(f"sqlite:///{path}", "db", "upgrade")[0] == 0
    (directory / "blocked.db-wal").mkdir()
    return path


def _unopenable(kind: str, tmp_path: Path) -> tuple[dict[str, str], str, str]:
    """Environment for one unusable place, the path the error names and its reason."""
    if kind == "csv file":
        path = tmp_path / "bars.csv"
        path.write_text(CANONICAL)
        return {"MARKETDATA_DATABASE_URL": f"sqlite:///{path}"}, str(path), "not a database"
    if kind == "file as directory":
        (tmp_path / "plain").write_text("a file, not a directory")
        data_dir = tmp_path / "plain" / "data"
        reason = f"{tmp_path / 'plain'} is a file, not a directory"
        return {"MARKETDATA_DATA_DIR": str(data_dir)}, str(data_dir), reason
    if kind == "unwritable directory":
        blocked = _wal_database(tmp_path)
        return {"MARKETDATA_DATABASE_URL": f"sqlite:///{blocked}"}, str(blocked), "unable to open"
    if kind == "read-only /proc":
        return {"MARKETDATA_DATABASE_URL": "sqlite:////proc/marketdata.db"}, "/proc", "unable"
    assert kind == "uncreatable directory"
    missing = "/proc/marketdata-test/data"
    return {"MARKETDATA_DATA_DIR": missing}, missing, "No such file or directory"


KINDS = [
    "csv file",
    "file as directory",
    "unwritable directory",
    pytest.param(
        "read-only /proc",
        marks=pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc"),
    ),
    pytest.param(
        "uncreatable directory",
        marks=pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc"),
    ),
]


@pytest.mark.parametrize("kind", KINDS)
def test_an_unusable_database_is_one_line(kind: str, tmp_path: Path) -> None:
    """A file that is not SQLite, a file where the data directory should be, a database whose
    directory takes no writes, a place that cannot exist: one line naming the path and the
    reason, with a hint, exit 1, no traceback."""
    env, path, reason = _unopenable(kind, tmp_path)
    message = one_line_error(run_cli("status", env=env))
    assert path in message
    assert reason in message
    assert "MARKETDATA_" in message  # the hint says what to change


@pytest.mark.parametrize(
    "command", [["import", "FILE"], ["verify", "AAPL", "--against", "FILE"]], ids=" ".join
)
def test_commands_with_progress_bars_fail_to_open_in_one_line(
    command: list[str], tmp_path: Path
) -> None:
    """import and verify open the database before drawing progress: the error is the only
    thing on stderr (no bar at 0 %, no blank line before it)."""
    env, path, reason = _unopenable("csv file", tmp_path)
    source = tmp_path / "in.csv"
    source.write_text(CANONICAL)
    done = run_cli(*(str(source) if a == "FILE" else a for a in command), env=env)
    message = one_line_error(done)
    assert done.stderr.startswith("error: "), done.stderr
    assert path in message
    assert reason in message


COMMANDS = [
    ["status"],
    ["status", "--watch", "--count", "1"],
    ["export", "AAPL"],
    ["import", "FILE"],
    ["backfill", "AAPL", "--dry-run"],
    ["backfill", "AAPL", "--provider", "synthetic", "--years", "1"],
    ["backup"],
    ["validate"],
    ["gaps", "AAPL"],
    ["runs"],
    ["symbols", "list"],
    ["actions", "list"],
    ["worker", "--once"],
    ["db", "current"],
    ["db", "upgrade"],
    ["serve", "--port", "1"],
]


@pytest.mark.parametrize("kind", ["csv file", "unwritable directory"])
def test_every_command_names_the_unusable_database(kind: str, tmp_path: Path) -> None:
    """Every command that opens the database (serve and the schema commands too) stops with
    the same StorageError, before doing anything."""
    env, path, reason = _unopenable(kind, tmp_path)
    source = tmp_path / "in.csv"
    source.write_text(CANONICAL)
    for command in COMMANDS:
        args = [str(source) if a == "FILE" else a for a in command]
        error = failure(*args, env={**env, "MARKETDATA_SIMULATE": "false"})
        assert isinstance(error, StorageError), (command, error)
        assert path in str(error)
        assert reason in str(error)


def test_no_password_in_an_unreachable_database_error() -> None:
    """A PostgreSQL server that refuses: the host is named, the password never."""
    url = "postgresql://marketdata:s3cret-Pw@127.0.0.1:1/marketdata"
    message = one_line_error(run_cli("--database-url", url, "status"))
    assert "127.0.0.1:1" in message
    assert "s3cret-Pw" not in message


# -- named symbols without bars, swapped dates ----------------------------------------------------


@pytest.fixture
def filled(database_url: str, tmp_path: Path) -> str:
    """A database holding the canonical AAPL and BRK.B bars."""
    source = tmp_path / "bars.csv"
    source.write_text(CANONICAL)
    code, out, _ = invoke(database_url, "import", str(source))
    assert code == 0, out
    return database_url


def test_status_and_validate_of_a_symbol_without_bars(filled: str) -> None:
    """Like gaps and export: `status NOPE` and `validate NOPE` are errors on a full
    database, not "no bars stored yet"."""
    for command in ("status", "validate", "gaps", "export"):
        error = failure("--database-url", filled, command, "NOPE")
        assert isinstance(error, NotFound), command
        assert str(error) == "no bars stored for NOPE"


def test_status_shows_the_stored_and_reports_the_missing(filled: str) -> None:
    """`status AAPL NOPE` shows AAPL, then names NOPE (exit 1); symbols are upper-cased as
    everywhere else; --json lists the stored ones the same way."""
    result = runner.invoke(app, ["--database-url", filled, "status", "aapl", "NOPE", "BRK.B"])
    assert "AAPL" in result.stdout
    assert "BRK.B" in result.stdout
    assert isinstance(result.exception, NotFound)
    assert str(result.exception) == "no bars stored for NOPE"
    result = runner.invoke(app, ["--database-url", filled, "status", "--json", "NOPE", "AAPL"])
    assert [s["symbol"] for s in json.loads(result.stdout)] == ["AAPL"]
    assert isinstance(result.exception, NotFound)
    code, out, _ = invoke(filled, "status", "AAPL")
    assert code == 0
    assert "AAPL" in out


def test_validate_refuses_before_rescoring(filled: str) -> None:
    """`validate AAPL NOPE` re-scores nothing: the error comes first."""
    result = runner.invoke(app, ["--database-url", filled, "validate", "AAPL", "NOPE"])
    assert isinstance(result.exception, NotFound)
    assert "Validation" not in result.stdout
    code, out, _ = invoke(filled, "validate", "aapl")
    assert code == 0
    assert "AAPL" in out


def test_missing_symbol_from_the_command_line(filled: str) -> None:
    """As a user sees it: the table on stdout, one error line on stderr, exit 1."""
    done = run_cli("--database-url", filled, "status", "AAPL", "NOPE")
    assert one_line_error(done) == "no bars stored for NOPE"
    assert "AAPL" in done.stdout


def test_gaps_refuses_a_start_after_the_end(filled: str) -> None:
    """`gaps --start` after `--end` is the same error as export's and backfill's."""
    error = failure(
        "--database-url", filled, "gaps", "AAPL", "--start", "2024-02-01", "--end", "2024-01-01"
    )
    assert isinstance(error, InputError)
    assert str(error) == "--start 2024-02-01 is after --end 2024-01-01"


# -- settings -----------------------------------------------------------------------------------


def test_settings_errors_name_the_variable(tmp_path: Path) -> None:
    """A bad value is named by its environment variable (or its option), in one line."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    message = one_line_error(run_cli("status", env={"MARKETDATA_LOG_LEVEL": "loud"}))
    assert message.startswith("invalid settings: MARKETDATA_LOG_LEVEL: ")
    assert "log_level" not in message
    done = run_cli("status", env={"MARKETDATA_LOG_LEVEL": "debug", "MARKETDATA_DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    message = one_line_error(run_cli("--database-url", "mysql://db/x", "status"))
    assert message.startswith("invalid settings: --database-url has unsupported scheme 'mysql'")


# -- logs through vendor retries ------------------------------------------------------------------


@pytest.fixture
def throttling(market: Upstream, monkeypatch: pytest.MonkeyPatch) -> FakePolygon:
    """The wall-clock fake Polygon answering its next two data requests with 429 (retry after
    10 ms), with the CLI's environment pointing at it."""
    monkeypatch.setenv("POLYGON_API_KEY", KEY)
    monkeypatch.setenv("POLYGON_BASE_URL", market.url)
    monkeypatch.setenv("POLYGON_CALLS_PER_MINUTE", "0")
    market.server.faults.throttle_next = 2
    market.server.faults.retry_after = 0.01
    return market.server


def _log_records(stderr: str) -> list[dict[str, object]]:
    """The JSON log records on stderr; any other line is the progress display's, never a
    log message."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    others = [line for line in lines if not line.startswith("{")]
    assert not [line for line in others if "stamina" in line or "retry" in line], others
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.parametrize("level", ["INFO", "debug"])
def test_retries_keep_logs_json(throttling: FakePolygon, tmp_path: Path, level: str) -> None:
    """Retried 429s leave stderr pure JSON lines: our `provider_retry` warnings, and
    stamina's own records (with the wait) only when debugging, through our formatter."""
    env = {"MARKETDATA_LOG_FORMAT": "json", "MARKETDATA_LOG_LEVEL": level}
    url = f"sqlite:///{tmp_path / 'm.db'}"
    done = run_cli("--database-url", url, "backfill", "AAPL", "--years", "1", env=env)
    assert done.returncode == 0, done.stderr
    records = _log_records(done.stderr)
    assert sum(r["event"] == "provider_retry" for r in records) == 2
    stamina = [r for r in records if r["logger"] == "stamina"]
    if level == "INFO":
        assert stamina == []
    else:
        assert len(stamina) == 2
        assert stamina[0]["message"] == "stamina.retry_scheduled"
        assert stamina[0]["stamina.wait_for"] == pytest.approx(0.01)
    assert KEY not in done.stderr


# -- help ---------------------------------------------------------------------------------------


def test_help_shows_flags_without_a_value() -> None:
    """No `<bool>` after a flag in any command's help; options that take a value still say
    what kind."""

    def paths(command: object, prefix: list[str]) -> list[list[str]]:
        found = [prefix]
        for name, sub in getattr(command, "commands", {}).items():
            found += paths(sub, [*prefix, name])
        return found

    every = paths(typer.main.get_command(app), [])
    assert ["backup", "verify"] in every
    for path in every:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, path
        assert "<bool>" not in result.stdout, path
    imports = runner.invoke(app, ["import", "--help"], env={"COLUMNS": "200"}).stdout
    strict = next(line for line in imports.splitlines() if "--strict" in line)
    assert "<" not in strict
    assert "<int range>" in imports  # --chunk-rows


# -- backup verification --------------------------------------------------------------------------


def _backup(url: str, directory: Path) -> Path:
    code, out, _ = invoke(url, "backup", "--to", str(directory), "--json")
    assert code == 0, out
    return Path(json.loads(out)["path"])


def _damage(path: Path) -> None:
    """Overwrite the file's header: neither SQLite nor pg_restore can read it."""
    with path.open("r+b") as file:
        file.write(b"\0" * 32)


def _listed(url: str, directory: Path) -> dict[str, object]:
    code, out, _ = invoke(url, "backup", "list", "--dir", str(directory), "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert isinstance(entry, dict)
    return entry


def test_a_corrupt_backup_is_recorded_as_failed(filled: str, tmp_path: Path) -> None:
    """`backup verify` of a file whose SHA-256 differs exits 1, and `backup list` shows it
    failed, with the reason, instead of "not run"."""
    path = _backup(filled, tmp_path / "backups")
    _damage(path)
    error = failure("--database-url", filled, "backup", "verify", str(path))
    assert isinstance(error, InputError)
    assert "SHA-256 differs" in str(error)
    listed = _listed(filled, tmp_path / "backups")
    assert listed["verified"] is False
    assert "SHA-256 differs" in str(listed["verify_error"])
    out = invoke(filled, "backup", "list", "--dir", str(tmp_path / "backups"))[1]
    assert "FAILED" in out


def test_a_backup_that_does_not_restore_is_recorded_as_failed(filled: str, tmp_path: Path) -> None:
    """A damaged file whose manifest was rewritten to match: the restore fails, and that is
    recorded as the verification's result."""
    path = _backup(filled, tmp_path / "backups")
    _damage(path)
    manifest_path = path.with_name(path.name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    error = failure("--database-url", filled, "backup", "verify", str(path))
    assert isinstance(error, MarketDataError)
    listed = _listed(filled, tmp_path / "backups")
    assert listed["verified"] is False
    assert str(error) in str(listed["verify_error"])
    verified_at = json.loads(manifest_path.read_text())["verified_at"]
    assert dt.datetime.fromisoformat(verified_at.replace("Z", "+00:00")).tzinfo is not None
