"""task run retries due no earlier than their delay: ``task_runs.not_before``

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``task_runs.not_before``: when a Retrying task run's next attempt is due."""
    op.add_column("task_runs", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop ``task_runs.not_before``."""
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_column("not_before")
