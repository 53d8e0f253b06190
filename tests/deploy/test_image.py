"""deploy/Dockerfile and .dockerignore: hadolint, our image rules, and the image's install and
start-up steps replayed without a Docker engine (none is needed, or available, here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.files import (
    dockerfile_problems,
    excluded,
    ignore_rules,
    may_include_below,
    stages,
)
from tests.deploy.tools import (
    DOCKERFILE,
    ROOT,
    run,
    tool,
)
from tests.support.processes import free_port, running


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing in deploy/Dockerfile, not even at the info level."""
    result = run(tool("hadolint"), "--no-color", "--failure-threshold", "info", "deploy/Dockerfile")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_rejects_a_root_image(tmp_path: Path) -> None:
    """The lint can fail: a last USER of root and an unpinned pip install are reported."""
    broken = re.sub(r"uv==[\w.]+", "uv", DOCKERFILE.replace("USER 10001:10001", "USER root"))
    assert broken.count("USER root") == 1
    (tmp_path / "Dockerfile").write_text(broken)
    result = run(tool("hadolint"), "--no-color", tmp_path / "Dockerfile")
    assert result.returncode != 0
    assert "DL3002" in result.stdout
    assert "DL3013" in result.stdout


def test_dockerfile_keeps_the_image_rules() -> None:
    """Multi-stage from uv.lock, non-root, health-checked, /data volume, serve, no secrets."""
    assert dockerfile_problems(DOCKERFILE) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("FROM ${PYTHON_IMAGE} AS runtime", "", "not multi-stage"),
        ("USER 10001:10001", "USER 0", "runs as root"),
        ("uv sync --locked --no-dev --no-editable", "uv sync --no-dev --no-editable", "--locked"),
        ("--no-dev --no-editable", "--no-dev", "--no-editable"),
        ("/health', timeout", "/', timeout", "HEALTHCHECK"),
        ("MARKETDATA_HOST=0.0.0.0", "MARKETDATA_HOST=127.0.0.1", "MARKETDATA_HOST"),
        ("exec marketdata serve", "exec marketdata worker", "marketdata serve"),
        ("PYTHONUNBUFFERED=1", "POLYGON_API_KEY=abc PYTHONUNBUFFERED=1", "bakes a secret"),
        ("COPY pyproject.toml uv.lock ./", "COPY pyproject.toml ./", "uv.lock"),
    ],
)
def test_dockerfile_rules_catch_mistakes(old: str, new: str, problem: str) -> None:
    """Each image rule reports a Dockerfile that breaks it."""
    assert old in DOCKERFILE
    problems = dockerfile_problems(DOCKERFILE.replace(old, new))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("path", "out"),
    [
        ("pyproject.toml", False),
        ("uv.lock", False),
        ("README.md", False),
        ("src/marketdata/storage/migrations/env.py", False),
        ("src/marketdata/xnys_schedule.npz", False),
        (".env", True),
        ("deploy/.env", True),
        ("src/.env.local", True),
        (".venv/bin/python", True),
        (".cache/uv/bin/uv", True),
        ("data/marketdata.db", True),
        (".git/config", True),
        ("tests/conftest.py", True),
        (".pytest_cache/v/cache/nodeids", True),
        ("src/marketdata/__pycache__/settings.cpython-311.pyc", True),
    ],
)
def test_dockerignore_keeps_secrets_and_caches_out(path: str, out: bool) -> None:
    """The build context holds the lock, the metadata and src/; no .env, venv, cache or data."""
    rules = ignore_rules((ROOT / ".dockerignore").read_text())
    assert excluded(rules, path) is out


def test_dockerfile_copies_only_what_the_context_holds() -> None:
    """Every COPY source of the build stage is in the build context."""
    rules = ignore_rules((ROOT / ".dockerignore").read_text())
    build = stages(DOCKERFILE)[0]
    sources = [s for i in build.all("COPY") for s in i.args.split()[:-1] if not s.startswith("-")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not excluded(rules, source), source


def build_context(tmp_path: Path) -> Path:
    """A copy of what `docker build` would send: the repository less .dockerignore."""
    rules = ignore_rules((ROOT / ".dockerignore").read_text())
    context = tmp_path / "context"
    for folder, dirs, files in os.walk(ROOT):
        relative = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        dirs[:] = [
            d
            for d in dirs
            if not excluded(rules, prefix + d) or may_include_below(rules, prefix + d)
        ]
        for name in files:
            if not excluded(rules, prefix + name):
                target = context / prefix / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder) / name, target)
    return context


def test_image_steps_install_from_the_lock_and_pass_the_healthcheck(tmp_path: Path) -> None:
    """The Dockerfile's steps without Docker: install the context from uv.lock (no dev
    dependencies, not editable), run its CMD, and its HEALTHCHECK passes, then fails once
    the server is gone."""
    uv = os.environ.get("UV") or tool("uv")
    context = build_context(tmp_path)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    env |= {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    install = subprocess.run(
        [uv, "sync", "--locked", "--no-dev", "--no-editable", "--python", sys.executable],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    assert not (venv / "bin" / "pytest").exists()  # no dev dependencies
    assert not list(venv.glob("lib/python*/site-packages/*marketdata*.pth"))  # not editable

    runtime = stages(DOCKERFILE)[-1]
    port = free_port()
    image_env = {k: v.replace("$PATH", "/usr/bin:/bin") for k, v in runtime.env().items()}
    image_env = {
        **image_env,
        "PATH": image_env["PATH"].replace("/opt/marketdata/.venv", str(venv)),
        "HOME": str(tmp_path),
        "MARKETDATA_HOST": "127.0.0.1",  # the image's 0.0.0.0, kept to loopback here
        "MARKETDATA_PORT": str(port),
        "MARKETDATA_DATA_DIR": str(tmp_path / "data"),
        "MARKETDATA_BACKUP_DIR": str(tmp_path / "backups"),
        "MARKETDATA_SIMULATE": "false",
    }
    cmd = runtime.all("CMD")[-1].exec_form()
    healthcheck = runtime.all("HEALTHCHECK")[-1].exec_form()
    workdir = tmp_path / "workdir"
    workdir.mkdir()

    def probe() -> int:
        done = subprocess.run(healthcheck, env=image_env, capture_output=True, timeout=30)
        return done.returncode

    with running(cmd, ready=["Application startup complete"], cwd=workdir, env=image_env):
        assert (tmp_path / "data" / "marketdata.db").is_file()
        assert probe() == 0
    assert probe() != 0
