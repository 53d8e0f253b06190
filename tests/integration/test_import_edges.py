"""Edges of import and export through the real CLI, on both backends: symbol case and length,
the format an output name implies, header-only files, --strict over several files, progress
positions, Ctrl-C, and simulated histories replaced by real rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from marketdata.cli.render_transfer import import_dict
from marketdata.errors import DataRejected
from marketdata.providers.files import open_bar_file
from marketdata.service.export import dataset_state
from marketdata.service.ingest import check_files, import_files
from marketdata.service.simulated import seed_if_empty
from marketdata.storage import Store, open_store
from tests.integration.test_cli import CANONICAL, invoke, run_cli, runner
from tests.integration.test_files import HEADER, rows
from tests.support.databases import truncate_all
from tests.support.factories import AT, make_bars

from marketdata.cli.main import app  # isort: skip

SHORT_HEADER = "symbol,date,open,high,low,close,volume"
TODAY = dt.date(2026, 11, 20)


def stored(url: str) -> dict[str, int]:
    """Stored symbols and their bar counts, as `status --json` reports them."""
    code, out, err = invoke(url, "status", "--json")
    assert code == 0, err
    return {s["symbol"]: s["bar_count"] for s in json.loads(out)}


def summary(out: str) -> dict[str, str]:
    """The import summary table's rows: what → count."""
    return {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.splitlines()
        if line.count("│") == 3
    }


# -- symbols ----------------------------------------------------------------------------------


def test_import_upper_cases_symbols_and_rejects_invalid_ones(
    database_url: str, tmp_path: Path
) -> None:
    """`aapl` is stored as AAPL beside AAPL; an over-long or malformed symbol is a rejected row."""
    source = tmp_path / "mixed.csv"
    source.write_text(
        f"{SHORT_HEADER}\n"
        "AAPL,2024-01-02,1,2,0.5,1.5,100\n"
        "aapl,2024-01-03,1,2,0.5,1.5,100\n"
        " msft ,2024-01-02,1,2,0.5,1.5,100\n"
        "TOOLONGSYMBOLNAME,2024-01-02,1,2,0.5,1.5,100\n"
        "-X,2024-01-02,1,2,0.5,1.5,100\n"
    )
    code, out, err = invoke(database_url, "import", str(source))
    assert code == 3, err
    assert summary(out)["inserted"] == "3"
    assert f"{source}:5: invalid symbol 'TOOLONGSYMBOLNAME': a symbol has 1 to 12 characters" in err
    assert f"{source}:6: invalid symbol '-X'" in err
    assert stored(database_url) == {"AAPL": 2, "MSFT": 1}


def test_polygon_preferred_shares_stay_apart_from_their_upper_case_twins(
    database_url: str, tmp_path: Path
) -> None:
    """A Polygon flat file's AMpB (AM preferred B) and AMPB are two stocks: both stored, on
    the same day, under their own names, and the API serves each its own bars."""
    source = tmp_path / "flat.csv"
    day = int(dt.datetime(2024, 1, 2, 5, tzinfo=dt.UTC).timestamp() * 1e9)
    source.write_text(
        "ticker,volume,open,close,high,low,window_start,transactions\n"
        f"AMpB,100,25.1,25.2,25.3,25.0,{day},10\n"
        f"AMPB,900,7.1,7.2,7.3,7.0,{day},90\n"
    )
    code, out, err = invoke(database_url, "import", str(source))
    assert code == 0, err
    assert summary(out)["inserted"] == "2"
    assert stored(database_url) == {"AMPB": 1, "AMpB": 1}
    for symbol, close in (("AMpB", "25.2"), ("AMPB", "7.2")):
        code, out, err = invoke(database_url, "export", symbol)
        assert code == 0, err
        lines = out.strip().splitlines()
        assert len(lines) == 2, out  # the header and its one bar
        assert lines[1].startswith(f"{symbol},2024-01-02,")
        assert f",{close}," in lines[1]


