"""What the client reports about runs: :class:`FlowRunInfo` and :class:`TaskRunInfo`
(plain frozen values, times aware), and the builders that make them from stored
rows (:func:`task_run_info`, :func:`flow_run_info`, :func:`summary_info`).

May import the core (clock, errors, states); the database's row types only for
type checking, so a reader of infos needs no database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.clock import aware, utcnow
from orchestrator.errors import TaskRunNotFound
from orchestrator.states import State

if TYPE_CHECKING:
    from orchestrator.db.flow_runs import FlowRunSummary
    from orchestrator.db.models import FlowRun, TaskRun


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start and end:
        return (end - start).total_seconds()
    return None


@dataclass(frozen=True)
class TaskRunInfo:
    """A task run as the client reports it."""

    id: str
    slug: str
    map_index: int
    state: State
    message: str | None
    result: Any
    attempts: int
    worker: str | None
    child_flow_run_id: str | None
    start_time: datetime | None
    end_time: datetime | None

    @property
    def duration(self) -> float | None:
        """Seconds between start and end, when both are known."""
        return _duration(self.start_time, self.end_time)


@dataclass(frozen=True)
class FlowRunInfo:
    """A flow run as the client reports it."""

    id: str
    flow_name: str
    project: str
    version: int
    name: str | None
    state: State
    message: str | None
    parameters: dict[str, Any]
    labels: list[str]
    parent_flow_run_id: str | None
    parent_task_run_id: str | None
    scheduled_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    created: datetime
    children: list[str] = field(default_factory=list)
    task_runs: list[TaskRunInfo] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """Seconds between start and end, when both are known."""
        return _duration(self.start_time, self.end_time)

    def task_run(self, slug: str, map_index: int = -1) -> TaskRunInfo:
        """The task run with this slug.

        Raises:
            TaskRunNotFound: the run has no such task run.
        """
        for tr in self.task_runs:
            if tr.slug == slug and tr.map_index == map_index:
                return tr
        raise TaskRunNotFound(f"flow run {self.id} has no task run {slug!r}")


def task_run_info(tr: TaskRun) -> TaskRunInfo:
    """A stored task run as a :class:`TaskRunInfo` (with a result only once final:
    while a task run waits for a child, its row keeps what it takes from it)."""
    state = State(tr.state)
    return TaskRunInfo(
        id=tr.id,
        slug=tr.slug,
        map_index=tr.map_index,
        state=state,
        message=tr.message,
        result=tr.result if state.is_final else None,
        attempts=tr.attempts,
        worker=tr.worker,
        child_flow_run_id=tr.child_flow_run_id,
        start_time=aware(tr.start_time),
        end_time=aware(tr.end_time),
    )


def flow_run_info(
    run: FlowRun,
    flow_name: str,
    project: str,
    version: int,
    children: Iterable[str] = (),
    task_runs: Iterable[TaskRun] = (),
) -> FlowRunInfo:
    """A stored flow run as a :class:`FlowRunInfo`.

    Args:
        run: the stored run.
        flow_name: its flow's name.
        project: its flow's project.
        version: its flow version's number.
        children: the ids of the runs its tasks started, oldest first.
        task_runs: its stored task runs (none: the info lists none).
    """
    return FlowRunInfo(
        id=run.id,
        flow_name=flow_name,
        project=project,
        version=version,
        name=run.name,
        state=State(run.state),
        message=run.message,
        parameters=dict(run.parameters or {}),
        labels=list(run.labels or []),
        parent_flow_run_id=run.parent_flow_run_id,
        parent_task_run_id=run.parent_task_run_id,
        scheduled_start_time=aware(run.scheduled_start_time),
        start_time=aware(run.start_time),
        end_time=aware(run.end_time),
        created=aware(run.created) or utcnow(),
        children=list(children),
        task_runs=[task_run_info(t) for t in task_runs],
    )


def summary_info(summary: FlowRunSummary) -> FlowRunInfo:
    """A listed flow run (without its task runs) as a :class:`FlowRunInfo`."""
    return flow_run_info(
        summary.run, summary.flow_name, summary.project, summary.version, summary.children
    )
