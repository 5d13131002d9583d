"""schedule marks: how far beat has handled each scheduled flow

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the ``schedule_marks`` table."""
    op.create_table(
        "schedule_marks",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("flow_name", sa.String(length=200), nullable=False),
        sa.Column("handled_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("schedule_hash", sa.String(length=64), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("project_id", "flow_name"),
    )


def downgrade() -> None:
    """Drop the ``schedule_marks`` table."""
    op.drop_table("schedule_marks")
