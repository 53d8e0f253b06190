"""Pure rendering for the CLI: data in, rich renderables out. Nothing here prints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from marketdata.service.ingest import ImportReport
    from marketdata.service.quality import SymbolQuality
    from marketdata.storage.base import SymbolStatus


def _date(value: dt.date | None) -> str:
    return value.isoformat() if value else "—"


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def status_table(
    statuses: Sequence[SymbolStatus], rules: dict[str, dict[str, int]] | None = None
) -> Table:
    """One row per symbol from the maintained summaries (and how often rules fired on it).

    The fetch and error columns appear only when some symbol has something to show in them.
    """
    rules = rules or {}
    fetched = any(s.last_fetch for s in statuses)
    errors = any(s.last_error for s in statuses)
    table = Table(title="Stored bars per symbol", title_justify="left")
    table.add_column("Symbol", style="bold", no_wrap=True)
    table.add_column("First", no_wrap=True)
    table.add_column("Last", no_wrap=True)
    table.add_column("Bars", justify="right")
    table.add_column("Valid", justify="right")
    table.add_column("Gaps", justify="right")
    table.add_column("Flags", justify="right")
    if fetched:
        table.add_column("Last fetch")
    if errors:
        table.add_column("Last error", style="red", overflow="fold")
    for s in statuses:
        hits = sum(rules.get(s.symbol, {}).values())
        row = [
            s.symbol,
            _date(s.first_date),
            _date(s.last_date),
            f"{s.bar_count:,}",
            f"{s.validated_count / s.bar_count:.1%}" if s.bar_count else "—",
            f"[yellow]{s.gap_count:,}[/yellow]" if s.gap_count else "0",
            f"{hits:,}",
        ]
        if fetched:
            row.append(_when(s.last_fetch))
        if errors:
            row.append(escape(s.last_error or ""))
        table.add_row(*row)
    return table


def import_summary(report: ImportReport, *, seconds: float) -> Table:
    """Counts of an import."""
    table = Table(title="Import finished", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    total = report.counts.total
    rate = f" ({total / seconds:,.0f} rows/s)" if seconds >= 1 else ""
    table.add_row("files", f"{report.files:,}")
    table.add_row("inserted", f"[green]{report.counts.inserted:,}[/green]")
    table.add_row("updated", f"[yellow]{report.counts.updated:,}[/yellow]")
    table.add_row("unchanged", f"{report.counts.unchanged:,}")
    style = "red" if report.rejected_count else ""
    table.add_row("rejected", f"[{style}]{report.rejected_count:,}[/{style}]" if style else "0")
    table.add_row("time", f"{seconds:,.1f} s{rate}")
    return table


def rejected_lines(report: ImportReport, *, limit: int = 20) -> Text:
    """The first ``limit`` rejected rows, one per line, and how many more there were."""
    text = Text()
    for row in report.rejected[:limit]:
        text.append(f"  {row}\n", style="yellow")
    more = report.rejected_count - min(limit, len(report.rejected))
    if more > 0:
        text.append(f"  … and {more:,} more rejected row(s)\n", style="yellow")
    return text


def quality_dict(q: SymbolQuality) -> dict[str, object]:
    """One symbol's validation outcome as plain JSON data."""
    return {
        "symbol": q.symbol,
        "bars": q.bars,
        "validated": q.validated,
        "validation_rate": round(q.rate, 6),
        "changed": q.changed,
        "rules": q.rules,
        "missing_sessions": q.missing,
        "gaps": [
            {"start": g.start.isoformat(), "end": g.end.isoformat(), "sessions": g.sessions}
            for g in q.gaps
        ],
    }


def _rules(rules: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(rules.items())) or "—"


def quality_table(results: Sequence[SymbolQuality]) -> Table:
    """Per-symbol validation summary with a total row."""
    table = Table(title="Validation", title_justify="left", show_footer=len(results) > 1)
    bars = sum(q.bars for q in results)
    validated = sum(q.validated for q in results)
    rate = f"{validated / bars:.2%}" if bars else "—"
    table.add_column("Symbol", "Total", style="bold", no_wrap=True)
    table.add_column("Bars", f"{bars:,}", justify="right")
    table.add_column("Validated", f"{validated:,} ({rate})", justify="right")
    table.add_column("Re-scored", f"{sum(q.changed for q in results):,}", justify="right")
    table.add_column("Missing", f"{sum(q.missing for q in results):,}", justify="right")
    totals: dict[str, int] = {}
    for q in results:
        for name, count in q.rules.items():
            totals[name] = totals.get(name, 0) + count
    table.add_column("Rules fired", _rules(totals), overflow="fold")
    for q in results:
        table.add_row(
            q.symbol,
            f"{q.bars:,}",
            f"{q.validated:,} ({q.rate:.2%})",
            f"{q.changed:,}",
            f"{q.missing:,}",
            _rules(q.rules),
        )
    return table


def gap_lines(results: Sequence[SymbolQuality], *, per_symbol: int = 5) -> Text:
    """The first missing-session ranges of each symbol that has any."""
    text = Text()
    for q in results:
        if not q.gaps:
            continue
        text.append(f"{q.symbol}: missing ", style="yellow")
        shown = [
            g.start.isoformat() if g.start == g.end else f"{g.start} … {g.end}"
            for g in q.gaps[:per_symbol]
        ]
        more = len(q.gaps) - per_symbol
        text.append(", ".join(shown) + (f" and {more:,} more range(s)" if more > 0 else "") + "\n")
    return text


def status_totals(
    statuses: Sequence[SymbolStatus], rules: dict[str, dict[str, int]] | None = None
) -> Text:
    """One line of totals: symbols, bars, validation rate, missing sessions, rules fired."""
    bars = sum(s.bar_count for s in statuses)
    validated = sum(s.validated_count for s in statuses)
    missing = sum(s.gap_count for s in statuses)
    totals: dict[str, int] = {}
    for per_symbol in (rules or {}).values():
        for name, count in per_symbol.items():
            totals[name] = totals.get(name, 0) + count
    rate = f"{validated / bars:.2%}" if bars else "—"
    text = Text()
    text.append(f"{len(statuses):,} symbols · {bars:,} bars · ")
    text.append(f"validation rate {rate}", style="bold")
    text.append(f" ({validated:,} validated) · {missing:,} missing session(s)\n")
    text.append(f"flags: {_rules(totals)}\n")
    return text
