"""Under CI=true a missing PostgreSQL fails the run; elsewhere its tests are skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGET = "tests/integration/test_migrations.py::test_upgrade_is_idempotent"


def run_pytest(ci: bool) -> subprocess.CompletedProcess[str]:
    """Run one PostgreSQL-backed test against a port where nothing listens."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["MARKETDATA_TEST_POSTGRES_URL"] = "postgresql://127.0.0.1:1/postgres"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", TARGET, "-p", "no:cacheprovider", "-q", "-rs"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("ci", [True, False])
def test_missing_postgres(ci: bool) -> None:
    """CI=true turns the missing server into a failure naming the cause; locally it skips."""
    result = run_pytest(ci)
    output = result.stdout + result.stderr
    if ci:
        assert result.returncode != 0
        assert "PostgreSQL is required under CI=true" in output
        assert "1 passed" in output  # the SQLite half still ran
    else:
        assert result.returncode == 0, output
        assert "1 passed, 1 skipped" in output
