"""Status page at scale: a watched flag on the status table, and empty rows for watched symbols
without bars, so ``/api/v1/status`` reads one table through its indexes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("symbol_status") as batch:
        batch.add_column(
            sa.Column(
                "watched",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
                comment="on the watchlist (kept in step by the service)",
            )
        )
        batch.create_index(
            "symbol_status_watched_last", ["watched", "last_date", "symbol"], unique=False
        )
        batch.create_index("symbol_status_source", ["source"], unique=False)
    # A first approximation (active watchlist rows); the service corrects it with the
    # configured symbols the next time it reads the watchlist (every start).
    op.execute(
        "UPDATE symbol_status SET watched = EXISTS (SELECT 1 FROM symbols"
        " WHERE symbols.symbol = symbol_status.symbol AND symbols.active)"
    )
    op.execute(
        "INSERT INTO symbol_status (symbol, updated_at, watched)"
        " SELECT symbol, added_at, active FROM symbols WHERE active AND NOT EXISTS"
        " (SELECT 1 FROM symbol_status s WHERE s.symbol = symbols.symbol)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM symbol_status WHERE last_date IS NULL AND bar_count = 0")
    with op.batch_alter_table("symbol_status") as batch:
        batch.drop_index("symbol_status_source")
        batch.drop_index("symbol_status_watched_last")
        batch.drop_column("watched")
