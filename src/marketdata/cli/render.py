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
    from marketdata.storage.base import SymbolStatus


def _date(value: dt.date | None) -> str:
    return value.isoformat() if value else "—"


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def status_table(statuses: Sequence[SymbolStatus]) -> Table:
    """One row per symbol from the maintained summaries."""
    table = Table(title="Stored bars per symbol", title_justify="left")
    table.add_column("Symbol", style="bold", no_wrap=True)
    table.add_column("First", no_wrap=True)
    table.add_column("Last", no_wrap=True)
    table.add_column("Bars", justify="right")
    table.add_column("Validated", justify="right")
    table.add_column("Gaps", justify="right")
    table.add_column("Last fetch")
    table.add_column("Last error", style="red", overflow="fold")
    for s in statuses:
        rate = (
            f"{s.validated_count:,} ({s.validated_count / s.bar_count:.0%})" if s.bar_count else "0"
        )
        table.add_row(
            s.symbol,
            _date(s.first_date),
            _date(s.last_date),
            f"{s.bar_count:,}",
            rate,
            f"{s.gap_count:,}",
            _when(s.last_fetch),
            escape(s.last_error or ""),
        )
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
