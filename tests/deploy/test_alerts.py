"""deploy/alerts.yml checked by promtool (`check rules`, and `test rules` on
deploy/alerts.test.yml); each alerted gauge exists in marketdata's /metrics."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.deploy.tools import (
    ALERTS,
    DEPLOY,
    ROOT,
    run,
    tool,
)


def test_alert_rules_pass_promtool_check() -> None:
    """promtool accepts deploy/alerts.yml."""
    result = run(tool("promtool"), "check", "rules", "deploy/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_as_their_unit_tests_expect() -> None:
    """deploy/alerts.test.yml: every alert fires past its threshold and stays silent inside."""
    result = run(tool("promtool"), "test", "rules", "alerts.test.yml", cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("> 36 * 3600", "> 48 * 3600"),  # backfill alert too late
        ("(marketdata_stale_symbols) > 0\n        for: 1h", "(marketdata_stale_symbols) > 0"),
        ("marketdata_backup_last_ok) == 0", "marketdata_backup_last_ok) == 2"),
    ],
)
def test_alert_unit_tests_catch_a_wrong_rule(tmp_path: Path, old: str, new: str) -> None:
    """The unit tests can fail: a wrong threshold or a dropped `for` is caught."""
    assert old in ALERTS
    (tmp_path / "alerts.yml").write_text(ALERTS.replace(old, new))
    shutil.copy(DEPLOY / "alerts.test.yml", tmp_path)
    result = run(tool("promtool"), "test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize(
    "metric",
    [
        "up",
        "marketdata_database_up",
        "marketdata_backfill_last_success_age_seconds",
        "marketdata_stale_symbols",
        "marketdata_validation_rate",
        "marketdata_backup_last_success_age_seconds",
        "marketdata_backup_last_ok",
    ],
)
def test_alerts_watch_each_gauge_that_marketdata_exports(metric: str) -> None:
    """Each alerted gauge is in an alert expression and (but `up`) exported by /metrics."""
    expressions = re.findall(r"^\s+expr: (.*)$", ALERTS, flags=re.MULTILINE)
    assert any(re.search(rf"\b{metric}\b", e) for e in expressions)
    if metric != "up":
        sources = (ROOT / "src" / "marketdata").rglob("*.py")
        assert any(f'"{metric}"' in p.read_text() for p in sources), f"{metric} is not exported"
