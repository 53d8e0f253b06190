"""Parquet datasets: exported by symbol, read by other engines, imported to move backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from marketdata.bars import BAR_SCHEMA, DIVIDEND_SCHEMA, SPLIT_SCHEMA
from marketdata.cli.main import app
from marketdata.cli.transfer import MAX_FILE_BARS
from marketdata.providers.files import partition_symbol
from marketdata.service.export import MANIFEST, partition_name
from marketdata.service.quality import write_bars
from marketdata.service.simulated import seed_if_empty
from marketdata.storage import open_store
from tests.integration.test_cli import invoke
from tests.support.databases import truncate_all
from tests.support.factories import AT, AWKWARD_FLOATS, make_bars
from tests.support.logs import loggers_restored

SIMULATED = ["AAPL", "BRK.B", "MSFT"]
#: A stored symbol whose name is unsafe in a path: it must come back unchanged.
ODD = "AB/C%D"
TODAY = dt.date(2026, 11, 20)
FLOATS = ["open", "high", "low", "close", "volume", "vwap"]


async def seed(url: str) -> None:
    """A year of simulated bars (with splits, dividends and faults) plus awkward floats."""
    store = await open_store(url)
    try:
        await seed_if_empty(store, symbols=SIMULATED, years=1, today=TODAY, at=AT)
        awkward = make_bars(ODD, days=len(AWKWARD_FLOATS), close=AWKWARD_FLOATS)
        await write_bars(store, awkward, source="test", at=AT)
    finally:
        await store.aclose()


async def snapshot(url: str) -> dict[str, Any]:
    """Everything a move must keep: bars (values as bits, scores), summaries and actions."""
    store = await open_store(url)
    try:
        statuses = await store.symbol_statuses()
        bars = {
            s.symbol: as_bits((await store.read_bars(s.symbol)).drop("ingested_at"))
            for s in statuses
        }
        return {
            "bars": {symbol: frame.rows() for symbol, frame in bars.items()},
            "statuses": [
                (s.symbol, s.first_date, s.last_date, s.bar_count, s.validated_count, s.gap_count)
                for s in statuses
            ],
            "splits": (await store.read_splits()).select(list(SPLIT_SCHEMA)).rows(),
            "dividends": (await store.read_dividends()).select(list(DIVIDEND_SCHEMA)).rows(),
        }
    finally:
        await store.aclose()


def as_bits(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with each float column replaced by its IEEE-754 bit patterns."""
    return frame.with_columns(
        pl.Series(c, frame[c].to_numpy().view(np.int64)) for c in FLOATS if c in frame.columns
    )


async def stored_bars(url: str) -> pl.DataFrame:
    """Every stored bar in the import layout, sorted by symbol and date."""
    store = await open_store(url)
    try:
        frames = [
            (await store.read_bars(s.symbol)).select(
                pl.lit(s.symbol).alias("symbol"), *(c for c in BAR_SCHEMA if c != "symbol")
            )
            for s in await store.symbol_statuses()
        ]
    finally:
        await store.aclose()
    return pl.concat(frames).sort("symbol", "date")


def normalized(frame: pl.DataFrame) -> pl.DataFrame:
    """A reader's answer in the import layout's column order and types, sorted."""
    return (
        frame.with_columns(pl.col("symbol").cast(pl.String))
        .select(list(BAR_SCHEMA))
        .cast(BAR_SCHEMA)  # type: ignore[arg-type]  # a dict of dtypes is what cast takes
        .sort("symbol", "date")
    )


@pytest.fixture
def urls(sqlite_template: Path, postgres_session_url: str, tmp_path: Path) -> dict[str, str]:
    """One empty database on each backend, at the same time."""
    path = tmp_path / "marketdata.db"
    shutil.copyfile(sqlite_template, path)
    truncate_all(postgres_session_url)
    return {"sqlite": f"sqlite:///{path}", "postgresql": postgres_session_url}


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    """The CLI configures logging; put it back after each test."""
    with loggers_restored():
        yield


