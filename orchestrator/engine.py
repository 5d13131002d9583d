"""The task-run engine: the one attempt sequence :func:`attempt` (check upstream
skips -> check the trigger -> gather inputs -> run the code -> decide on a retry,
each transition through the task's state handlers, :func:`handled`), shared by
``flow.run()`` and the workers so the two paths cannot drift, with its steps, the
:class:`Outcome` each step turns what happened into (the caller records it),
:class:`WaitForFlowRun` and what a waiting task takes from its child
(:class:`ChildTaskRun`, :func:`mirror_outcome`), the size limit of a result, and
the flow's state from its reference tasks (the map fan-out is in
:mod:`orchestrator.mapping`). Pure: imports only the core (config, context, errors,
handlers, requests, serialization, signals, states, task)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from orchestrator.config import max_value_bytes
from orchestrator.context import RunContext, entered
from orchestrator.errors import BackendUnavailable
from orchestrator.handlers import task_changed
from orchestrator.requests import NewFlowRun
from orchestrator.serialization import over_limit, to_json
from orchestrator.signals import FAIL, SKIP
from orchestrator.states import State, TaskRunState
from orchestrator.task import Task


@dataclass(frozen=True)
class ChildTaskRun:
    """One task run of a child flow run: the one whose result a waiting task takes
    (``get_task_run_result``) instead of the child's whole state.

    Attributes:
        slug: the child's task.
        map_index: its index among a mapped task's children (-1: not one).
    """

    slug: str
    map_index: int = -1

    def as_json(self) -> dict[str, Any]:
        """How it is recorded with the waiting task run and sent to ``mirror``."""
        return {"task_slug": self.slug, "map_index": self.map_index}

    @classmethod
    def from_json(cls, value: Any) -> ChildTaskRun | None:
        """The task run :meth:`as_json` described; None for anything else."""
        if isinstance(value, dict) and isinstance(value.get("task_slug"), str):
            return cls(value["task_slug"], int(value.get("map_index", -1)))
        return None

    def __str__(self) -> str:
        return self.slug if self.map_index < 0 else f"{self.slug}[{self.map_index}]"


@dataclass(frozen=True)
class WaitForFlowRun:
    """What a task returns to say "take flow run ``flow_run_id``'s end here".

    On workers the node task waits without holding a worker process: it splices the
    child run's canvas in its own place (a child not started yet starts there), or
    looks again later while the child runs elsewhere; in ``flow.run()`` the child
    runs in process. The task's final state becomes the child's (see
    :func:`mirror_outcome`).

    Attributes:
        new: the run when it is built and not stored yet
            (:meth:`~orchestrator.client.Client.prepare_flow_run`): whoever acts on
            this stores it first (a worker, in the transaction that starts it).
        takes: take this task run's result when the child succeeds, instead of the
            child's structured result.
    """

    flow_run_id: str
    new: NewFlowRun | None = None
    takes: ChildTaskRun | None = None


@dataclass(frozen=True)
class Upstream:
    """The recorded state of one upstream task run, as an edge sees it.

    Attributes:
        children: the states of a mapped upstream's children, in order, when it
            fanned out (None otherwise): an edge that takes the upstream whole sees
            all of them, as in Prefect 1 (a reduce task after a map with one skipped
            child is skipped).
    """

    slug: str
    key: str | None
    state: State
    result: Any = None
    mapped: bool = False
    flatten: bool = False
    children: tuple[State, ...] | None = None

    @property
    def states(self) -> tuple[State, ...]:
        """What the downstream trigger sees of this edge: the children's states of a
        mapped upstream, else its own."""
        return self.children if self.children is not None else (self.state,)


@dataclass
class Outcome:
    """What one attempt of a task run came to.

    Attributes:
        state: the state to record.
        result: the JSON-compatible result (for Success).
        message: a one-line explanation.
        retry_in: seconds to wait before the next attempt (for Retrying).
        wait_for: a flow run whose final state this task run takes.
    """

    state: State
    result: Any = None
    message: str | None = None
    retry_in: float | None = None
    wait_for: WaitForFlowRun | None = None


class TaskTimedOut(Exception):
    """Raised by a runner when a task's code ran past its timeout."""


def check_upstream(task: Task, upstream: Sequence[Upstream]) -> Outcome | None:
    """Decide from the upstream states whether the task is skipped or trigger-failed.

    Returns:
        An outcome ending the run, or None when the task should run.
    """
    unfinished = [u.slug for u in upstream if not u.state.is_final]
    if unfinished:
        raise RuntimeError(f"task {task.slug!r} started before upstream {unfinished} finished")
    states = [s for u in upstream for s in u.states]
    if task.skip_on_upstream_skip and State.SKIPPED in states:
        skipped = [u.slug for u in upstream if State.SKIPPED in u.states]
        return Outcome(State.SKIPPED, message=f"upstream task skipped: {', '.join(skipped)}")
    name = getattr(task.trigger, "__name__", "trigger")
    try:
        run = task.trigger(states)
    except SKIP as sig:
        return Outcome(State.SKIPPED, message=str(sig) or "skipped by the trigger")
    except FAIL as sig:
        return Outcome(State.FAILED, message=str(sig) or f"failed by trigger {name}")
    except Exception as exc:  # a broken trigger fails its task, not the run (Prefect 1)
        message = f"trigger {name} raised {type(exc).__name__}: {exc}".splitlines()[0][:2000]
        return Outcome(State.TRIGGER_FAILED, message=message)
    if not run:
        summary = ", ".join(f"{u.slug}={_summary(u)}" for u in upstream)
        return Outcome(State.TRIGGER_FAILED, message=f"trigger {name} not met ({summary})")
    return None


