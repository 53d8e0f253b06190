"""The tables, defined once (SQLAlchemy Core). Alembic migrations target this metadata.

A test checks that applying every migration yields exactly these tables, so a change here
without a migration fails CI.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: Daily bars as stored: raw (unadjusted) values exactly as received, one row per session.
bars = sa.Table(
    "bars",
    metadata,
    sa.Column("symbol", sa.Text, nullable=False),
    sa.Column("date", sa.Date, nullable=False, comment="exchange session date (America/New_York)"),
    sa.Column("open", sa.Float(precision=53), nullable=False),
    sa.Column("high", sa.Float(precision=53), nullable=False),
    sa.Column("low", sa.Float(precision=53), nullable=False),
    sa.Column("close", sa.Float(precision=53), nullable=False),
    sa.Column("volume", sa.Float(precision=53), nullable=False),
    sa.Column("vwap", sa.Float(precision=53), nullable=True),
    sa.Column("transactions", sa.BigInteger, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("quality", sa.Float(precision=53), nullable=True, comment="0..1; null = not scored"),
    sa.Column("flags", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("validated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("symbol", "date", name="bars_pkey"),
)

#: Earlier values of a bar, kept when a later load changed it. A row is the version that was
#: current from ``ingested_at`` until ``revised_at``.
bar_revisions = sa.Table(
    "bar_revisions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("symbol", sa.Text, nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("open", sa.Float(precision=53), nullable=False),
    sa.Column("high", sa.Float(precision=53), nullable=False),
    sa.Column("low", sa.Float(precision=53), nullable=False),
    sa.Column("close", sa.Float(precision=53), nullable=False),
    sa.Column("volume", sa.Float(precision=53), nullable=False),
    sa.Column("vwap", sa.Float(precision=53), nullable=True),
    sa.Column("transactions", sa.BigInteger, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("quality", sa.Float(precision=53), nullable=True),
    sa.Column("flags", sa.BigInteger, nullable=False),
    sa.Column("validated", sa.Boolean, nullable=False),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revised_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revised_by", sa.Text, nullable=False, comment="source of the change"),
    sa.Index("bar_revisions_symbol_date", "symbol", "date", "revised_at"),
)

#: The watchlist.
symbols = sa.Table(
    "symbols",
    metadata,
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("origin", sa.Text, nullable=False, server_default="user", comment="config|user"),
    sa.Column("years", sa.Integer, nullable=True, comment="history wanted; null = the default"),
    sa.Column("checked_from", sa.Date, nullable=True, comment="vendor asked back to here"),
    sa.Column("actions_checked", sa.Date, nullable=True, comment="splits/dividends fetched to"),
)

#: Per-symbol summary, maintained on every write so that status reads never scan ``bars``.
symbol_status = sa.Table(
    "symbol_status",
    metadata,
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("first_date", sa.Date, nullable=True),
    sa.Column("last_date", sa.Date, nullable=True),
    sa.Column("bar_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("validated_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("gap_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("last_fetch", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.Text, nullable=True, comment="source of the latest write (synthetic …)"),
    sa.Column(
        "watched",
        sa.Boolean,
        nullable=False,
        server_default=sa.false(),
        comment="on the watchlist (kept in step by the service)",
    ),
    sa.Index("symbol_status_watched_last", "watched", "last_date", "symbol"),
    sa.Index("symbol_status_source", "source"),
)

#: One row per rule that fired on a bar (filled by validation).
validation_log = sa.Table(
    "validation_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("symbol", sa.Text, nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("value", sa.Float(precision=53), nullable=True),
    sa.Column("threshold", sa.Float(precision=53), nullable=True),
    sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("validation_log_symbol_date", "symbol", "date"),
)

#: One row per backfill run (the original plan's backfill_history).
backfill_runs = sa.Table(
    "backfill_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column(
        "status", sa.Text, nullable=False, comment="running|succeeded|partial|failed|interrupted"
    ),
    sa.Column("trigger", sa.Text, nullable=False, comment="manual|scheduled|api"),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("calls", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("inserted", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("updated", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("unchanged", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("errors", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("message", sa.Text, nullable=True),
    sa.Index("backfill_runs_started", "started_at"),
)

#: Per-symbol progress of a backfill run; ``checkpoint`` is the last session written.
backfill_run_symbols = sa.Table(
    "backfill_run_symbols",
    metadata,
    sa.Column(
        "run_id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("backfill_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("symbol", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("start_date", sa.Date, nullable=True),
    sa.Column("end_date", sa.Date, nullable=True),
    sa.Column("checkpoint", sa.Date, nullable=True),
    sa.Column("calls", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("inserted", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("updated", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("unchanged", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("error", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("run_id", "symbol", name="backfill_run_symbols_pkey"),
)

#: Stock splits as reported by a source: ``split_from``-for-``split_to`` on ``execution_date``
#: (a 4-for-1 split is from=1, to=4). Bars stay raw; adjusted reads apply these on the fly.
splits = sa.Table(
    "splits",
    metadata,
    sa.Column("symbol", sa.Text, nullable=False),
    sa.Column("execution_date", sa.Date, nullable=False),
    sa.Column("split_from", sa.Float(precision=53), nullable=False),
    sa.Column("split_to", sa.Float(precision=53), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("symbol", "execution_date", name="splits_pkey"),
)

#: Cash dividends as reported (not split-adjusted). One row per symbol, ex-date and type: a
#: special dividend can share its ex-date with a regular one.
dividends = sa.Table(
    "dividends",
    metadata,
    sa.Column("symbol", sa.Text, nullable=False),
    sa.Column("ex_dividend_date", sa.Date, nullable=False),
    sa.Column("dividend_type", sa.Text, nullable=False, comment="CD regular, SC special, …"),
    sa.Column("cash_amount", sa.Float(precision=53), nullable=False),
    sa.Column("declaration_date", sa.Date, nullable=True),
    sa.Column("record_date", sa.Date, nullable=True),
    sa.Column("pay_date", sa.Date, nullable=True),
    sa.Column("frequency", sa.BigInteger, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("symbol", "ex_dividend_date", "dividend_type", name="dividends_pkey"),
)

#: Small named values the service keeps between runs (e.g. when a job last succeeded).
service_state = sa.Table(
    "service_state",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: Named locks on SQLite: a lease renewed by its holder, taken over once it expires or its
#: process is gone. PostgreSQL uses session advisory locks instead (the table stays empty).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

#: One row per firing of a scheduled job: the primary key lets exactly one process claim it.
job_claims = sa.Table(
    "job_claims",
    metadata,
    sa.Column("job", sa.Text, nullable=False),
    sa.Column("fire_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("job", "fire_time", name="job_claims_pkey"),
)