def cli(url: str, *args: str) -> tuple[int, str]:
    """Run a command in-process: (exit code, its error message or standard error)."""
    result = CliRunner().invoke(app, ["--database-url", url, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        return 1, str(result.exception)
    return result.exit_code, result.stderr


def export_dataset(url: str, out: Path, *options: str) -> tuple[int, str]:
    """``export --all --format parquet --out out``: (exit code, message)."""
    return cli(url, "export", "--all", "--format", "parquet", "--out", str(out), *options)


@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_a_dataset_moves_a_database_between_backends(
    urls: dict[str, str], tmp_path: Path, source: str, target: str
) -> None:
    """Export from one backend, import into the other: bars identical bit for bit, with the
    same scores, summaries, splits and dividends."""
    asyncio.run(seed(urls[source]))
    dataset = tmp_path / "dataset"
    code, err = export_dataset(urls[source], dataset)
    assert code == 0, err
    code, out, err = invoke(urls[target], "import", str(dataset))
    assert code == 0, err
    assert "corporate actions of" in out
    before = asyncio.run(snapshot(urls[source]))
    after = asyncio.run(snapshot(urls[target]))
    assert sorted(after["bars"]) == sorted([*SIMULATED, ODD])
    assert after == before
    assert after["splits"]  # the simulator's history has some: they were really moved
    assert after["dividends"]


def test_the_layout_is_hive_partitioned_by_symbol(database_url: str, tmp_path: Path) -> None:
    """One directory per symbol (names encoded where a path needs it), one part file each
    without a symbol column, metadata files starting with '_', and a complete manifest."""
    asyncio.run(seed(database_url))
    dataset = tmp_path / "dataset"
    assert export_dataset(database_url, dataset)[0] == 0
    parts = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("part-*.parquet"))
    assert parts == [
        "symbol=AAPL/part-0.parquet",
        "symbol=AB%2FC%25D/part-0.parquet",
        "symbol=BRK.B/part-0.parquet",
        "symbol=MSFT/part-0.parquet",
    ]
    assert pq.read_schema(dataset / parts[0]).names == [c for c in BAR_SCHEMA if c != "symbol"]
    assert sorted(p.name for p in dataset.iterdir() if p.is_file()) == [
        "_dividends.parquet",
        "_marketdata.json",
        "_splits.parquet",
    ]
    manifest = json.loads((dataset / MANIFEST).read_text())
    assert (manifest["format"], manifest["version"], manifest["complete"]) == (
        "marketdata-dataset",
        1,
        True,
    )
    expected = asyncio.run(stored_bars(database_url))
    assert manifest["rows"] == expected.height
    assert {s: e["rows"] for s, e in manifest["symbols"].items()} == dict(
        expected.group_by("symbol").len().iter_rows()
    )


def test_other_engines_read_the_dataset_as_one_table(database_url: str, tmp_path: Path) -> None:
    """polars, pyarrow.dataset, pandas and DuckDB read the same bars, symbols decoded."""
    duckdb = pytest.importorskip("duckdb")
    pandas = pytest.importorskip("pandas")
    asyncio.run(seed(database_url))
    dataset = tmp_path / "dataset"
    assert export_dataset(database_url, dataset)[0] == 0
    expected = asyncio.run(stored_bars(database_url))
    parts = str(dataset / "symbol=*" / "*.parquet")
    answers = {
        "polars glob": pl.scan_parquet(parts, hive_partitioning=True).collect(),
        "polars directory": pl.scan_parquet(
            dataset, hive_partitioning=True, hidden_file_prefix="_"
        ).collect(),
        "pyarrow.dataset": pl.from_arrow(
            pads.dataset(dataset, format="parquet", partitioning="hive").to_table()
        ),
        "pyarrow.parquet": pl.from_arrow(pq.read_table(dataset)),
        "duckdb": duckdb.sql(
            f"SELECT * FROM read_parquet('{parts}', hive_partitioning = true)"
        ).pl(),
    }
    for engine, answer in answers.items():
        assert isinstance(answer, pl.DataFrame), engine
        assert normalized(answer).equals(expected), engine
    frame = pandas.read_parquet(dataset)
    assert len(frame) == expected.height
    assert sorted(frame["symbol"].astype(str).unique()) == sorted([*SIMULATED, ODD])


def test_a_directory_is_only_replaced_when_it_holds_an_earlier_export(
    database_url: str, tmp_path: Path
) -> None:
    """Non-empty directories are refused; an earlier export needs --overwrite; files that are
    not part of an export are never deleted. Each refusal says what to do."""
    asyncio.run(seed(database_url))
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    code, message = export_dataset(database_url, foreign)
    assert code == 1
    assert "is not empty and is not an earlier marketdata export (it holds todo.txt)" in message
    assert (foreign / "todo.txt").read_text() == "keep me"

    dataset = tmp_path / "dataset"
    assert export_dataset(database_url, dataset)[0] == 0
    first = json.loads((dataset / MANIFEST).read_text())
    code, message = export_dataset(database_url, dataset)
    assert code == 1
    assert "holds an earlier export: pass --overwrite to replace it" in message
    assert json.loads((dataset / MANIFEST).read_text()) == first
    code, message = export_dataset(database_url, dataset, "--overwrite")
    assert code == 0, message
    assert json.loads((dataset / MANIFEST).read_text())["exported_at"] != first["exported_at"]

    (dataset / "mine.csv").write_text("symbol,date\n")
    code, message = export_dataset(database_url, dataset, "--overwrite")
    assert code == 1
    assert "(it holds mine.csv)" in message
    assert (dataset / "mine.csv").exists()
    assert (dataset / "symbol=AAPL" / "part-0.parquet").exists()


def test_a_parquet_file_name_still_gets_one_file(database_url: str, tmp_path: Path) -> None:
    """--out NAME.parquet writes one file with the symbol column; a suffix-less path a dataset."""
    asyncio.run(seed(database_url))
    single = tmp_path / "all.parquet"
    assert export_dataset(database_url, single)[0] == 0
    assert single.is_file()
    assert normalized(pl.read_parquet(single)).equals(asyncio.run(stored_bars(database_url)))
    assert export_dataset(database_url, tmp_path / "new" / "dataset")[0] == 0
    assert (tmp_path / "new" / "dataset" / MANIFEST).is_file()


def test_an_unfinished_or_damaged_export_is_not_imported(database_url: str, tmp_path: Path) -> None:
    """A manifest not marked complete, or a part file gone, stops the import before writing."""
    asyncio.run(seed(database_url))
    dataset = tmp_path / "dataset"
    assert export_dataset(database_url, dataset)[0] == 0
    manifest = json.loads((dataset / MANIFEST).read_text())
    unfinished = tmp_path / "unfinished"
    shutil.copytree(dataset, unfinished)
    (unfinished / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
    damaged = tmp_path / "damaged"
    shutil.copytree(dataset, damaged)
    shutil.rmtree(damaged / "symbol=MSFT")
    asyncio.run(purge(database_url))
    for directory, expected in [
        (unfinished, "is an unfinished export (was it interrupted?): export it again"),
        (damaged, "the export lists files that are gone: symbol=MSFT"),
    ]:
        code, message = cli(database_url, "import", str(directory))
        assert code == 1
        assert expected in message
    assert json.loads(invoke(database_url, "status", "--json")[1]) == []


async def purge(url: str) -> None:
    """Remove every stored symbol's bars."""
    store = await open_store(url)
    try:
        for status in await store.symbol_statuses():
            await store.purge_symbol(status.symbol)
    finally:
        await store.aclose()


def test_a_directory_of_files_imports_recursively(database_url: str, tmp_path: Path) -> None:
    """Every CSV, CSV.gz and Parquet file below a directory is read, in name order; other
    files and names starting with '_' or '.' are skipped; Hive directories give the symbol."""
    root = tmp_path / "drop"
    (root / "2024" / "q1").mkdir(parents=True)
    make_bars("AAPL", days=3).write_csv(root / "2024" / "q1" / "aapl.csv")
    make_bars("MSFT", days=4).write_parquet(root / "2024" / "msft.parquet")
    (root / "README.txt").write_text("not data")
    (root / "_meta.csv").write_text("garbage\n")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.csv").write_text("garbage\n")
    table = make_bars("NVDA", days=5).to_arrow()
    pads.write_dataset(
        table,
        root / "spark",
        format="parquet",
        partitioning=pads.partitioning(pa.schema([("symbol", pa.string())]), flavor="hive"),
    )
    code, out, err = invoke(database_url, "import", str(root))
    assert code == 0, err
    status = json.loads(invoke(database_url, "status", "--json")[1])
    assert [(s["symbol"], s["bar_count"]) for s in status] == [
        ("AAPL", 3),
        ("MSFT", 4),
        ("NVDA", 5),
    ]
    assert re.search(r"files\s*│\s*3\s*│", out)  # aapl.csv, msft.parquet, the NVDA part


def test_many_files_import_under_one_progress_bar(database_url: str, tmp_path: Path) -> None:
    """A directory of more files than get a bar each still loads every one of them."""
    for index in range(MAX_FILE_BARS + 2):
        make_bars(f"S{index:02d}", days=2).write_csv(tmp_path / f"s{index:02d}.csv")
    code, _, err = invoke(database_url, "import", str(tmp_path))
    assert code == 0, err
    assert f"{MAX_FILE_BARS + 2} files" in err
    status = json.loads(invoke(database_url, "status", "--json")[1])
    assert len(status) == MAX_FILE_BARS + 2
    assert {s["bar_count"] for s in status} == {2}


@pytest.mark.parametrize("symbol", ["AAPL", "BRK.B", "BF-B", "A/B", "100%", "x=y", "..", "ÄÖ"])
def test_partition_names_round_trip(symbol: str) -> None:
    """Every symbol becomes one safe path segment that Hive decoding turns back into it."""
    name = partition_name(symbol)
    assert "/" not in name
    assert name.startswith("symbol=")
    assert partition_symbol(Path("out") / name / "part-0.parquet") == symbol