def test_hive_directory_symbol_is_normalized(database_url: str, tmp_path: Path) -> None:
    """A part file under `symbol=brk.b/` is BRK.B, like a symbol column would be."""
    part = tmp_path / "ds" / "symbol=brk.b" / "part-0.csv"
    part.parent.mkdir(parents=True)
    part.write_text("date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,100\n")
    code, _, err = invoke(database_url, "import", str(tmp_path / "ds"))
    assert code == 0, err
    assert stored(database_url) == {"BRK.B": 1}


def test_actions_import_upper_cases_symbols_and_refuses_invalid_ones(
    database_url: str, tmp_path: Path
) -> None:
    """Splits for `xyz` are XYZ's; a file with an invalid symbol is refused whole."""
    good = tmp_path / "splits.csv"
    good.write_text("symbol,execution_date,split_from,split_to\nxyz,2024-06-10,1,4\n")
    code, _, err = invoke(database_url, "actions", "import", str(good))
    assert code == 0, err
    code, out, _ = invoke(database_url, "actions", "list", "xyz", "--json")
    assert code == 0
    assert [s["symbol"] for s in json.loads(out)["splits"]] == ["XYZ"]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "symbol,execution_date,split_from,split_to\n"
        "ABC,2024-06-10,1,2\nTOOLONGSYMBOLNAME,2024-06-10,1,4\n"
    )
    result = runner.invoke(app, ["--database-url", database_url, "actions", "import", str(bad)])
    assert result.exit_code != 0
    assert "1 row(s) with an invalid symbol (first: data row 2, 'TOOLONGSYMBOLNAME')" in str(
        result.exception
    )
    code, out, _ = invoke(database_url, "actions", "list", "--json")
    assert [s["symbol"] for s in json.loads(out)["splits"]] == ["XYZ"]


# -- export formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "magic"),
    [
        ("out.csv", b"symbol,"),
        ("out.csv.gz", b"\x1f\x8b"),
        ("out.gz", b"\x1f\x8b"),
        ("out.parquet", b"PAR1"),
        ("out.pq", b"PAR1"),
        ("out", b"symbol,"),
    ],
)
def test_export_name_decides_the_format_and_imports_back(
    database_url: str, tmp_path: Path, name: str, magic: bytes
) -> None:
    """Without --format the suffix decides (gzip too), and every export imports back unchanged."""
    source = tmp_path / "bars.csv"
    source.write_text(CANONICAL)
    assert invoke(database_url, "import", str(source))[0] == 0
    target = tmp_path / name
    code, _, err = invoke(database_url, "export", "aapl", "BRK.B", "-o", str(target))
    assert code == 0, err
    assert target.read_bytes().startswith(magic)
    if magic == b"\x1f\x8b":
        assert gzip.decompress(target.read_bytes()).decode() == CANONICAL
    code, out, err = invoke(database_url, "import", str(target))
    assert code == 0, err
    assert (summary(out)["inserted"], summary(out)["unchanged"]) == ("0", "6")


def test_export_format_that_agrees_with_the_name_is_used(database_url: str, tmp_path: Path) -> None:
    """--format csv with .csv.gz writes gzip; --format parquet with .pq writes Parquet."""
    source = tmp_path / "bars.csv"
    source.write_text(CANONICAL)
    invoke(database_url, "import", str(source))
    packed, parquet = tmp_path / "a.csv.gz", tmp_path / "a.pq"
    assert invoke(database_url, "export", "AAPL", "-f", "csv", "-o", str(packed))[0] == 0
    assert invoke(database_url, "export", "AAPL", "-f", "parquet", "-o", str(parquet))[0] == 0
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert parquet.read_bytes()[:4] == b"PAR1"


