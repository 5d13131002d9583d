"""The JSON shapes of the REST API, as pydantic models (they make the OpenAPI docs),
and the builders that make them from the client's reports (:mod:`orchestrator.infos`,
:mod:`orchestrator.browsing`, :mod:`orchestrator.concurrency`).

May import pydantic, the client layer's report types and the core; nothing of
FastAPI, the database or the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.browsing import LogLine, RunNode, RunSummary
from orchestrator.infos import FlowRunInfo, TaskRunInfo


class TaskRunOut(BaseModel):
    """A task run."""

    id: str
    slug: str
    map_index: int = Field(description="-1 unless the task run is one element of a mapped task")
    state: str
    message: str | None
    result: Any = None
    attempts: int
    worker: str | None
    child_flow_run_id: str | None = Field(description="the flow run this task run started")
    start_time: datetime | None
    end_time: datetime | None
    duration: float | None = Field(description="seconds, when started and ended")


class FlowRunOut(BaseModel):
    """A flow run."""

    id: str
    flow_name: str
    project: str
    version: int
    name: str | None
    state: str
    message: str | None
    parameters: dict[str, Any]
    labels: list[str]
    parent_flow_run_id: str | None
    parent_task_run_id: str | None
    scheduled_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    created: datetime
    duration: float | None = Field(description="seconds, when started and ended")


class FlowRunDetail(FlowRunOut):
    """A flow run with its task runs and the ids of its child runs."""

    task_runs: list[TaskRunOut]
    children: list[str] = Field(description="ids of the flow runs its tasks started, oldest first")


class Rollup(BaseModel):
    """The runs under a run (children, theirs, ...), counted by state."""

    total: int
    failed: int = Field(description="how many are Failed, TimedOut or TriggerFailed")
    states: dict[str, int] = Field(description="state -> count, trouble first")


class RunSummaryOut(FlowRunOut):
    """A listed flow run with its tree rolled up."""

    descendants: Rollup


class FlowRunPageOut(BaseModel):
    """A page of flow runs, newest first."""

    runs: list[RunSummaryOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class TreeNodeOut(FlowRunOut):
    """A flow run in a tree: its task runs and, nested, the runs under it."""

    task_runs: list[TaskRunOut]
    children: list[TreeNodeOut]


class LogLineOut(BaseModel):
    """One captured log line of a task run, naming its run and task."""

    id: int
    timestamp: datetime
    level: str
    logger: str | None
    message: str
    attempt: int
    flow_run_id: str
    flow_name: str
    task_run_id: str
    task: str = Field(description="the task's slug, `slug[i]` for a mapped element")


class LogPageOut(BaseModel):
    """Log lines, oldest first."""

    lines: list[LogLineOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the lines after these")


class FlowRunCreate(BaseModel):
    """What ``POST /api/flow-runs`` takes: the same as ``Client.create_flow_run``."""

    model_config = ConfigDict(extra="forbid")

    flow_name: str = Field(min_length=1, max_length=200)
    project_name: str = Field(min_length=1, max_length=200)
    parameters: dict[str, Any] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)
    idempotency_key: str | None = Field(default=None, max_length=400)
    run_name: str | None = Field(default=None, max_length=200)
    scheduled_start_time: datetime | None = Field(
        default=None, description="an aware time (with its offset); the run starts no earlier"
    )


class CancelOut(BaseModel):
    """The answer to a cancel request."""

    id: str
    cancelled: bool = Field(description="false when the run had finished already")
    state: str


class RestartOut(BaseModel):
    """The answer to a restart request."""

    id: str
    attempt: int = Field(description="which try of the run this is (2 for its first restart)")
    children: list[str] = Field(description="the child runs restarted in place with it")
    state: str


class ParameterOut(BaseModel):
    """A flow's Parameter."""

    name: str
    required: bool
    default: Any = None


class FlowOut(BaseModel):
    """A registered flow version."""

    project: str
    name: str
    version: int
    archived: bool
    parameters: list[ParameterOut]
    labels: list[str]
    schedule: str | None = Field(description="the schedule in words, if it has one")
    schedule_paused: bool
    created: datetime


class FireTime(BaseModel):
    """One next fire time, in the schedule's zone and in UTC."""

    local: datetime
    utc: datetime


class ScheduleOut(BaseModel):
    """A scheduled flow (its newest version) with its next fire times."""

    project: str
    flow_name: str
    version: int
    schedule: str
    timezone: str
    paused: bool
    next: list[FireTime]
    error: str | None = Field(default=None, description="why the schedule could not be read")


class HolderOut(BaseModel):
    """A flow run holding or waiting for a slot."""

    id: str
    flow_name: str | None
    state: str | None


class LimitOut(BaseModel):
    """A label's concurrency limit and who holds its slots."""

    label: str
    limit: int
    used: int
    free: int
    waiting: int
    holders: list[HolderOut]
    waiting_runs: list[HolderOut] = Field(description="the first waiting runs, in arrival order")


def task_out(tr: TaskRunInfo) -> TaskRunOut:
    """A task run as the API shows it."""
    return TaskRunOut(
        id=tr.id,
        slug=tr.slug,
        map_index=tr.map_index,
        state=tr.state.value,
        message=tr.message,
        result=tr.result,
        attempts=tr.attempts,
        worker=tr.worker,
        child_flow_run_id=tr.child_flow_run_id,
        start_time=tr.start_time,
        end_time=tr.end_time,
        duration=tr.duration,
    )


def _run_fields(info: FlowRunInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "flow_name": info.flow_name,
        "project": info.project,
        "version": info.version,
        "name": info.name,
        "state": info.state.value,
        "message": info.message,
        "parameters": info.parameters,
        "labels": info.labels,
        "parent_flow_run_id": info.parent_flow_run_id,
        "parent_task_run_id": info.parent_task_run_id,
        "scheduled_start_time": info.scheduled_start_time,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "created": info.created,
        "duration": info.duration,
    }


def run_out(info: FlowRunInfo) -> FlowRunOut:
    """A flow run as the API lists it."""
    return FlowRunOut(**_run_fields(info))


def detail_out(info: FlowRunInfo) -> FlowRunDetail:
    """A flow run with its task runs and child ids."""
    tasks = [task_out(t) for t in info.task_runs]
    return FlowRunDetail(**_run_fields(info), task_runs=tasks, children=list(info.children))


def rollup_out(summary: RunSummary) -> Rollup:
    """A listed run's descendants, counted by state."""
    states = {s.value: n for s, n in summary.rollup()}
    return Rollup(total=summary.descendant_count, failed=summary.failed_descendants, states=states)


def summary_out(summary: RunSummary) -> RunSummaryOut:
    """A listed run with its tree rolled up."""
    return RunSummaryOut(**_run_fields(summary.info), descendants=rollup_out(summary))


def tree_out(node: RunNode) -> TreeNodeOut:
    """A run tree, nested."""
    return TreeNodeOut(
        **_run_fields(node.info),
        task_runs=[task_out(t.info) for t in node.tasks],
        children=[tree_out(c) for c in node.children()],
    )


def log_out(line: LogLine) -> LogLineOut:
    """A log line naming its run and task."""
    return LogLineOut(
        id=line.id,
        timestamp=line.timestamp,
        level=line.level,
        logger=line.logger,
        message=line.message,
        attempt=line.attempt,
        flow_run_id=line.flow_run_id,
        flow_name=line.flow_name,
        task_run_id=line.task_run_id,
        task=line.task,
    )
