"""Backfill engine and scheduler: watchlist details, service state, leases, job claims.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("symbols") as batch:
        batch.add_column(
            sa.Column(
                "origin",
                sa.Text(),
                server_default="user",
                nullable=False,
                comment="config|user",
            )
        )
        batch.add_column(
            sa.Column(
                "years", sa.Integer(), nullable=True, comment="history wanted; null = the default"
            )
        )
        batch.add_column(
            sa.Column("checked_from", sa.Date(), nullable=True, comment="vendor asked back to here")
        )
        batch.add_column(
            sa.Column(
                "actions_checked", sa.Date(), nullable=True, comment="splits/dividends fetched to"
            )
        )
    with op.batch_alter_table("backfill_runs") as batch:
        batch.create_index("backfill_runs_started", ["started_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":  # SQLite keeps no comments
        op.alter_column(
            "backfill_runs",
            "status",
            existing_type=sa.Text(),
            existing_nullable=False,
            comment="running|succeeded|partial|failed|interrupted",
            existing_comment="running|succeeded|failed|interrupted",
        )
    op.create_table(
        "service_state",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "job_claims",
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", "fire_time", name="job_claims_pkey"),
    )


def downgrade() -> None:
    op.drop_table("job_claims")
    op.drop_table("leases")
    op.drop_table("service_state")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "backfill_runs",
            "status",
            existing_type=sa.Text(),
            existing_nullable=False,
            comment="running|succeeded|failed|interrupted",
            existing_comment="running|succeeded|partial|failed|interrupted",
        )
    with op.batch_alter_table("backfill_runs") as batch:
        batch.drop_index("backfill_runs_started")
    with op.batch_alter_table("symbols") as batch:
        batch.drop_column("actions_checked")
        batch.drop_column("checked_from")
        batch.drop_column("years")
        batch.drop_column("origin")
