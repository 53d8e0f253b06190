"""Where the deployment files are, and running the tools that check them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import IN_CI

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
UNIT = (DEPLOY / "marketdata.service").read_text()
COMPOSE = (DEPLOY / "docker-compose.yml").read_text()
ENV_EXAMPLE = (DEPLOY / ".env.example").read_text()
ALERTS = (DEPLOY / "alerts.yml").read_text()
INSTALLED_CLI = "/opt/marketdata/.venv/bin/marketdata"
OUR_PREFIXES = ("MARKETDATA_", "POLYGON_", "MASSIVE_")


def tool(name: str) -> str:
    """The path of ``name`` (this virtualenv first, then PATH); missing fails under CI=true."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    path = shutil.which(name, path=search)
    if path is None:
        reason = f"{name} is not installed (./scripts/test installs it)"
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)  # only outside CI (see above)
    return path


def run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``command``, capturing its output."""
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
