"""``flow.run()``: run a flow in this process with no broker, through the same
task-run engine the workers use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.context import RunContext, entered
from orchestrator.engine import (
    Outcome,
    TaskTimedOut,
    Upstream,
    check_upstream,
    flow_state,
    gather_inputs,
    run_code,
)
from orchestrator.parameters import resolve_parameters
from orchestrator.states import FlowRunState, State, TaskRunState

if TYPE_CHECKING:
    from orchestrator.flow import Flow
    from orchestrator.task import Task


def _with_timeout(seconds: float | None) -> Callable[[Callable[[], Any]], Any]:
    def call(fn: Callable[[], Any]) -> Any:
        if seconds is None:
            return fn()
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=target, daemon=True, name="orchestrator-task")
        thread.start()
        thread.join(seconds)
        if thread.is_alive():
            raise TaskTimedOut()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    return call


def run_flow(
    flow: Flow,
    parameters: dict[str, Any],
    flow_run_id: str | None = None,
    on_wait: Callable[[Task, str], Outcome] | None = None,
) -> FlowRunState:
    """Run every task of ``flow`` in topological order in this process.

    Args:
        flow: the flow.
        parameters: the run's parameter values.
        flow_run_id: the id of a stored run this local run executes, if any.
        on_wait: runs a child flow run a task asked to mirror and returns its outcome;
            by default the child runs in this process.

    Returns:
        The final flow state with every task's state and result.
    """
    flow.validate()
    values = resolve_parameters(flow.name, [p.declaration() for p in flow.parameters()], parameters)
    states: dict[Task, TaskRunState] = {}
    for task in flow.sorted_tasks():
        upstream = [
            Upstream(
                e.upstream.slug or "", e.key, states[e.upstream].state, states[e.upstream].result
            )
            for e in flow.upstream_edges(task)
        ]
        outcome = check_upstream(task, upstream)
        attempt = 0
        while outcome is None or outcome.state is State.RETRYING:
            if outcome is not None and outcome.retry_in:
                time.sleep(outcome.retry_in)
            attempt += 1
            ctx = RunContext(
                flow_run_id=flow_run_id,
                flow_name=flow.name,
                task_slug=task.slug or task.name,
                parameters=values,
                attempt=attempt,
                local=True,
            )
            with entered(ctx):
                outcome = run_code(
                    task,
                    gather_inputs(flow.constants.get(task, {}), upstream),
                    attempt,
                    call=_with_timeout(task.timeout),
                )
            if outcome.wait_for is not None:
                outcome = (on_wait or _run_child_here)(task, outcome.wait_for.flow_run_id)
        states[task] = TaskRunState(outcome.state, outcome.result, outcome.message, attempt)
    final, message = flow_state({t.slug or "": states[t].state for t in flow.reference_tasks()})
    return FlowRunState(final, message, states)


def _run_child_here(task: Task, flow_run_id: str) -> Outcome:
    from orchestrator.client import Client

    return Client().run_in_process(flow_run_id)
