"""The Python API that registers flows, enqueues flow runs and reads their state."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis

from orchestrator import constants
from orchestrator.config import Settings
from orchestrator.errors import (
    FlowRunTimeout,
    ParameterError,
    SerializationError,
    TaskRunNotFound,
)
from orchestrator.parameters import resolve_parameters
from orchestrator.runtime import Backends, backends
from orchestrator.states import State
from orchestrator.store import aware, new_flow_run, utcnow

if TYPE_CHECKING:
    from orchestrator.engine import Outcome
    from orchestrator.flow import Flow
    from orchestrator.limits import LimitInfo
    from orchestrator.models import FlowRun, TaskRun


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
        if self.start_time and self.end_time:
            return (self.end_time - self.start_time).total_seconds()
        return None


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
        if self.start_time and self.end_time:
            return (self.end_time - self.start_time).total_seconds()
        return None

    def task_run(self, slug: str, map_index: int = -1) -> TaskRunInfo:
        """The task run with this slug."""
        for tr in self.task_runs:
            if tr.slug == slug and tr.map_index == map_index:
                return tr
        raise TaskRunNotFound(f"flow run {self.id} has no task run {slug!r}")


def task_run_info(tr: TaskRun) -> TaskRunInfo:
    """A stored task run as a :class:`TaskRunInfo`."""
    return TaskRunInfo(
        id=tr.id,
        slug=tr.slug,
        map_index=tr.map_index,
        state=State(tr.state),
        message=tr.message,
        result=tr.result,
        attempts=tr.attempts,
        worker=tr.worker,
        child_flow_run_id=tr.child_flow_run_id,
        start_time=aware(tr.start_time),
        end_time=aware(tr.end_time),
    )


class Client:
    """Registers flows, creates and watches flow runs.

    Args:
        settings: where Redis and the database are; by default from the environment.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._backends: Backends | None = None

    @property
    def backends(self) -> Backends:
        """The connections (made on first use)."""
        if self._backends is None:
            self._backends = backends(self.settings)
        return self._backends

    # --- flows ----------------------------------------------------------------

    def register(self, flow: Flow, project_name: str, import_ref: str | None = None) -> int:
        """Store ``flow`` in a project and return its version (see :meth:`Flow.register`)."""
        from orchestrator.loader import import_ref_for

        flow.validate()
        ref = import_ref or import_ref_for(flow)
        version = self.backends.store.register_flow(
            project_name=project_name,
            name=flow.name,
            structure_hash=flow.structural_hash(),
            structure=json.loads(json.dumps(flow.structure(), default=repr)),
            import_ref=ref,
            parameters=[p.declaration() for p in flow.parameters()],
            schedule=flow.schedule.to_dict() if flow.schedule is not None else None,
            labels=list(flow.labels),
        )
        return version.version

    # --- flow runs --------------------------------------------------------------

    def create_flow_run(
        self,
        flow_name: str,
        project_name: str,
        parameters: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        run_name: str | None = None,
        scheduled_start_time: datetime | None = None,
        labels: Iterable[str] | None = None,
        parent_flow_run_id: str | None = None,
        parent_task_run_id: str | None = None,
        dispatch: bool = True,
    ) -> str:
        """Create a run of the newest version of a flow and send it to the workers.

        Args:
            flow_name: the flow's name.
            project_name: its project.
            parameters: values for its Parameters (checked before anything is stored).
            idempotency_key: a key already used returns that run instead of a new one.
            run_name: a readable name for the run.
            scheduled_start_time: start no earlier than this (an aware datetime).
            labels: extra labels (concurrency limits count runs per label).
            parent_flow_run_id: the flow run that started this one.
            parent_task_run_id: the task run that started this one.
            dispatch: send it to the workers now (False leaves it for the caller).

        Returns:
            The flow run id.
        """
        new = self.prepare_flow_run(
            flow_name, project_name, parameters, idempotency_key, run_name,
            scheduled_start_time, labels, parent_flow_run_id, parent_task_run_id,
        )  # fmt: skip
        run, created = self.backends.store.insert_flow_run(new)
        if created and dispatch and State(run.state) is State.SUBMITTED:
            self.backends.dispatch(run.id, flow_name)
        return run.id

    def prepare_flow_run(
        self,
        flow_name: str,
        project_name: str,
        parameters: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        run_name: str | None = None,
        scheduled_start_time: datetime | None = None,
        labels: Iterable[str] | None = None,
        parent_flow_run_id: str | None = None,
        parent_task_run_id: str | None = None,
    ) -> FlowRun:
        """Check and build a run of the newest version of a flow, without storing it
        (:meth:`create_flow_run` stores and sends it; a worker may store it with the
        transaction that starts it). Takes the arguments of :meth:`create_flow_run`.

        Returns:
            The run, Submitted (Scheduled when it starts later).
        """
        from orchestrator.limits import check_label

        run_labels = [check_label(label) for label in labels or ()]
        flow = self.backends.store.newest_flow(project_name, flow_name)
        values = resolve_parameters(flow_name, flow.parameters, parameters)
        if run_name is not None and not isinstance(run_name, str):
            raise SerializationError(f"run_name must be a string, got {type(run_name).__name__}")
        if scheduled_start_time is not None and (
            not isinstance(scheduled_start_time, datetime) or scheduled_start_time.tzinfo is None
        ):
            raise ParameterError(
                f"scheduled_start_time must be a timezone-aware datetime, got {scheduled_start_time!r}"
            )
        future = scheduled_start_time is not None and scheduled_start_time > utcnow()
        return new_flow_run(
            flow,
            values,
            state=State.SCHEDULED if future else State.SUBMITTED,
            idempotency_key=idempotency_key,
            name=run_name,
            labels=run_labels,
            scheduled_start_time=scheduled_start_time,
            parent_flow_run_id=parent_flow_run_id,
            parent_task_run_id=parent_task_run_id,
        )

    def get_flow_run(self, flow_run_id: str, task_runs: bool = True) -> FlowRunInfo:
        """A flow run with its state, parameters, times, children and task runs."""
        store = self.backends.store
        run = store.get_flow_run(flow_run_id)
        return self._info(run, task_runs)

    def _info(self, run: FlowRun, task_runs: bool = True) -> FlowRunInfo:
        store = self.backends.store
        flow = store.flow_version(run.flow_id)
        children = [c.id for c in store.child_runs(run.id)]
        trs = [task_run_info(t) for t in store.task_runs(run.id)] if task_runs else []
        return FlowRunInfo(
            id=run.id,
            flow_name=flow.name,
            project=store.project_name(flow.project_id),
            version=flow.version,
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
            children=children,
            task_runs=trs,
        )

    def wait_for_flow_run(
        self,
        flow_run_id: str,
        timeout: float | None = None,
        on_change: Callable[[State], None] | None = None,
    ) -> FlowRunInfo:
        """Wait until a flow run is final, watching Redis notices (the database as fallback).

        Args:
            flow_run_id: the run.
            timeout: seconds to wait at most (None: no limit).
            on_change: called with each new state seen.

        Returns:
            The final flow run.

        Raises:
            FlowRunTimeout: when the run is not final within ``timeout``.
        """
        store = self.backends.store
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = None
        try:
            try:
                pubsub = self.backends.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(constants.FLOW_RUN_CHANNEL.format(id=flow_run_id))
            except redis.RedisError:
                pubsub = None
            seen: State | None = None
            while True:
                state = State(store.get_flow_run(flow_run_id).state)
                if state != seen:
                    seen = state
                    if on_change:
                        on_change(state)
                if state.is_final:
                    return self.get_flow_run(flow_run_id)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise FlowRunTimeout(
                        f"flow run {flow_run_id} is still {state.value} after {timeout:g}s"
                    )
                step = 2.0 if remaining is None else max(0.01, min(2.0, remaining))
                if pubsub is not None:
                    try:
                        pubsub.get_message(timeout=step)
                        continue
                    except redis.RedisError:
                        pubsub = None
                time.sleep(min(step, 0.5))
        finally:
            if pubsub is not None:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()

    def cancel_flow_run(self, flow_run_id: str, cancel_children: bool = True) -> bool:
        """Cancel a flow run that is not final yet, and by default its unfinished children.

        Returns:
            True when the run was cancelled by this call.
        """
        b = self.backends
        run = b.store.get_flow_run(flow_run_id)
        cancelled = b.set_flow_run_state(flow_run_id, State.CANCELLED, "cancelled by request")
        if cancelled:
            b.store.cancel_pending_task_runs(flow_run_id, "flow run cancelled")
            b.app.send_task(
                constants.RELEASE_SLOTS, args=[flow_run_id, list(run.labels or [])],
                queue=self.settings.queue,
            )  # fmt: skip
        if cancel_children:
            for child in b.store.child_runs(run.id):
                if not State(child.state).is_final:
                    self.cancel_flow_run(child.id, cancel_children=True)
        return cancelled

    # --- concurrency limits --------------------------------------------------------

    def set_concurrency_limit(self, label: str, limit: int) -> None:
        """Allow at most ``limit`` running flow runs with ``label``; takes effect at once."""
        from orchestrator.limits import set_limit

        set_limit(self.backends.redis, label, limit)
        self.backends.app.send_task(constants.WAKE_LABEL, args=[label], queue=self.settings.queue)

    def delete_concurrency_limit(self, label: str) -> bool:
        """Remove a label's limit (waiting runs start); False when it had none."""
        from orchestrator.limits import delete_limit

        deleted = delete_limit(self.backends.redis, label)
        self.backends.app.send_task(constants.WAKE_LABEL, args=[label], queue=self.settings.queue)
        return deleted

    def concurrency_limits(self) -> list[LimitInfo]:
        """Every limit with its used slots and waiting runs."""
        from orchestrator.limits import list_limits

        return list_limits(self.backends.redis)

    def get_task_run_result(self, flow_run_id: str, task_slug: str, map_index: int = -1) -> Any:
        """The recorded result of one task run."""
        for tr in self.backends.store.task_runs(flow_run_id, [task_slug]):
            if tr.map_index == map_index:
                return tr.result
        raise TaskRunNotFound(f"flow run {flow_run_id} has no task run {task_slug!r}")

    def list_flow_runs(self, limit: int = 20, state: State | None = None) -> list[FlowRunInfo]:
        """The newest flow runs (without their task runs)."""
        return [
            self._info(r, task_runs=False)
            for r, _ in self.backends.store.list_flow_runs(limit, state)
        ]

    def run_in_process(self, flow_run_id: str) -> Outcome:
        """Run a stored flow run in this process (how ``flow.run()`` mirrors a child)."""
        from orchestrator.engine import Outcome, mirror_outcome
        from orchestrator.loader import load_flow
        from orchestrator.local import run_flow

        b = self.backends
        run = b.store.get_flow_run(flow_run_id)
        if not State(run.state).is_final:
            flow = load_flow(b.store.flow_version(run.flow_id).import_ref)
            b.set_flow_run_state(flow_run_id, State.RUNNING, "running in process")
            final = run_flow(flow, dict(run.parameters or {}), flow_run_id=flow_run_id)
            b.store.create_task_runs(
                flow_run_id, [(t.slug or t.name, t.name) for t in final.result]
            )
            for t, st in final.result.items():
                from orchestrator.store import task_run_id

                b.store.finish_task_run(
                    task_run_id(flow_run_id, t.slug or t.name),
                    flow_run_id,
                    st.state,
                    st.message,
                    st.result,
                )
            b.set_flow_run_state(flow_run_id, final.state, final.message)
        info = self.get_flow_run(flow_run_id)
        state, message, result = mirror_outcome(
            info.id, info.state, info.message, {t.slug: t.result for t in info.task_runs}
        )
        return Outcome(state, result=result, message=message)
