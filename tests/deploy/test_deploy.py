"""The settings the deployment files name are settings marketdata has: they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from marketdata.settings import Settings
from tests.deploy.files import (
    assignments,
    env_file_names,
    settings_variables,
    stages,
    unknown_variables,
)
from tests.deploy.tools import (
    COMPOSE,
    DOCKERFILE,
    ENV_EXAMPLE,
    OUR_PREFIXES,
    UNIT,
)


def test_env_example_names_only_real_settings() -> None:
    """Every variable in .env.example is a marketdata setting (or the database password)."""
    names = env_file_names(ENV_EXAMPLE)
    assert {"POLYGON_API_KEY", "MARKETDATA_API_KEYS", "POSTGRES_PASSWORD"} <= set(names)
    assert unknown_variables(names) == []


def test_deployment_files_set_only_real_settings() -> None:
    """The marketdata variables (MARKETDATA_*, POLYGON_*) that the Dockerfile's ENV, the
    compose environment and the unit's Environment= lines set are all settings."""
    names = [n for stage in stages(DOCKERFILE) for n in stage.env()]
    names += re.findall(r"^\s+([A-Z][A-Z0-9_]*):", COMPOSE, flags=re.MULTILINE)
    for line in UNIT.splitlines():
        if line.startswith("Environment="):
            names += assignments(line.removeprefix("Environment="))
    assert "MARKETDATA_DATA_DIR" in names
    ours = [n for n in names if n.startswith(OUR_PREFIXES)]
    assert "MARKETDATA_DATABASE_URL" in ours
    assert unknown_variables(ours) == []


def test_unknown_variables_are_reported() -> None:
    """The name check can fail: a misspelt setting is reported, real ones are not."""
    assert "MARKETDATA_DATABASE_URL" in settings_variables()
    assert "POLYGON_API_KEY" in settings_variables()
    assert unknown_variables(["MARKETDATA_DATABSE_URL", "MARKETDATA_PORT"]) == [
        "MARKETDATA_DATABSE_URL"
    ]


def test_env_example_values_load_into_settings(tmp_path: Path) -> None:
    """.env.example as written parses: quoted crontabs, the watchlist, and no secret set."""
    env = tmp_path / ".env"
    env.write_text(ENV_EXAMPLE)
    settings = Settings(_env_file=env)
    assert settings.backfill_cron == "0 2 * * *"
    assert len(settings.symbols) > 1
    assert settings.polygon_api_key is None
    assert settings.api_keys == ()
    assert re.search(r"^POSTGRES_PASSWORD=$", ENV_EXAMPLE, flags=re.MULTILINE)
