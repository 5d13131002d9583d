"""concurrency limits kept in the database: ``concurrency_limits``

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``concurrency_limits`` (label, slots, updated)."""
    op.create_table(
        "concurrency_limits",
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("label"),
    )


def downgrade() -> None:
    """Drop ``concurrency_limits``."""
    op.drop_table("concurrency_limits")
