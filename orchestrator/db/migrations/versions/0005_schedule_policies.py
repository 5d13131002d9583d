"""schedule policies: buffered slot runs, and pauses per flow with who, when and why

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``flow_runs.buffered``; create ``schedule_pauses`` from the paused versions."""
    op.add_column(
        "flow_runs",
        sa.Column("buffered", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    pauses = op.create_table(
        "schedule_pauses",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("flow_name", sa.String(length=200), nullable=False),
        sa.Column("paused_by", sa.String(length=200), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("project_id", "flow_name"),
    )
    flows = sa.table(
        "flows",
        sa.column("project_id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("archived", sa.Boolean()),
        sa.column("schedule_paused", sa.Boolean()),
    )
    bind = op.get_bind()
    paused = bind.execute(
        sa.select(flows.c.project_id, flows.c.name)
        .where(flows.c.schedule_paused.is_(True), flows.c.archived.is_(False))
        .distinct()
    ).all()
    now = datetime.now(UTC)
    if paused:
        op.bulk_insert(
            pauses,
            [
                {
                    "project_id": project_id,
                    "flow_name": name,
                    "paused_by": "unknown (paused before migration 0005)",
                    "paused_at": now,
                    "note": None,
                }
                for project_id, name in paused
            ],
        )
    bind.execute(sa.update(flows).values(schedule_paused=False))


def downgrade() -> None:
    """Mark the newest versions of paused flows paused again; drop what 0005 added."""
    flows = sa.table(
        "flows",
        sa.column("project_id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("archived", sa.Boolean()),
        sa.column("schedule_paused", sa.Boolean()),
    )
    pauses = sa.table(
        "schedule_pauses",
        sa.column("project_id", sa.Integer()),
        sa.column("flow_name", sa.String()),
    )
    bind = op.get_bind()
    for project_id, name in bind.execute(sa.select(pauses.c.project_id, pauses.c.flow_name)):
        bind.execute(
            sa.update(flows)
            .where(
                flows.c.project_id == project_id,
                flows.c.name == name,
                flows.c.archived.is_(False),
            )
            .values(schedule_paused=True)
        )
    op.drop_table("schedule_pauses")
    op.drop_column("flow_runs", "buffered")  # SQLite 3.35 and later drop a column in place
