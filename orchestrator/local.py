"""``flow.run()``: run a flow in this process with no broker, through the same
task-run engine the workers use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.context import RunContext, entered
from orchestrator.engine import (
    MapError,
    Outcome,
    TaskTimedOut,
    Upstream,
    WaitForFlowRun,
    check_upstream,
    element_upstream,
    flow_state,
    gather_inputs,
    map_width,
    mapped_lists,
    mapped_outcome,
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
    on_wait: Callable[[Task, WaitForFlowRun], Outcome] | None = None,
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
    children: dict[Task, list[TaskRunState]] = {}

    def attempt(
        task: Task, constants: dict[str, Any], upstream: list[Upstream], index: int
    ) -> TaskRunState:
        outcome = check_upstream(task, upstream)
        tries = 0
        while outcome is None or outcome.state is State.RETRYING:
            if outcome is not None and outcome.retry_in:
                time.sleep(outcome.retry_in)
            tries += 1
            ctx = RunContext(
                flow_run_id=flow_run_id,
                flow_name=flow.name,
                task_slug=task.slug or task.name,
                map_index=index,
                parameters=values,
                attempt=tries,
                local=True,
            )
            with entered(ctx):
                outcome = run_code(
                    task,
                    gather_inputs(constants, upstream),
                    tries,
                    call=_with_timeout(task.timeout),
                )
            if outcome.wait_for is not None:
                outcome = (on_wait or _run_child_here)(task, outcome.wait_for)
        return TaskRunState(outcome.state, outcome.result, outcome.message, tries)

    for task in flow.sorted_tasks():
        upstream = [
            Upstream(e.upstream.slug or "", e.key, states[e.upstream].state,
                     states[e.upstream].result, e.mapped, e.flatten)
            for e in flow.upstream_edges(task)
        ]  # fmt: skip
        constants = flow.constants.get(task, {})
        if task not in flow.mapped:
            states[task] = attempt(task, constants, upstream, -1)
            continue
        states[task], children[task] = _run_mapped(
            flow, task, constants, upstream, children, attempt
        )
    final, message = flow_state({t.slug or "": states[t].state for t in flow.reference_tasks()})
    return FlowRunState(final, message, states)


def _run_mapped(
    flow: Flow,
    task: Task,
    constants: dict[str, Any],
    upstream: list[Upstream],
    children: dict[Task, list[TaskRunState]],
    attempt: Callable[[Task, dict[str, Any], list[Upstream], int], TaskRunState],
) -> tuple[TaskRunState, list[TaskRunState]]:
    """Run a mapped task: one child per element, then its own state from theirs."""
    by_slug = {t.slug: t for t in children}
    whole = [u for u in upstream if not (u.mapped and u.slug in by_slug)]
    stop = check_upstream(task, whole)
    if stop is not None:
        return TaskRunState(stop.state, None, stop.message), []
    modes = flow.constant_modes.get(task, {})
    try:
        lists = mapped_lists(task, constants, modes, upstream)
    except MapError as exc:
        return TaskRunState(State.FAILED, None, str(exc)), []
    runs: list[TaskRunState] = []
    for i in range(map_width(lists)):
        element = {k: v[i] for k, v in lists.items()}
        element_states = {
            u.slug: children[by_slug[u.slug]][i].state
            for u in upstream
            if u.mapped and u.slug in by_slug and i < len(children[by_slug[u.slug]])
        }
        ups = element_upstream(upstream, element, element_states)
        consts = {k: element[k] if k in modes else v for k, v in constants.items()}
        runs.append(attempt(task, consts, ups, i))
    outcome = mapped_outcome([(r.state, r.result) for r in runs])
    return TaskRunState(outcome.state, outcome.result, outcome.message, 1), runs


def _run_child_here(task: Task, wait_for: WaitForFlowRun) -> Outcome:
    from orchestrator.client import Client

    client = Client()
    if wait_for.new is not None:
        client.backends.store.insert_flow_run(wait_for.new)
    return client.run_in_process(wait_for.flow_run_id)
