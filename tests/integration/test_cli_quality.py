"""``validate``, ``gaps``, ``actions`` and the quality figures of ``status``, on both backends."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from marketdata.errors import NotFound
from marketdata.providers.simulator import MarketSimulator
from tests.integration.test_cli import invoke, run_cli

SIM = MarketSimulator(seed=11)


def bars_file(tmp_path: Path) -> tuple[Path, dt.date]:
    """A CSV of two symbols' raw bars over 2024 with one session of BBB left out."""
    bars = SIM.bars(["AAA", "BBB"], dt.date(2024, 1, 2), dt.date(2024, 12, 31))
    hole = dt.date(2024, 7, 9)
    bars = bars.filter(~((pl.col("symbol") == "BBB") & (pl.col("date") == hole)))
    path = tmp_path / "bars.csv"
    bars.write_csv(path)
    return path, hole


def test_status_shows_validation_rate_gaps_and_flags(database_url: str, tmp_path: Path) -> None:
    """After an import, status --json carries the rate, the gap count and rule counts."""
    path, _ = bars_file(tmp_path)
    assert invoke(database_url, "import", str(path))[0] == 0
    code, out, _ = invoke(database_url, "status", "--json")
    assert code == 0
    rows = {r["symbol"]: r for r in json.loads(out)}
    assert rows["BBB"]["gap_count"] == 1
    assert rows["AAA"]["gap_count"] == 0
    assert (
        rows["AAA"]["validation_rate"] == rows["AAA"]["validated_count"] / rows["AAA"]["bar_count"]
    )
    assert isinstance(rows["AAA"]["rules"], dict)
    code, out, _ = invoke(database_url, "status")
    assert "validation rate" in out
    assert "missing session" in out


def test_validate_and_gaps_commands(database_url: str, tmp_path: Path) -> None:
    """validate re-scores and summarises; gaps lists the missing session as a range."""
    path, hole = bars_file(tmp_path)
    invoke(database_url, "import", str(path))
    code, out, _ = invoke(database_url, "validate", "--json")
    assert code == 0, out
    result = {r["symbol"]: r for r in json.loads(out)}
    assert result["BBB"]["gaps"] == [{"start": str(hole), "end": str(hole), "sessions": 1}]
    assert result["AAA"]["changed"] == 0  # scored on import already
    code, out, _ = invoke(database_url, "validate", "AAA")
    assert code == 0
    assert "Validation" in out
    assert "BBB" not in out
    code, out, _ = invoke(database_url, "gaps", "BBB", "--json")
    assert json.loads(out) == {"BBB": [{"start": str(hole), "end": str(hole), "sessions": 1}]}
    code, out, _ = invoke(database_url, "gaps", "AAA")
    assert "no missing sessions" in out
    with pytest.raises(NotFound, match="no bars stored for NOPE"):
        invoke(database_url, "gaps", "NOPE")


def test_actions_import_explains_a_split_and_lists_it(database_url: str, tmp_path: Path) -> None:
    """A split file explains the raw drop on import of the split; list shows it."""
    raw = pl.DataFrame(
        {
            "symbol": ["GOOGL"] * 30,
            "date": [
                d
                for d in pl.date_range(dt.date(2022, 6, 27), dt.date(2022, 8, 12), eager=True)
                if d.weekday() < 5 and d != dt.date(2022, 7, 4)
            ][:30],
        }
    )
    price = pl.when(pl.col("date") < dt.date(2022, 7, 18)).then(2300.0).otherwise(115.0)
    shares = pl.when(pl.col("date") < dt.date(2022, 7, 18)).then(1e6).otherwise(2e7)
    wiggle = 1 + 0.01 * (pl.int_range(pl.len()) % 5)
    raw = raw.with_columns(
        open=price * wiggle,
        high=price * wiggle * 1.01,
        low=price * wiggle * 0.99,
        close=price * wiggle,
        volume=shares * wiggle,
    )
    bars = tmp_path / "googl.csv"
    raw.write_csv(bars)
    invoke(database_url, "import", str(bars))
    code, out, _ = invoke(database_url, "status", "--json")
    before = json.loads(out)[0]["rules"]
    assert before["price_jump"] == 1  # (the raw volume step also looks anomalous)
    splits = tmp_path / "splits.csv"
    splits.write_text("ticker,execution_date,split_from,split_to\nGOOGL,2022-07-18,1,20\n")
    code, out, _ = invoke(database_url, "actions", "import", str(splits))
    assert code == 0, out
    assert "re-validated: GOOGL" in out
    code, out, _ = invoke(database_url, "status", "--json")
    assert json.loads(out)[0]["rules"] == {"explained_jump": 1}
    code, out, _ = invoke(database_url, "actions", "list", "--json")
    listed = json.loads(out)
    assert listed["splits"][0]["symbol"] == "GOOGL"
    assert listed["dividends"] == []


def test_actions_import_rejects_a_bad_file_clearly(tmp_path: Path) -> None:
    """A file with neither layout, or a bad value, is one clear line and exit 1."""
    bad = tmp_path / "odd.csv"
    bad.write_text("a,b\n1,2\n")
    result = run_cli(
        "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "actions", "import", str(bad)
    )
    assert result.returncode == 1
    assert "expected split columns" in result.stderr
    worse = tmp_path / "neg.csv"
    worse.write_text("symbol,execution_date,split_from,split_to\nX,2024-01-02,0,2\n")
    result = run_cli(
        "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "actions", "import", str(worse)
    )
    assert result.returncode == 1
    assert "must be positive" in result.stderr
    assert "Traceback" not in result.stderr


def test_actions_fetch_from_the_simulator(database_url: str, tmp_path: Path) -> None:
    """``actions fetch --provider synthetic`` stores the simulator's actions for stored symbols."""
    path, _ = bars_file(tmp_path)
    invoke(database_url, "import", str(path))
    code, out, _ = invoke(database_url, "actions", "fetch", "--provider", "synthetic")
    assert code == 0, out
    assert "dividends:" in out