@pytest.mark.parametrize(
    ("options", "name", "message"),
    [
        (["-f", "parquet"], "a.csv", "--format parquet contradicts --out a.csv (a CSV name)"),
        (["--format", "csv"], "a.parquet", "--format csv contradicts --out a.parquet"),
        ([], "a.parquet.gz", "Parquet is not gzip-compressed"),
    ],
)
def test_export_format_contradicting_the_name_is_one_line(
    tmp_path: Path, options: list[str], name: str, message: str
) -> None:
    """A --format the file name contradicts: one error line, exit 1, no file written."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    proc = run_cli("--database-url", url, "export", "AAPL", *options, "-o", str(tmp_path / name))
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stderr.splitlines() if "error:" in ln or "Traceback" in ln]
    assert line.startswith("error: ")
    assert message in line
    assert not (tmp_path / name).exists()


# -- header-only files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["h.csv", "h.csv.gz"])
def test_lone_header_without_line_end_is_no_rows_not_a_traceback(tmp_path: Path, name: str) -> None:
    """`printf 'symbol,…,volume' > h.csv; marketdata import h.csv`: a one-line error."""
    path = tmp_path / name
    data = SHORT_HEADER.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    proc = run_cli("--database-url", f"sqlite:///{tmp_path / 'm.db'}", "import", str(path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"error: {path}: no rows (a header only)" in proc.stderr


def test_lone_header_reads_as_no_rows(tmp_path: Path) -> None:
    """The file layer reads a header without a line end like one with it: valid, no bars."""
    for name, text in (("a.csv", SHORT_HEADER), ("b.csv", SHORT_HEADER + "\r\n\r\n")):
        path = tmp_path / name
        path.write_text(text)
        bar_file = open_bar_file(path)
        assert not bar_file.has_rows
        chunks = list(bar_file.chunks(1000))
        assert [(c.bars.height, c.rejected.height, c.position) for c in chunks] == [
            (0, 0, bar_file.size)
        ]


def test_header_only_file_among_others_is_noted(database_url: str, tmp_path: Path) -> None:
    """One header-only file does not stop the others: it is listed as having no rows."""
    good, empty = tmp_path / "good.csv", tmp_path / "h.csv"
    good.write_text(CANONICAL)
    empty.write_text(SHORT_HEADER)
    code, out, err = invoke(database_url, "import", str(good), str(empty))
    assert code == 0, err
    assert re.search(r"h\.csv .*no rows", out)
    assert f"note: {empty}: no rows" in err
    assert sum(stored(database_url).values()) == 6


def test_verify_against_lone_header_has_no_traceback(tmp_path: Path) -> None:
    """`verify --against h.csv` on a lone header says there is nothing to compare."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    source, header = tmp_path / "bars.csv", tmp_path / "h.csv"
    source.write_text(CANONICAL)
    header.write_text(SHORT_HEADER)
    assert run_cli("--database-url", url, "import", str(source)).returncode == 0
    proc = run_cli("--database-url", url, "verify", "AAPL", "--against", str(header))
    assert "Traceback" not in proc.stderr
    assert "h.csv has no bars for AAPL" in proc.stdout + proc.stderr


# -- --strict over several files --------------------------------------------------------------


