"""browsing indexes: newest-first keyset pages of flow runs (all, roots, by state, by flow)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# A run's created time and id never change, nor its parent: these indexes cost an
# insert each, no update. The state index replaces ix_flow_runs_state (same first
# column), so a state change maintains as many indexes as before. The parent index
# becomes partial (children only): SQLite, without statistics, took it for the roots'
# IS NULL and sorted every root; now only ix_flow_runs_roots fits them.
_ROOTS = sa.text("parent_flow_run_id IS NULL")
_CHILDREN = sa.text("parent_flow_run_id IS NOT NULL")


def upgrade() -> None:
    """Replace the created and state indexes by (created, id) and (state, created, id);
    add (flow_id, created, id) and a partial (created, id) index of the root runs; the
    parent index covers children only."""
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_runs_created")
        batch_op.drop_index("ix_flow_runs_state")
        batch_op.create_index("ix_flow_runs_created_id", ["created", "id"], unique=False)
        batch_op.create_index("ix_flow_runs_state_created", ["state", "created", "id"])
        batch_op.create_index("ix_flow_runs_flow_created", ["flow_id", "created", "id"])
    op.create_index(
        "ix_flow_runs_roots",
        "flow_runs",
        ["created", "id"],
        postgresql_where=_ROOTS,
        sqlite_where=_ROOTS,
    )
    op.drop_index("ix_flow_runs_parent", table_name="flow_runs")
    op.create_index(
        "ix_flow_runs_parent",
        "flow_runs",
        ["parent_flow_run_id"],
        postgresql_where=_CHILDREN,
        sqlite_where=_CHILDREN,
    )


def downgrade() -> None:
    """Back to the indexes of revision 0003."""
    op.drop_index("ix_flow_runs_parent", table_name="flow_runs")
    op.create_index("ix_flow_runs_parent", "flow_runs", ["parent_flow_run_id"])
    op.drop_index("ix_flow_runs_roots", table_name="flow_runs")
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_runs_flow_created")
        batch_op.drop_index("ix_flow_runs_state_created")
        batch_op.drop_index("ix_flow_runs_created_id")
        batch_op.create_index("ix_flow_runs_state", ["state"], unique=False)
        batch_op.create_index("ix_flow_runs_created", ["created"], unique=False)
