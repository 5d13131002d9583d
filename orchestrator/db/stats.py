"""Counts of runs for the server's ``/metrics``: flow runs and task runs by flow and
state, each one grouped query. Imports SQLAlchemy and the sibling modules database
and models."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from orchestrator.db.database import Database
from orchestrator.db.models import FlowRun, FlowVersion, Project, TaskRun


@dataclass(frozen=True)
class RunCount:
    """How many runs of one flow are in one state.

    Attributes:
        flow: the flow's name.
        project: its project.
        state: the state.
        count: how many.
    """

    flow: str
    project: str
    state: str
    count: int


def _count(flow: str, project: str, state: str, count: int) -> RunCount:
    return RunCount(flow, project, state, int(count))


class Stats:
    """Counts over the runs of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def flow_runs(self) -> list[RunCount]:
        """Flow runs by flow (name and project) and state."""
        n = func.count(FlowRun.id)
        statement = (
            select(FlowVersion.name, Project.name, FlowRun.state, n)
            .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
            .join(Project, Project.id == FlowVersion.project_id)
            .group_by(FlowVersion.name, Project.name, FlowRun.state)
        )
        return [_count(*tuple(row)) for row in self._db.all(statement)]

    def task_runs(self) -> list[RunCount]:
        """Task runs by their flow (name and project) and state."""
        n = func.count(TaskRun.id)
        statement = (
            select(FlowVersion.name, Project.name, TaskRun.state, n)
            .join(FlowRun, FlowRun.id == TaskRun.flow_run_id)
            .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
            .join(Project, Project.id == FlowVersion.project_id)
            .group_by(FlowVersion.name, Project.name, TaskRun.state)
        )
        return [_count(*tuple(row)) for row in self._db.all(statement)]
