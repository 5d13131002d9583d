"""trace context of flow runs: the W3C traceparent of the run's span and its parent

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``flow_runs.trace_context`` (JSON, empty for runs made before)."""
    op.add_column("flow_runs", sa.Column("trace_context", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop ``flow_runs.trace_context``."""
    op.drop_column("flow_runs", "trace_context")