def test_strict_rejects_the_bad_file_and_imports_the_others(
    database_url: str, tmp_path: Path
) -> None:
    """--strict a_good bad zz_good: both good files written, bad one wholly rejected, exit 1."""
    files = {
        "a_good.csv": f"{SHORT_HEADER}\nAAA,2024-01-02,1,2,0.5,1.5,100\n",
        "bad.csv": f"{SHORT_HEADER}\nBBB,2024-01-02,1,2,0.5,1.5,100\nBBB,2024-02-30,1,2,1,1,1\n",
        "zz_good.csv": f"{SHORT_HEADER}\nZZZ,2024-01-02,1,2,0.5,1.5,100\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = ["--database-url", database_url, "import", "--strict"]
    result = runner.invoke(app, [*args, *(str(tmp_path / n) for n in files)])
    assert isinstance(result.exception, DataRejected)
    message = str(result.exception)
    assert f"{tmp_path / 'bad.csv'}: 1 bad row(s), nothing written from it" in message
    assert f"(first: {tmp_path / 'bad.csv'}:3: unparsable date '2024-02-30'" in message
    assert "2 other file(s) imported" in message
    table = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "written" in table["a_good.csv"]
    assert "written" in table["zz_good.csv"]
    assert "rejected (--strict)" in table["bad.csv"]
    assert stored(database_url) == {"AAA": 1, "ZZZ": 1}


async def test_strict_counts_every_bad_row_but_keeps_a_bounded_few(
    store: Store, tmp_path: Path
) -> None:
    """A rejected file's bad rows are all counted; only the first 1,000 are kept for display,
    and the next file is still imported."""
    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_text(HEADER + "".join(re.sub(r",\d+,,$", ",lots,,", r) for r in rows(1500)))
    good.write_text(HEADER + "".join(rows(3, symbol="GOOD")))
    report = await import_files(
        store, check_files([bad, good]), at=AT, chunk_rows=1000, strict=True
    )
    [rejected] = report.rejected_files
    assert (rejected.path, rejected.rejected, rejected.not_written) == (bad, 1500, 0)
    assert (report.rejected_count, len(report.rejected)) == (1500, 1000)
    assert [(f.status, f.rows) for f in report.per_file] == [("rejected", 0), ("written", 3)]
    assert [s.symbol for s in await store.symbol_statuses()] == ["GOOD"]


def test_strict_exit_status_is_one(tmp_path: Path) -> None:
    """The user's view of the above: summary on stdout, one error line, exit 1."""
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(CANONICAL)
    bad.write_text(f"{SHORT_HEADER}\nX,2024-01-02,1,2,0.5,1.5,lots\n")
    url = f"sqlite:///{tmp_path / 'm.db'}"
    proc = run_cli("--database-url", url, "import", "--strict", str(bad), str(good))
    assert proc.returncode == 1
    assert "Import finished" in proc.stdout
    assert "error: --strict: " in proc.stderr
    assert "Traceback" not in proc.stderr


# -- progress ---------------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True])
def test_progress_positions_follow_the_rows_handed_out(tmp_path: Path, packed: bool) -> None:
    """Each chunk's position is close to its share of the file, not the reader's look-ahead."""
    text = (HEADER + "".join(rows(60_000))).encode()
    path = tmp_path / ("bars.csv.gz" if packed else "bars.csv")
    path.write_bytes(gzip.compress(text) if packed else text)
    bar_file = open_bar_file(path)
    positions = [c.position for c in bar_file.chunks(20_000)]
    assert positions[-1] == bar_file.size
    thirds = [p / bar_file.size for p in positions[:2]]
    assert 0.28 < thirds[0] < 0.39, thirds
    assert 0.61 < thirds[1] < 0.72, thirds


# -- simulated histories ----------------------------------------------------------------------


async def test_import_report_counts_replaced_simulated_bars(store: Store, tmp_path: Path) -> None:
    """One real AAPL row replaces AAPL's simulated history; the report says how many bars."""
    await seed_if_empty(store, symbols=["AAPL", "MSFT"], years=1, today=TODAY, at=AT)
    [before] = await store.symbol_statuses(["AAPL"])
    source = tmp_path / "aapl.csv"
    make_bars("AAPL", start=dt.date(2026, 11, 2), days=1).write_csv(source)
    report = await import_files(store, check_files([source]), at=AT, chunk_rows=1000)
    assert before.bar_count > 200
    assert report.replaced == {"AAPL": before.bar_count}
    assert import_dict(report, [], seconds=1.0)["simulated_replaced"] == {"AAPL": before.bar_count}
    again = await import_files(store, check_files([source]), at=AT, chunk_rows=1000)
    assert again.replaced == {}


def test_import_summary_says_simulated_bars_were_replaced(
    database_url: str, tmp_path: Path
) -> None:
    """The human summary names the symbol and the number of simulated bars replaced."""

    async def seed() -> int:
        store = await open_store(database_url)
        try:
            await seed_if_empty(store, symbols=["AAPL"], years=1, today=TODAY, at=AT)
            return (await store.symbol_statuses(["AAPL"]))[0].bar_count
        finally:
            await store.aclose()

    count = asyncio.run(seed())
    source = tmp_path / "aapl.csv"
    make_bars("AAPL", start=dt.date(2026, 11, 2), days=2).write_csv(source)
    code, out, err = invoke(database_url, "import", str(source))
    assert code == 0, err
    assert f"AAPL: {count:,} simulated bar(s) replaced by real data" in out
    assert summary(out)["inserted"] == "2"
    make_bars("AAPL", start=dt.date(2026, 11, 4), days=1).write_csv(source)
    code, out, err = invoke(database_url, "import", "--json", str(source))
    assert code == 0, err
    answer = json.loads(out)
    assert (answer["inserted"], answer["simulated_replaced"]) == (1, {})  # nothing left to replace
    assert answer["files"][0]["path"] == str(source)


# -- Ctrl-C -----------------------------------------------------------------------------------

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def test_dataset_state_tells_unfinished_exports_apart(tmp_path: Path) -> None:
    """What an interrupted dataset export leaves is told from a complete one and from none."""
    assert dataset_state(tmp_path / "none") == "absent"
    (tmp_path / "_marketdata.json").write_text('{"complete": false}')
    assert dataset_state(tmp_path) == "unfinished"
    (tmp_path / "_marketdata.json").write_text('{"complete": true}')
    assert dataset_state(tmp_path) == "complete"


def test_ctrl_c_during_import_says_what_was_written(
    postgres_session_url: str, tmp_path: Path
) -> None:
    """SIGINT while the second file waits for a locked row: exit 130, the first file is kept
    and said to be, the second wrote nothing, the third was never read.

    Deterministic without sleeping: this test holds a row lock the second file's upsert needs,
    and sends SIGINT only once the progress bar shows the first file at 100 % (drawn after
    its commit).
    """
    url = postgres_session_url
    truncate_all(url)
    first, locked, never = tmp_path / "first.csv", tmp_path / "locked.csv", tmp_path / "never.csv"
    first.write_text(f"{SHORT_HEADER}\nAAA,2024-01-02,1,2,0.5,1.5,100\n")
    locked.write_text(f"{SHORT_HEADER}\nZZZ,2024-01-02,1,2,0.5,1.75,100\n")
    never.write_text(f"{SHORT_HEADER}\nNNN,2024-01-02,1,2,0.5,1.5,100\n")
    earlier = tmp_path / "earlier.csv"
    earlier.write_text(f"{SHORT_HEADER}\nZZZ,2024-01-02,1,2,0.5,1.5,100\n")
    assert invoke(url, "import", str(earlier))[0] == 0
    env = {**os.environ, "TTY_COMPATIBLE": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "marketdata", "--database-url", url, "import"]
    with psycopg.connect(url) as holder:
        holder.execute("SELECT 1 FROM bars WHERE symbol = 'ZZZ' FOR UPDATE")
        proc = subprocess.Popen(  # our own CLI
            [*command, str(first), str(locked), str(never)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stderr is not None
        seen = b""
        while not re.search(rb"first\.csv[^\n\r]*100%", _ANSI.sub(b"", seen)):
            data = proc.stderr.read1(65536)  # type: ignore[attr-defined]  # a BufferedReader
            assert data, f"import ended early: {seen.decode(errors='replace')}"
            seen += data
        proc.send_signal(signal.SIGINT)
        holder.rollback()
        _, rest = proc.communicate(timeout=60)
    text = _ANSI.sub(b"", seen + rest).decode()
    assert proc.returncode == 130, text
    assert "stopped. Kept: 1 file(s) complete" in text
    assert str(first) in text
    assert f"Not read: {never}." in text
    assert "Run the same `marketdata import` again to finish" in text
    assert "Traceback" not in text
    assert stored(url) == {"AAA": 1, "ZZZ": 1}
    out = invoke(url, "export", "ZZZ")[1]
    assert ",1.5,100.0" in out  # the locked file's update was not written
