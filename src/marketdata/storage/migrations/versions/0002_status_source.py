"""symbol_status.source: which source last wrote the symbol (tells simulated data apart).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("symbol_status") as batch:
        batch.add_column(
            sa.Column(
                "source",
                sa.Text(),
                nullable=True,
                comment="source of the latest write (synthetic …)",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("symbol_status") as batch:
        batch.drop_column("source")
