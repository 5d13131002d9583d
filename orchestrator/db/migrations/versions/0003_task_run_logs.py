"""task run logs: the captured log lines of each task run attempt

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the ``task_run_logs`` table."""
    op.create_table(
        "task_run_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_run_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("logger", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("task_run_logs", schema=None) as batch_op:
        batch_op.create_index("ix_task_run_logs_run", ["flow_run_id", "task_run_id"], unique=False)


def downgrade() -> None:
    """Drop the ``task_run_logs`` table."""
    with op.batch_alter_table("task_run_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_task_run_logs_run")
    op.drop_table("task_run_logs")