def _summary(u: Upstream) -> str:
    """One upstream's state(s) in a trigger message: its own, or its children's counts."""
    if u.children is None:
        return u.state.value
    counts: dict[str, int] = {}
    for s in u.children:
        counts[s.value] = counts.get(s.value, 0) + 1
    return "[" + ", ".join(f"{n} {v}" for v, n in counts.items()) + "]"


def gather_inputs(constants: Mapping[str, Any], upstream: Sequence[Upstream]) -> dict[str, Any]:
    """The keyword arguments for ``run()``: constants plus the data edges' results."""
    inputs = dict(constants)
    for u in upstream:
        if u.key is not None:
            inputs[u.key] = u.result
    return inputs


def run_code(
    task: Task,
    inputs: Mapping[str, Any],
    attempt: int,
    call: Callable[[Callable[[], Any]], Any] | None = None,
    timeout_errors: tuple[type[BaseException], ...] = (),
    max_bytes: int | None = None,
) -> Outcome:
    """Run the task's code once and turn what happened into an outcome.

    Args:
        task: the task.
        inputs: its keyword arguments.
        attempt: 1 for the first attempt.
        call: how to invoke the code (the local runner enforces timeouts here).
        timeout_errors: exceptions that mean the time limit was hit.
        max_bytes: the largest JSON encoding of a result accepted; by default the
            environment's ``ORCHESTRATOR_MAX_VALUE_BYTES``.

    Returns:
        Success with the result, Skipped, Failed (also for a result that is not
        JSON or is too large), TimedOut or Retrying.
    """
    invoke = call or (lambda fn: fn())
    timeouts: tuple[type[BaseException], ...] = (TaskTimedOut, *timeout_errors)
    try:
        result = invoke(lambda: task.run(**inputs))
    except BackendUnavailable:
        raise  # an infrastructure fault, not the task's: the caller retries the run
    except SKIP as sig:
        return Outcome(State.SKIPPED, message=str(sig) or "skipped by the task")
    except FAIL as sig:
        return Outcome(State.FAILED, message=str(sig) or "failed by the task")
    except timeouts:
        return _maybe_retry(task, attempt, State.TIMED_OUT, f"timed out after {task.timeout:g}s")
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]
        return _maybe_retry(task, attempt, State.FAILED, message)
    if isinstance(result, WaitForFlowRun):
        return Outcome(State.RUNNING, wait_for=result, message=f"waiting for {result.flow_run_id}")
    return _result_outcome(task, result, max_value_bytes() if max_bytes is None else max_bytes)


def _result_outcome(task: Task, result: Any, max_bytes: int) -> Outcome:
    """Success with ``result``, or Failed when it is not JSON or is too large."""
    what = f"result of task {task.slug!r}"
    try:
        encoded = to_json(result, what)
    except TypeError as exc:
        return Outcome(State.FAILED, message=str(exc))
    too_large = over_limit(encoded, what, max_bytes)
    if too_large:
        return Outcome(State.FAILED, message=too_large)
    return Outcome(State.SUCCESS, result=result)


def _maybe_retry(task: Task, attempt: int, final: State, message: str) -> Outcome:
    if attempt <= task.max_retries:
        return Outcome(
            State.RETRYING,
            message=f"{message} (attempt {attempt} of {task.max_retries + 1})",
            retry_in=task.retry_delay or 0.0,
        )
    return Outcome(final, message=message)


def attempt(
    task: Task,
    constants: Mapping[str, Any],
    upstream: Sequence[Upstream],
    ctx: RunContext,
    call: Callable[[Callable[[], Any]], Any] | None = None,
    timeout_errors: tuple[type[BaseException], ...] = (),
    around: Callable[[], AbstractContextManager[Any]] | None = None,
    max_bytes: int | None = None,
) -> Outcome:
    """One attempt of a task run: the one sequence ``flow.run()`` and the workers share.

    check_upstream (skip / trigger) -> gather inputs -> enter ``ctx`` (and
    ``around()``, entered only when the code runs) -> run_code.

    Args:
        task: the task.
        constants: its constant arguments (for a mapped child: with its element).
        upstream: the recorded states of its upstream task runs (all final).
        ctx: the run context the code sees; ``ctx.attempt`` is this attempt's number
            (1 for the first), which decides whether a failure is retried.
        call: how to invoke the code (the local runner enforces timeouts here).
        timeout_errors: exceptions that mean the time limit was hit.
        around: a context manager around the code, e.g. the worker's heartbeat and
            log capture; not entered when the upstream ends the run.
        max_bytes: the largest JSON encoding of a result accepted (by default the
            environment's ``ORCHESTRATOR_MAX_VALUE_BYTES``).

    Returns:
        The outcome: Skipped or TriggerFailed from the upstream, else what the code
        came to (Retrying with ``retry_in`` when a retry is due, Running with
        ``wait_for`` when the task mirrors a child flow run).
    """
    previous = State.PENDING if ctx.attempt <= 1 else State.RETRYING
    stop = check_upstream(task, upstream)
    if stop is not None:
        with entered(ctx):
            return handled(task, previous, stop)
    inputs = gather_inputs(constants, upstream)
    with entered(ctx), around() if around is not None else contextlib.nullcontext():
        if task.state_handlers:
            running = handled(task, previous, Outcome(State.RUNNING))
            if running.state is not State.RUNNING:
                return running
        outcome = run_code(
            task, inputs, ctx.attempt, call=call, timeout_errors=timeout_errors, max_bytes=max_bytes
        )
        if outcome.wait_for is not None:
            return outcome  # its end is the child's: handled when the task takes it
        return handled(task, State.RUNNING, outcome)


