"""The task-run engine: one straight pipeline, shared by ``flow.run()`` and the
workers so the two paths cannot drift.

check upstream skips -> check the trigger -> gather inputs -> run the code ->
decide on a retry. Each step turns what happened into an :class:`Outcome`; the
caller records it (in memory for local runs, with a compare-and-set in the
database on workers)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import BackendUnavailable
from orchestrator.signals import FAIL, SKIP
from orchestrator.states import State
from orchestrator.task import Task

if TYPE_CHECKING:
    from orchestrator.models import FlowRun


@dataclass(frozen=True)
class WaitForFlowRun:
    """What a task returns to say "mirror flow run ``flow_run_id`` here".

    On workers the node task splices the child run's canvas in its own place; in
    ``flow.run()`` the child runs in process. The task's final state becomes the
    child's.

    Attributes:
        new: the run when it is built and not stored yet
            (:meth:`~orchestrator.client.Client.prepare_flow_run`): whoever acts on
            this stores it first (a worker, in the transaction that starts it)."""

    flow_run_id: str
    new: FlowRun | None = None


@dataclass(frozen=True)
class Upstream:
    """The recorded state of one upstream task run, as an edge sees it."""

    slug: str
    key: str | None
    state: State
    result: Any = None
    mapped: bool = False
    flatten: bool = False


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
    states = [u.state for u in upstream]
    unfinished = [u.slug for u in upstream if not u.state.is_final]
    if unfinished:
        raise RuntimeError(f"task {task.slug!r} started before upstream {unfinished} finished")
    if task.skip_on_upstream_skip and any(s is State.SKIPPED for s in states):
        skipped = [u.slug for u in upstream if u.state is State.SKIPPED]
        return Outcome(State.SKIPPED, message=f"upstream task skipped: {', '.join(skipped)}")
    try:
        run = task.trigger(states)
    except SKIP as sig:
        return Outcome(State.SKIPPED, message=str(sig) or "skipped by the trigger")
    if not run:
        name = getattr(task.trigger, "__name__", "trigger")
        summary = ", ".join(f"{u.slug}={u.state.value}" for u in upstream)
        return Outcome(State.TRIGGER_FAILED, message=f"trigger {name} not met ({summary})")
    return None


def gather_inputs(constants: Mapping[str, Any], upstream: Sequence[Upstream]) -> dict[str, Any]:
    """The keyword arguments for ``run()``: constants plus the data edges' results."""
    inputs = dict(constants)
    for u in upstream:
        if u.key is not None:
            inputs[u.key] = u.result
    return inputs


