"""How backfill plans, outcomes and runs look in the terminal and as JSON."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from marketdata.service.backfill import Prepared
    from marketdata.service.runs import Outcome
    from marketdata.storage.jobs import RunRecord

#: Calls (at least) of one corporate-actions request: its splits and its dividends.
CALLS_PER_ACTIONS_REQUEST = 2
#: Symbols listed one per line in a dry run before the rest are summarised.
_SHOWN = 50


def duration(seconds: float) -> str:
    """``seconds`` for humans: ``45 s``, ``3 min 12 s``, ``2 h 5 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _when(value: dt.datetime | None) -> str:
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC" if value else "—"


def action_calls(prepared: Prepared) -> int:
    """Calls the run will spend on corporate actions (their first pages)."""
    return prepared.action_requests * CALLS_PER_ACTIONS_REQUEST


def plan_calls(prepared: Prepared) -> int:
    """Calls the run will make: the plan's, plus corporate actions."""
    calls: int = prepared.plan.calls
    return calls + action_calls(prepared)


def plan_lines(prepared: Prepared, *, calls_per_minute: float) -> list[Any]:
    """A dry run: what each symbol lacks, the calls, and how long they take."""
    plan = prepared.plan
    lines: list[Any] = []
    if prepared.clipped:
        lines.append(
            f"[yellow]plan window:[/yellow] your plan serves about {prepared.window_days:,} "
            f"days of history; {len(prepared.clipped)} symbol(s) are asked for no more (a "
            "bigger plan and --start YYYY-MM-DD fetch more)"
        )
    if plan.is_empty:
        lines.append(
            f"Nothing to do: {len(plan.symbols)} symbol(s) are complete up to {prepared.end} "
            "(the last completed session). 0 calls."
        )
        return lines
    table = Table(title=f"Backfill plan up to {prepared.end}")
    for name, justify in (
        ("Symbol", "left"),
        ("Missing", "right"),
        ("Refresh", "right"),
        ("From", "left"),
        ("To", "left"),
        ("Range calls", "right"),
        ("Grouped sessions", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    busy = [s for s in plan.symbols if s.range_calls or s.grouped_sessions]
    for s in busy[:_SHOWN]:
        table.add_row(
            escape(s.symbol),
            f"{s.missing:,}",
            f"{s.refresh:,}",
            str(s.start or "—"),
            str(s.end or "—"),
            f"{s.range_calls:,}",
            f"{s.grouped_sessions:,}",
        )
    lines.append(table)
    if len(busy) > _SHOWN:
        lines.append(f"… and {len(busy) - _SHOWN:,} more symbol(s) with work")
    idle = len(plan.symbols) - len(busy)
    if idle:
        lines.append(f"{idle:,} symbol(s) already complete.")
    calls = plan_calls(prepared)
    lines.append(
        f"[bold]{calls:,} call(s)[/bold]: {len(plan.ranges):,} per-ticker range, "
        f"{len(plan.grouped):,} grouped daily, {action_calls(prepared)} corporate actions; "
        f"{plan.missing:,} missing bar(s) + {plan.refresh:,} refreshed, "
        f"over {plan.sessions:,} session(s)."
    )
    lines.append(
        f"Chosen mix ({plan.strategy}) instead of {plan.range_only_calls:,} call(s) per ticker "
        f"or {plan.grouped_only_calls:,} grouped."
    )
    if calls_per_minute:
        seconds = (calls - 1) * 60 / calls_per_minute if calls > 1 else 0.0
        lines.append(
            f"At {calls_per_minute:g} call(s)/minute this takes about {duration(seconds)}."
        )
    else:
        lines.append("No rate limit: as fast as the provider answers.")
    return lines


def plan_dict(prepared: Prepared, *, calls_per_minute: float) -> dict[str, Any]:
    """The plan as JSON."""
    plan = prepared.plan
    calls = plan_calls(prepared)
    return {
        "end": prepared.end.isoformat(),
        "calls": calls,
        "range_calls": len(plan.ranges),
        "grouped_calls": len(plan.grouped),
        "action_calls": calls - plan.calls,
        "range_only_calls": plan.range_only_calls,
        "grouped_only_calls": plan.grouped_only_calls,
        "strategy": plan.strategy,
        "missing": plan.missing,
        "refresh": plan.refresh,
        "sessions": plan.sessions,
        "seconds": (calls - 1) * 60 / calls_per_minute if calls > 1 and calls_per_minute else 0,
        "window_start": prepared.window_start.isoformat() if prepared.window_start else None,
        "symbols": [
            {
                "symbol": s.symbol,
                "missing": s.missing,
                "refresh": s.refresh,
                "start": s.start.isoformat() if s.start else None,
                "end": s.end.isoformat() if s.end else None,
                "range_calls": s.range_calls,
                "grouped_sessions": s.grouped_sessions,
            }
            for s in plan.symbols
        ],
    }


def outcome_lines(outcome: Outcome, *, seconds: float) -> list[str]:
    """The summary printed after a run."""
    p = outcome.progress
    colour = {"succeeded": "green", "partial": "yellow"}.get(outcome.status, "red")
    lines = []
    if outcome.recovered:
        lines.append(
            f"[yellow]marked interrupted:[/yellow] run(s) {', '.join(map(str, outcome.recovered))} "
            "(a process stopped mid-run; this run finished their work)"
        )
    lines.append(
        f"Backfill run {outcome.run_id} [{colour}]{outcome.status}[/{colour}] in "
        f"{duration(seconds)}: {p.symbols_done:,}/{p.symbols_total:,} symbol(s) complete; "
        f"bars {p.counts.inserted:,} inserted, {p.counts.updated:,} updated, "
        f"{p.counts.unchanged:,} unchanged; {p.calls:,} call(s)."
    )
    lines.extend(f"[yellow]{escape(note)}[/yellow]" for note in p.notes)
    for symbol, reason in sorted(p.failures.items()):
        lines.append(f"[red]failed[/red] {escape(symbol)}: {escape(reason)}")
    if p.failures:
        lines.append("The other symbols were written. Run `marketdata backfill` again to retry.")
    return lines


def outcome_dict(outcome: Outcome, *, seconds: float) -> dict[str, Any]:
    """A run's outcome as JSON."""
    p = outcome.progress
    return {
        "run_id": outcome.run_id,
        "status": outcome.status,
        "seconds": round(seconds, 3),
        "symbols": p.symbols_total,
        "symbols_done": p.symbols_done,
        "inserted": p.counts.inserted,
        "updated": p.counts.updated,
        "unchanged": p.counts.unchanged,
        "calls": p.calls,
        "errors": p.errors,
        "failures": dict(sorted(p.failures.items())),
        "notes": list(p.notes),
        "recovered": list(outcome.recovered),
    }


def run_dict(run: RunRecord) -> dict[str, Any]:
    """One run (with its symbols when read with them) as JSON."""
    data: dict[str, Any] = {
        "id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "provider": run.provider,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "calls": run.calls,
        "inserted": run.inserted,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "errors": run.errors,
        "message": run.message,
    }
    if run.symbols:
        data["symbols"] = [
            {
                "symbol": s.symbol,
                "status": s.status,
                "start_date": s.start_date.isoformat() if s.start_date else None,
                "end_date": s.end_date.isoformat() if s.end_date else None,
                "checkpoint": s.checkpoint.isoformat() if s.checkpoint else None,
                "calls": s.calls,
                "inserted": s.inserted,
                "updated": s.updated,
                "unchanged": s.unchanged,
                "error": s.error,
            }
            for s in run.symbols
        ]
    return data


def runs_table(records: list[RunRecord]) -> Table:
    """Recent runs, newest first."""
    table = Table(title="Backfill runs")
    for name, justify in (
        ("Run", "right"),
        ("Status", "left"),
        ("Trigger", "left"),
        ("Started", "left"),
        ("Finished", "left"),
        ("Calls", "right"),
        ("Inserted", "right"),
        ("Updated", "right"),
        ("Errors", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in records:
        table.add_row(
            str(r.id),
            r.status,
            r.trigger,
            _when(r.started_at),
            _when(r.finished_at),
            f"{r.calls:,}",
            f"{r.inserted:,}",
            f"{r.updated:,}",
            f"{r.errors:,}",
        )
    return table


def run_detail(run: RunRecord) -> Table:
    """One run's symbols."""
    table = Table(
        title=f"Run {run.id}: {run.status} ({run.trigger}, {run.provider}), "
        f"started {_when(run.started_at)}",
        caption=escape(run.message or ""),
    )
    for name in ("Symbol", "Status", "From", "To", "Checkpoint", "Inserted", "Updated", "Error"):
        table.add_column(name)
    for s in run.symbols:
        table.add_row(
            escape(s.symbol),
            s.status,
            str(s.start_date or "—"),
            str(s.end_date or "—"),
            str(s.checkpoint or "—"),
            f"{s.inserted:,}",
            f"{s.updated:,}",
            escape(s.error or ""),
        )
    return table
