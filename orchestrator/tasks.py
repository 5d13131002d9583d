"""Tasks that work with other flow runs: :class:`StartFlowRun`, and the task forms
:func:`create_flow_run`, :func:`wait_for_flow_run` and :func:`get_task_run_result`.
They know nothing of Celery: to wait for a child they return
:class:`~orchestrator.engine.WaitForFlowRun`, and the worker splices the child run
into the parent's canvas, so a waiting parent holds no worker process. Client
layer: imports the core and :class:`~orchestrator.client.Client`, and reaches the
database and Redis only through the client's backends."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import redis

import orchestrator.constants as constants
from orchestrator.cancelling import CANCEL, POLICIES
from orchestrator.client import Client
from orchestrator.config import max_depth
from orchestrator.context import current
from orchestrator.engine import ChildTaskRun, WaitForFlowRun
from orchestrator.errors import (
    BackendUnavailable,
    FlowRunNotFound,
    FlowValidationError,
    ParameterError,
)
from orchestrator.labels import check_labels
from orchestrator.requests import FlowRunRequest, NewFlowRun, start_time
from orchestrator.signals import FAIL
from orchestrator.states import State
from orchestrator.task import Task, refuse_nested_task, task

_UNSET: Any = object()


def default_idempotency_key(suffix: str = "") -> str | None:
    """The key a task uses by default: parent flow run, task slug and map index."""
    ctx = current()
    if ctx is None or ctx.flow_run_id is None:
        return None
    return f"{ctx.flow_run_id}:{ctx.task_slug}:{ctx.map_index}{suffix}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.strip().lower()) or "flow"


def _request(
    flow_name: str,
    project_name: str,
    parameters: dict[str, Any] | None,
    run_name: str | None,
    scheduled_start_time: datetime | timedelta | None,
    labels: str | Iterable[str] | None,
    idempotency_key: str | None,
) -> FlowRunRequest:
    """The request for a child run under the current task run."""
    ctx = current()
    if parameters is not None and not isinstance(parameters, dict):
        raise FAIL(
            f"parameters for flow {flow_name!r} must be a dict, got {type(parameters).__name__}"
        )
    return FlowRunRequest(
        flow_name=flow_name,
        project_name=project_name,
        parameters=parameters,
        idempotency_key=idempotency_key,
        run_name=run_name,
        scheduled_start_time=scheduled_start_time,
        labels=labels,
        parent_flow_run_id=ctx.flow_run_id if ctx else None,
        parent_task_run_id=ctx.task_run_id if ctx else None,
    )


def check_depth(client: Client, flow_name: str) -> None:
    """Fail the current task when a child run of ``flow_name`` would make its tree
    deeper than ``ORCHESTRATOR_MAX_DEPTH`` levels of children, naming the chain of flows.

    Raises:
        FAIL: the tree would grow too deep.
    """
    ctx = current()
    if ctx is None or ctx.flow_run_id is None or ctx.local:
        return
    limit = max_depth()
    store = client.backends.store
    flow_ids: list[str] = []
    run_id: str | None = ctx.flow_run_id
    while run_id is not None and len(flow_ids) <= limit:
        run = store.flow_runs.get(run_id)
        flow_ids.append(run.flow_id)
        run_id = run.parent_flow_run_id
    if len(flow_ids) <= limit:
        return
    names = [store.flows.get(f).name for f in reversed(flow_ids)]
    head = "" if run_id is None else "... -> "
    chain = head + " -> ".join([*names, flow_name])
    raise FAIL(
        f"flow run tree too deep: starting {flow_name!r} here would make {len(names)} "
        f"levels of child runs (ORCHESTRATOR_MAX_DEPTH={limit}): {chain}"
    )


def _start(client: Client, new: NewFlowRun, flow_name: str) -> str:
    """Store a prepared child run (or find the one holding its key) and send it."""
    ctx = current()
    store = client.backends.store
    key = new.idempotency_key
    try:
        if key and ctx is not None and ctx.attempt > 1:
            # the unique key in the database is the guarantee; on a retry, when an
            # earlier attempt may still be creating the child, a lock cuts contention
            lock = client.backends.redis.lock(
                constants.CHILD_LOCK.format(key=key), timeout=60, blocking_timeout=60
            )
            with lock:
                run, _ = store.flow_runs.insert(new)
        else:
            run, _ = store.flow_runs.insert(new)
    except redis.RedisError as exc:
        raise BackendUnavailable(f"Redis failed while starting flow {flow_name!r}: {exc}") from exc
    if State(run.state) is State.SUBMITTED:
        client.backends.dispatch(run.id, flow_name, run.trace_context)
    return run.id


class StartFlowRun(Task):
    """Start a run of the newest version of another flow, found by name and project.

    Args:
        flow_name: the flow to run.
        project_name: its project.
        parameters: its parameter values; bind an upstream task to ``parameters``
            to pass values computed at run time (a task inside the dict is refused:
            build the dict in a task).
        wait: False returns the child run id once created and sent; True ends when
            the child ends, takes its state, and returns ``{"flow_run_id", "state",
            "task_results"}``.
        run_name: a name for the child run.
        scheduled_start_time: start the child no earlier than this: an aware
            datetime, or a timedelta from when the task runs.
        labels: extra labels for the child run (a string is one label).
        idempotency_key: overrides the default key (parent flow run, task slug,
            map index) that makes a retried or redelivered task find its child.
        on_parent_cancel: what a cancel of the parent run does to the child:
            ``"cancel"`` (the default) cancels it too, its running code stopped;
            ``"abandon"`` leaves it running to its end.
        **task_options: the usual :class:`~orchestrator.task.Task` options.
    """

    def __init__(
        self,
        flow_name: str | None = None,
        project_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        wait: bool = False,
        run_name: str | None = None,
        scheduled_start_time: datetime | timedelta | None = None,
        labels: str | Iterable[str] | None = None,
        idempotency_key: str | None = None,
        on_parent_cancel: str = CANCEL,
        **task_options: Any,
    ) -> None:
        if on_parent_cancel not in POLICIES:
            raise FlowValidationError(
                f"StartFlowRun of flow {flow_name!r}: on_parent_cancel must be "
                f"{' or '.join(map(repr, POLICIES))}, got {on_parent_cancel!r}"
            )
        refuse_nested_task(f"StartFlowRun of flow {flow_name!r}", "parameters", parameters)
        start_time(scheduled_start_time)  # refuse a naive datetime now, not at run time
        self.flow_name = flow_name
        self.project_name = project_name
        self.parameters = parameters
        self.wait = wait
        self.run_name = run_name
        self.scheduled_start_time = scheduled_start_time
        self.labels = list(check_labels(labels))
        self.idempotency_key = idempotency_key
        self.on_parent_cancel = on_parent_cancel
        task_options.setdefault("name", f"flow_{_slug(flow_name)}" if flow_name else None)
        super().__init__(**task_options)

    def structure_options(self) -> dict[str, Any]:
        """What of this task's configuration belongs to its flow's structure."""
        options = {
            "flow_name": self.flow_name,
            "project_name": self.project_name,
            "parameters": self.parameters,
            "wait": self.wait,
            "labels": self.labels,
        }
        if self.on_parent_cancel != CANCEL:  # only when set: other flows keep their hash
            options["on_parent_cancel"] = self.on_parent_cancel
        return options

    def run(
        self,
        flow_name: str | None = None,
        project_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        wait: bool | None = None,
        run_name: str | None = None,
        scheduled_start_time: datetime | timedelta | None = None,
        labels: str | Iterable[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Create (or find) the child flow run; with ``wait``, mirror it."""
        flow_name = flow_name or self.flow_name
        project_name = project_name or self.project_name
        if not flow_name or not project_name:
            raise FAIL("StartFlowRun needs a flow_name and a project_name")
        wait = self.wait if wait is None else wait
        key = idempotency_key or self.idempotency_key or default_idempotency_key()
        request = _request(
            flow_name,
            project_name,
            parameters if parameters is not None else self.parameters,
            run_name or self.run_name,
            self.scheduled_start_time if scheduled_start_time is None else scheduled_start_time,
            [*check_labels(labels), *self.labels],
            key,
        )
        client = Client()
        check_depth(client, flow_name)
        new = client.prepare_flow_run(request)
        if wait:  # stored by whoever waits for it (a worker: with the child's start)
            return WaitForFlowRun(new.id, new=new)
        return _start(client, new, flow_name)