def to_json(value: Any, what: str) -> str:
    """Encode ``value`` as JSON or raise TypeError naming ``what`` and the offending type."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        bad = _first_unserialisable(value)
        raise TypeError(
            f"{what} is not JSON-serialisable: {bad or type(value).__name__} ({exc})"
        ) from None


def _first_unserialisable(value: Any) -> str | None:
    if isinstance(value, str | int | float | bool) or value is None:
        return None
    if isinstance(value, list | tuple):
        for v in value:
            found = _first_unserialisable(v)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool) and k is not None:
                return f"key of type {type(k).__name__}"
            found = _first_unserialisable(v)
            if found:
                return found
        return None
    return f"a value of type {type(value).__name__}"


def run_code(
    task: Task,
    inputs: Mapping[str, Any],
    attempt: int,
    call: Callable[[Callable[[], Any]], Any] | None = None,
    timeout_errors: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Run the task's code once and turn what happened into an outcome.

    Args:
        task: the task.
        inputs: its keyword arguments.
        attempt: 1 for the first attempt.
        call: how to invoke the code (the local runner enforces timeouts here).
        timeout_errors: exceptions that mean the time limit was hit.

    Returns:
        Success with the result, Skipped, Failed, TimedOut or Retrying.
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
    try:
        to_json(result, f"result of task {task.slug!r}")
    except TypeError as exc:
        return Outcome(State.FAILED, message=str(exc))
    return Outcome(State.SUCCESS, result=result)


def _maybe_retry(task: Task, attempt: int, final: State, message: str) -> Outcome:
    if attempt <= task.max_retries:
        return Outcome(
            State.RETRYING,
            message=f"{message} (attempt {attempt} of {task.max_retries + 1})",
            retry_in=task.retry_delay or 0.0,
        )
    return Outcome(final, message=message)


def flow_state(reference: Mapping[str, State]) -> tuple[State, str]:
    """The flow run's state from its reference tasks' states."""
    if any(s is State.CANCELLED for s in reference.values()):
        return State.CANCELLED, "a reference task was cancelled"
    failed = sorted(slug for slug, s in reference.items() if not s.is_successful)
    if failed:
        return State.FAILED, f"some reference tasks failed: {', '.join(failed)}"
    return State.SUCCESS, "all reference tasks succeeded"


def mirror_outcome(
    child_id: str, child_state: State, child_message: str | None, task_results: dict[str, Any]
) -> tuple[State, str, dict[str, Any]]:
    """The state, message and structured result a task takes from a child flow run.

    TimedOut and TriggerFailed children count as Failed."""
    mirrored = State.FAILED if child_state.is_failed else child_state
    message = f"child flow run {child_id} ended {child_state.value}"
    if child_message and child_state is not State.SUCCESS:
        message += f": {child_message}"
    result = {"flow_run_id": child_id, "state": child_state.value, "task_results": task_results}
    return mirrored, message, result


# --- mapping -------------------------------------------------------------------------


class MapError(Exception):
    """Raised when a mapped argument is not a list (the message names task and argument)."""


def mapped_lists(
    task: Task, constants: Mapping[str, Any], modes: Mapping[str, str], upstream: Sequence[Upstream]
) -> dict[str, list[Any]]:
    """The lists a mapped task maps over, by argument name (flattened where asked)."""
    sources: list[tuple[str, Any, bool, str]] = [
        (key, constants[key], modes[key] == "flatten", "constant") for key in modes
    ]
    sources += [
        (u.key, u.result, u.flatten, f"task {u.slug!r}") for u in upstream if u.mapped and u.key
    ]
    lists: dict[str, list[Any]] = {}
    for key, value, flat, origin in sources:
        if not isinstance(value, list | tuple):
            raise MapError(
                f"task {task.slug!r} maps over argument {key!r}, but {origin} gave "
                f"{type(value).__name__}, not a list"
            )
        if flat:
            items: list[Any] = []
            for part in value:
                if not isinstance(part, list | tuple):
                    raise MapError(
                        f"task {task.slug!r}: flatten({key}) needs a list of lists, found "
                        f"{type(part).__name__} in it"
                    )
                items.extend(part)
            value = items
        lists[key] = list(value)
    if not lists:
        raise MapError(f"task {task.slug!r} is mapped but has no mapped argument")
    return lists


def map_width(lists: Mapping[str, list[Any]]) -> int:
    """How many children a mapped task has: the length of its shortest mapped list."""
    return min((len(v) for v in lists.values()), default=0)


def element_upstream(
    upstream: Sequence[Upstream],
    element: Mapping[str, Any],
    element_states: Mapping[str, State],
) -> list[Upstream]:
    """The upstream one child of a mapped task sees: mapped edges carry that child's
    element, and the state of the matching child of a mapped upstream."""
    out = []
    for u in upstream:
        if u.mapped and u.key is not None:
            out.append(Upstream(u.slug, u.key, element_states.get(u.slug, u.state), element[u.key]))
        else:
            out.append(u)
    return out


def mapped_outcome(children: Sequence[tuple[State, Any]]) -> Outcome:
    """A mapped task's own outcome from its children's states and results, in order."""
    states = [s for s, _ in children]
    results = [r for _, r in children]
    if any(s is State.CANCELLED for s in states):
        return Outcome(State.CANCELLED, results, "a mapped child was cancelled")
    failed = [i for i, s in enumerate(states) if s.is_failed]
    if failed:
        shown = ", ".join(str(i) for i in failed[:10])
        return Outcome(
            State.FAILED,
            results,
            f"{len(failed)} of {len(states)} mapped children failed (index {shown})",
        )
    return Outcome(State.SUCCESS, results, f"mapped over {len(states)} elements")
