"""deploy/marketdata.service checked by systemd-analyze: `verify` and the offline `security`
exposure score."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import (
    INSTALLED_CLI,
    UNIT,
    run,
    tool,
)


def installed_unit(tmp_path: Path, text: str = UNIT) -> Path:
    """The unit with /opt/marketdata's CLI replaced by this checkout's, so that verify's check
    that the command exists is a real one."""
    cli = Path(tool("marketdata"))
    path = tmp_path / "marketdata.service"
    path.write_text(text.replace(INSTALLED_CLI, str(cli)))
    return path


def verify(unit: Path) -> tuple[int, list[str]]:
    """``systemd-analyze verify``: exit status and the lines about this unit."""
    result = run(tool("systemd-analyze"), "verify", unit)
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in lines if unit.name in line]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd loads the unit with no error or warning."""
    assert INSTALLED_CLI in UNIT
    assert verify(installed_unit(tmp_path)) == (0, [])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("Restart=on-failure", "Restrt=on-failure", "Unknown key"),
        ("ProtectSystem=strict", "ProtectSystem=very", "protect system"),
        ("serve\n", "serve\nExecStart=/nonexistent/marketdata serve\n", "more than one"),
    ],
)
def test_verify_reports_a_broken_unit(tmp_path: Path, old: str, new: str, message: str) -> None:
    """The check can fail: a misspelt key, a bad value, a second ExecStart are reported."""
    assert old in UNIT
    _, lines = verify(installed_unit(tmp_path, UNIT.replace(old, new)))
    assert any(message.lower() in line.lower() for line in lines), lines


def test_verify_fails_when_the_command_is_missing(tmp_path: Path) -> None:
    """Unrewritten, the unit's /opt/marketdata command does not exist here: verify fails."""
    unit = tmp_path / "marketdata.service"
    unit.write_text(UNIT.replace(INSTALLED_CLI, str(tmp_path / "missing" / "marketdata")))
    status, lines = verify(unit)
    assert status != 0
    assert any("is not executable" in line for line in lines), lines


def security(unit: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze security`` of the unit file, failing above exposure 2.0 of 10."""
    analyze = tool("systemd-analyze")
    return run(analyze, "security", "--offline=true", "--threshold=20", "--no-pager", unit)


def test_unit_is_sandboxed(tmp_path: Path) -> None:
    """systemd rates the unit's exposure at 2.0 or lower ("OK")."""
    result = security(installed_unit(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:]


def test_unit_without_sandboxing_fails_the_exposure_check(tmp_path: Path) -> None:
    """The exposure check can fail: the same unit without its sandboxing scores worse."""
    head, _, _ = UNIT.partition("NoNewPrivileges=yes")
    unsandboxed = head + "\n[Install]\nWantedBy=multi-user.target\n"
    assert security(installed_unit(tmp_path, unsandboxed)).returncode != 0


def test_unit_runs_serve_as_a_service_user_after_migrating() -> None:
    """The unit's essentials: who, what, when to restart, where its state and settings are."""
    directives = {
        (key, value)
        for line in UNIT.splitlines()
        if "=" in line and not line.startswith("#")
        for key, value in [line.split("=", 1)]
    }
    assert {
        ("ExecStartPre", f"{INSTALLED_CLI} db upgrade"),
        ("ExecStart", f"{INSTALLED_CLI} serve"),
        ("Restart", "on-failure"),
        ("User", "marketdata"),
        ("StateDirectory", "marketdata"),
        ("EnvironmentFile", "-/etc/marketdata/env"),
        ("Environment", "MARKETDATA_DATA_DIR=/var/lib/marketdata"),
        ("After", "network-online.target postgresql.service"),
        ("Wants", "network-online.target"),
    } <= directives