@task
def create_flow_run(
    flow_name: str,
    project_name: str,
    parameters: dict[str, Any] | None = None,
    run_name: str | None = None,
    labels: str | list[str] | None = None,
    idempotency_key: str | None = None,
    scheduled_start_time: datetime | timedelta | None = None,
) -> str:
    """Create and send a run of another flow; returns its id (idempotent per task run).

    ``scheduled_start_time`` may be a timedelta from when the task runs; a string
    ``labels`` is one label."""
    key = idempotency_key or default_idempotency_key()
    request = _request(
        flow_name, project_name, parameters, run_name, scheduled_start_time, labels, key
    )
    client = Client()
    check_depth(client, flow_name)
    return _start(client, client.prepare_flow_run(request), flow_name)


@task
def wait_for_flow_run(flow_run_id: str) -> WaitForFlowRun:
    """End when the flow run ends and take its state; returns its structured result."""
    if not isinstance(flow_run_id, str):
        raise ParameterError(
            f"wait_for_flow_run needs a flow run id, got {type(flow_run_id).__name__}"
        )
    return WaitForFlowRun(flow_run_id)


@task
def get_task_run_result(flow_run_id: str, task_slug: str, map_index: int = -1) -> WaitForFlowRun:
    """The result of one task run of a flow run, once that flow run has ended.

    An unfinished flow run is waited for as ``wait_for_flow_run`` waits (on workers
    no process is held meanwhile). The task then takes the task run's result when
    the flow run succeeded, or the flow run's state when it did not (Failed, naming
    the task run, when the flow run has no such task run or it did not succeed)."""
    if not isinstance(flow_run_id, str) or not isinstance(task_slug, str):
        raise ParameterError(
            "get_task_run_result needs a flow run id and a task slug, got "
            f"{type(flow_run_id).__name__} and {type(task_slug).__name__}"
        )
    try:
        Client().backends.store.flow_runs.get(flow_run_id)
    except FlowRunNotFound as exc:
        raise FAIL(str(exc)) from None
    return WaitForFlowRun(flow_run_id, takes=ChildTaskRun(task_slug, int(map_index)))


__all__ = ["StartFlowRun", "create_flow_run", "get_task_run_result", "wait_for_flow_run"]