def handled(task: Task, old: State | TaskRunState, outcome: Outcome) -> Outcome:
    """``outcome`` once the task's state handlers have seen the transition to it
    (what they replaced it with; Failed, naming the handler, when one raised or
    chose a state the run cannot enter here). Returns at once without handlers.

    Args:
        task: the task.
        old: the state the task run leaves.
        outcome: the state it enters (Running before the code starts, which a
            handler may replace with a final state: the code does not run).
    """
    if not task.state_handlers:
        return outcome
    before = old if isinstance(old, TaskRunState) else TaskRunState(old)
    new = TaskRunState(outcome.state, outcome.result, outcome.message)
    after = task_changed(task, before, new)
    if (after.state, after.result, after.message) == (
        outcome.state,
        outcome.result,
        outcome.message,
    ):
        return outcome
    starting = outcome.state is State.RUNNING
    if not (after.state.is_final or after.state is (State.RUNNING if starting else State.RETRYING)):
        message = f"a state handler of task {task.slug!r} chose {after.state.value}, "
        message += "which the run cannot enter " + ("before its code" if starting else "at its end")
        return Outcome(State.FAILED, message=message)
    retry_in = outcome.retry_in if outcome.retry_in is not None else task.retry_delay or 0.0
    return Outcome(
        after.state,
        after.result,
        after.message,
        retry_in=retry_in if after.state is State.RETRYING else None,
    )


def flow_state(reference: Mapping[str, State]) -> tuple[State, str]:
    """The flow run's state from its reference tasks' states."""
    if any(s is State.CANCELLED for s in reference.values()):
        return State.CANCELLED, "a reference task was cancelled"
    failed = sorted(slug for slug, s in reference.items() if not s.is_successful)
    if failed:
        return State.FAILED, f"some reference tasks failed: {', '.join(failed)}"
    return State.SUCCESS, "all reference tasks succeeded"


#: A child flow run's task runs as a waiting task reads them: (slug, map index) ->
#: (state, result).
ChildTaskRuns = Mapping[tuple[str, int], tuple[State, Any]]


def mirror_outcome(
    child_id: str,
    child_state: State,
    child_message: str | None,
    task_runs: ChildTaskRuns,
    takes: ChildTaskRun | None = None,
) -> tuple[State, str, Any]:
    """The state, message and result a waiting task takes from a final child flow run.

    TimedOut and TriggerFailed children count as Failed.

    Args:
        child_id: the child run.
        child_state: its final state.
        child_message: its message.
        task_runs: its task runs' states and results.
        takes: the task run whose result the waiting task takes; None for the
            child's structured result ``{"flow_run_id", "state", "task_results"}``.

    Returns:
        The child's state with that result; with ``takes``, Success with the task
        run's result when the child succeeded, else the child's state (Failed when
        the task run is missing or did not succeed), with no result.
    """
    mirrored = State.FAILED if child_state.is_failed else child_state
    message = f"child flow run {child_id} ended {child_state.value}"
    if child_message and child_state is not State.SUCCESS:
        message += f": {child_message}"
    if takes is not None:
        if child_state is not State.SUCCESS:
            return mirrored, message, None
        return _taken(child_id, task_runs, takes)
    results = {slug: result for (slug, index), (_, result) in task_runs.items() if index < 0}
    result = {"flow_run_id": child_id, "state": child_state.value, "task_results": results}
    return mirrored, message, result


def _taken(child_id: str, task_runs: ChildTaskRuns, takes: ChildTaskRun) -> tuple[State, str, Any]:
    """The result of task run ``takes`` of a child that succeeded."""
    found = task_runs.get((takes.slug, takes.map_index))
    if found is None:
        return State.FAILED, f"flow run {child_id} has no task run {str(takes)!r}", None
    state, result = found
    if not state.is_successful:
        return (
            State.FAILED,
            f"task run {str(takes)!r} of flow run {child_id} ended {state.value}",
            None,
        )
    return State.SUCCESS, f"result of task run {str(takes)!r} of flow run {child_id}", result
