"""``flow.run()``: run a flow in this process with no broker (:func:`run_flow`),
through the same attempt sequence (:func:`orchestrator.engine.attempt`) and map
fan-out (:func:`orchestrator.mapping.expand`) the workers use; a task's timeout
stops its code (:func:`orchestrator.timeouts.limited`), retries sleep here between
attempts, and a child flow run a task mirrors goes to ``on_wait`` (by default the
installed services run it in process); the task's and the flow's state handlers
see every transition. Pure: imports only the core (context, engine, handlers, hooks,
mapping, parameters, states, timeouts); the flow comes as an
argument (its type only for type checking)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orchestrator.hooks as hooks
from orchestrator.context import RunContext, entered
from orchestrator.engine import Outcome, Upstream, WaitForFlowRun, attempt, flow_state, handled
from orchestrator.handlers import flow_changed
from orchestrator.mapping import (
    element_constants,
    element_upstream,
    expand,
    fanning,
    mapped_outcome,
)
from orchestrator.parameters import resolve_parameters
from orchestrator.states import FlowRunState, State, TaskRunState
from orchestrator.timeouts import limited

if TYPE_CHECKING:
    from orchestrator.flow import Flow
    from orchestrator.task import Task

#: What runs a child flow run a task asked to mirror, and gives the task's outcome.
OnWait = Callable[["Task", WaitForFlowRun], Outcome]


def run_task(
    task: Task,
    constants: Mapping[str, Any],
    upstream: Sequence[Upstream],
    ctx: RunContext,
    on_wait: OnWait,
) -> TaskRunState:
    """Run one task run to its end: attempts until one does not ask for a retry,
    sleeping ``retry_in`` between them.

    Args:
        task: the task.
        constants: its constants (for a mapped child: with its element).
        upstream: its upstream task runs' states.
        ctx: the run context of its first attempt.
        on_wait: runs a child flow run the task asks to mirror.

    Returns:
        Its state, with ``attempts`` the number of times its code started.
    """
    started = 0

    @contextlib.contextmanager
    def counted() -> Iterator[None]:
        nonlocal started
        started += 1
        yield

    outcome: Outcome | None = None
    while outcome is None or outcome.state is State.RETRYING:
        if outcome is not None and outcome.retry_in:
            time.sleep(outcome.retry_in)
        this = dataclasses.replace(ctx, attempt=started + 1)
        outcome = attempt(
            task, constants, upstream, this, call=limited(task.timeout), around=counted
        )
        if outcome.wait_for is not None:
            with entered(this):
                outcome = handled(task, State.RUNNING, on_wait(task, outcome.wait_for))
    return TaskRunState(outcome.state, outcome.result, outcome.message, started)


class _LocalRun:
    """One run of a flow in this process: the task states so far."""

    def __init__(
        self, flow: Flow, values: dict[str, Any], flow_run_id: str | None, on_wait: OnWait
    ) -> None:
        self.flow = flow
        self.values = values
        self.flow_run_id = flow_run_id
        self.on_wait = on_wait
        self.states: dict[Task, TaskRunState] = {}
        self.children: dict[str, list[TaskRunState]] = {}  # of mapped tasks that fanned out

    def context(self, task: Task, map_index: int) -> RunContext:
        """The run context of a task run's first attempt."""
        return RunContext(
            flow_run_id=self.flow_run_id,
            flow_name=self.flow.name,
            task_slug=task.slug or task.name,
            map_index=map_index,
            parameters=self.values,
            local=True,
        )

    def upstream(self, task: Task) -> list[Upstream]:
        """The recorded states of ``task``'s upstream task runs (with a mapped
        upstream's children's, when it fanned out)."""
        out = []
        for e in self.flow.upstream_edges(task):
            slug = e.upstream.slug or ""
            st = self.states[e.upstream]
            kids = self.children.get(slug)
            children = None if kids is None else tuple(k.state for k in kids)
            out.append(Upstream(slug, e.key, st.state, st.result, e.mapped, e.flatten, children))
        return out

    def run(self, task: Task) -> None:
        """Run ``task`` (all its children, when mapped) and record its state."""
        constants = self.flow.constants.get(task, {})
        upstream = self.upstream(task)
        if task in self.flow.mapped:
            self.states[task] = self.run_mapped(task, constants, upstream)
        else:
            ctx = self.context(task, -1)
            self.states[task] = run_task(task, constants, upstream, ctx, self.on_wait)

    def run_mapped(
        self, task: Task, constants: Mapping[str, Any], upstream: list[Upstream]
    ) -> TaskRunState:
        """A mapped task: one child per element, then its own state from theirs."""
        modes = self.flow.constant_modes.get(task, {})
        elements = expand(task, constants, modes, upstream)
        ctx = self.context(task, -1)
        if isinstance(elements, Outcome):
            with entered(ctx):
                stop = handled(task, State.PENDING, elements)
            return TaskRunState(stop.state, stop.result, stop.message)
        with entered(ctx):
            mapping = handled(task, State.PENDING, fanning(len(elements)))
        if mapping.state is not State.RUNNING:
            return TaskRunState(mapping.state, mapping.result, mapping.message)
        runs: list[TaskRunState] = []
        for i, element in enumerate(elements):
            ups = element_upstream(upstream, element)
            consts = element_constants(constants, modes, element)
            runs.append(run_task(task, consts, ups, self.context(task, i), self.on_wait))
        self.children[task.slug or ""] = runs
        with entered(ctx):
            outcome = handled(
                task, State.RUNNING, mapped_outcome([(r.state, r.result) for r in runs])
            )
        return TaskRunState(outcome.state, outcome.result, outcome.message, 1, runs)


def run_flow(
    flow: Flow,
    parameters: dict[str, Any],
    flow_run_id: str | None = None,
    on_wait: OnWait | None = None,
) -> FlowRunState:
    """Run every task of ``flow`` in topological order in this process.

    Args:
        flow: the flow.
        parameters: the run's parameter values.
        flow_run_id: the id of a stored run this local run executes, if any.
        on_wait: runs a child flow run a task asked to mirror and returns its outcome;
            by default the installed services run the child in this process.

    Returns:
        The final flow state with every task's state and result.
    """
    flow.validate()
    declarations = [p.declaration() for p in flow.parameters()]
    values = resolve_parameters(flow.name, declarations, parameters)
    local = _LocalRun(flow, values, flow_run_id, on_wait or _run_child)
    ctx = RunContext(flow_run_id, flow.name, "", parameters=values, local=True)
    with entered(ctx):
        running = flow_changed(flow, FlowRunState(State.PENDING), FlowRunState(State.RUNNING))
    if running.state is not State.RUNNING:  # a handler ended the run before its tasks
        return running
    for task in flow.sorted_tasks():
        local.run(task)
    reference = {t.slug or "": local.states[t].state for t in flow.reference_tasks()}
    final, message = flow_state(reference)
    with entered(ctx):
        done = flow_changed(flow, running, FlowRunState(final, message, local.states))
    done.result = done.result or local.states
    return done


def _run_child(task: Task, wait_for: WaitForFlowRun) -> Outcome:
    """The default ``on_wait``: the installed services run the child in process."""
    return hooks.installed().run_child(task, wait_for)
