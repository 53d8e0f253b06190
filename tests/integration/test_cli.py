"""The CLI on both backends: import → export is bit-exact, status, db, and clear failures."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from marketdata.cli._common import EXIT_PARTIAL
from marketdata.cli.main import app

runner = CliRunner()

#: Awkward floats, DST-adjacent dates, dotted symbols, missing optionals.
CANONICAL = """\
symbol,date,open,high,low,close,volume,vwap,transactions
AAPL,2024-03-08,1e-8,123456.78901234,0.30000000000000004,0.1,100.0,,
AAPL,2024-03-11,185.5,187.0,184.1,186.2,54321000.0,185.9,612345
AAPL,2024-11-01,222.91,225.35,220.27,222.01,64370100.0,223.0001,744211
AAPL,2024-11-04,220.99,222.79,219.71,222.01,44944500.0,,
BRK.B,2023-11-03,353.0,356.16,351.66,355.35,3125498.0,354.2201,59311
BRK.B,2023-11-06,355.27,357.82,354.0,357.2,3004200.0,356.6,48210
"""


def invoke(url: str, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process against ``url``; (exit code, stdout, stderr)."""
    result = runner.invoke(app, ["--database-url", url, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m marketdata`` as a user would (top-level error handling included)."""
    return subprocess.run(
        [sys.executable, "-m", "marketdata", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_import_export_round_trip_is_byte_exact(database_url: str, tmp_path: Path) -> None:
    """A canonical CSV comes back byte for byte: floats, dates and symbols untouched."""
    source = tmp_path / "bars.csv"
    source.write_text(CANONICAL)
    code, out, _ = invoke(database_url, "import", str(source))
    assert code == 0, out
    assert "inserted" in out
    target = tmp_path / "out.csv"
    code, _, _ = invoke(database_url, "export", "AAPL", "BRK.B", "--out", str(target))
    assert code == 0
    assert target.read_text() == CANONICAL


def test_parquet_round_trip_and_reimport_is_unchanged(database_url: str, tmp_path: Path) -> None:
    """Parquet export re-imports as all-unchanged and holds the same values."""
    source = tmp_path / "bars.csv.gz"
    source.write_bytes(gzip.compress(CANONICAL.encode()))
    assert invoke(database_url, "import", str(source))[0] == 0
    target = tmp_path / "all.parquet"
    assert invoke(database_url, "export", "--all", "--format", "parquet", "-o", str(target))[0] == 0
    exported = pl.read_parquet(target)
    expected = pl.read_csv(source, schema_overrides={"date": pl.Date, "transactions": pl.Int64})
    assert exported.equals(expected)
    code, out, _ = invoke(database_url, "import", str(target))
    assert code == 0
    assert "unchanged" in out
    status = json.loads(invoke(database_url, "status", "--json")[1])
    assert [(s["symbol"], s["bar_count"]) for s in status] == [("AAPL", 4), ("BRK.B", 2)]


def test_bad_rows_are_reported_and_skipped(database_url: str, tmp_path: Path) -> None:
    """Bad rows name file and line, good rows load, and the exit status says 'partial'."""
    source = tmp_path / "mixed.csv"
    source.write_text(
        CANONICAL
        + "MSFT,2024-02-30,1,1,1,1,1,,\n"
        + ",2024-01-02,1,1,1,1,1,,\n"
        + "MSFT,2024-01-02,abc,1,1,1,1,,\n"
        + "MSFT,2024-01-03,1,1\n"
    )
    code, _, err = invoke(database_url, "import", str(source))
    assert code == EXIT_PARTIAL
    assert f"{source}:8: unparsable date '2024-02-30'" in err
    assert f"{source}:9: symbol is empty" in err
    assert f"{source}:10: unparsable open 'abc'" in err
    assert f"{source}:11: expected 9 fields, found 4" in err
    assert "4 row(s) rejected" in err
    status = json.loads(invoke(database_url, "status", "--json")[1])
    assert sum(s["bar_count"] for s in status) == 6


def test_strict_import_writes_nothing_from_a_bad_file(database_url: str, tmp_path: Path) -> None:
    """--strict rejects the whole file: nothing of it is written."""
    source = tmp_path / "mixed.csv"
    source.write_text(CANONICAL + "MSFT,2024-02-30,1,1,1,1,1,,\n")
    result = runner.invoke(app, ["--database-url", database_url, "import", "--strict", str(source)])
    assert result.exit_code != 0
    assert "nothing written" in str(result.exception)
    assert "mixed.csv:8" in str(result.exception)
    assert json.loads(invoke(database_url, "status", "--json")[1]) == []


def test_changed_reimport_counts_updates(database_url: str, tmp_path: Path) -> None:
    """Loading a corrected file updates only the changed bars."""
    first = tmp_path / "v1.csv"
    first.write_text(CANONICAL)
    invoke(database_url, "import", str(first))
    second = tmp_path / "v2.csv"
    second.write_text(CANONICAL.replace("186.2,54321000.0", "186.25,54321000.0"))
    code, out, _ = invoke(database_url, "import", str(second))
    assert code == 0
    lines = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.splitlines()
        if line.count("│") == 3
    }
    assert (lines["inserted"], lines["updated"], lines["unchanged"]) == ("0", "1", "5")


def test_status_table_lists_symbols(database_url: str, tmp_path: Path) -> None:
    """status prints a row per symbol with first/last dates and counts."""
    source = tmp_path / "bars.csv"
    source.write_text(CANONICAL)
    invoke(database_url, "import", str(source))
    code, out, _ = invoke(database_url, "status")
    assert code == 0
    assert "BRK.B" in out
    assert "2023-11-03" in out


def test_status_on_empty_database_says_how_to_start(database_url: str) -> None:
    """An empty database explains the next step instead of printing an empty table."""
    code, out, _ = invoke(database_url, "status")
    assert code == 0
    assert "marketdata import" in out


def test_export_unknown_symbol_fails_before_writing(database_url: str, tmp_path: Path) -> None:
    """Exporting a symbol with no bars is an error and creates no file."""
    target = tmp_path / "x.csv"
    result = runner.invoke(
        app, ["--database-url", database_url, "export", "NOPE", "-o", str(target)]
    )
    assert result.exit_code != 0
    assert "no bars stored for NOPE" in str(result.exception)
    assert not target.exists()


def test_db_upgrade_and_current(database_url: str) -> None:
    """db upgrade is safe to repeat; db current reports the revision."""
    code, out, _ = invoke(database_url, "db", "upgrade")
    assert code == 0
    assert "up to date" in out
    code, out, _ = invoke(database_url, "db", "current")
    assert "up to date" in out


def test_version_and_help() -> None:
    """--version prints the version; every command has help."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("marketdata ")
    for command in (["import"], ["export"], ["status"], ["serve"], ["db", "upgrade"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage" in result.stdout


def test_default_database_is_sqlite_under_data_dir(tmp_path: Path) -> None:
    """With no settings, data goes to ./data/marketdata.db."""
    source = tmp_path / "bars.csv"
    source.write_text(CANONICAL)
    proc = run_cli("import", str(source), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "marketdata.db").exists()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["import", "missing.csv"], {}, "missing.csv: no such file"),
        (["export"], {}, "name at least one symbol"),
        (["status"], {"MARKETDATA_DATABASE_URL": "mysql://x"}, "unsupported scheme 'mysql'"),
        (["status"], {"MARKETDATA_PORT": "99999999"}, "invalid settings: MARKETDATA_PORT"),
    ],
)
def test_errors_are_one_clear_line(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    """User errors print one line, exit 1, and never a traceback."""
    proc = run_cli(*args, env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:")


def test_unreachable_database_names_host_not_password(tmp_path: Path) -> None:
    """A dead PostgreSQL gives one line with host and port, never the password."""
    url = "postgresql://trader:s3cr3tpass@127.0.0.1:1/marketdata"
    proc = run_cli("status", env={"MARKETDATA_DATABASE_URL": url}, cwd=tmp_path)
    assert proc.returncode == 1
    assert "127.0.0.1:1/marketdata" in proc.stderr
    assert "s3cr3tpass" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
