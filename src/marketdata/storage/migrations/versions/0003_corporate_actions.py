"""Corporate actions: ``splits`` and ``dividends`` (adjusted reads are computed from them).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "splits",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("execution_date", sa.Date(), nullable=False),
        sa.Column("split_from", sa.Float(precision=53), nullable=False),
        sa.Column("split_to", sa.Float(precision=53), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "execution_date", name="splits_pkey"),
    )
    op.create_table(
        "dividends",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("ex_dividend_date", sa.Date(), nullable=False),
        sa.Column("dividend_type", sa.Text(), nullable=False, comment="CD regular, SC special, …"),
        sa.Column("cash_amount", sa.Float(precision=53), nullable=False),
        sa.Column("declaration_date", sa.Date(), nullable=True),
        sa.Column("record_date", sa.Date(), nullable=True),
        sa.Column("pay_date", sa.Date(), nullable=True),
        sa.Column("frequency", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "symbol", "ex_dividend_date", "dividend_type", name="dividends_pkey"
        ),
    )


def downgrade() -> None:
    op.drop_table("dividends")
    op.drop_table("splits")
