"""What a restart from failure resets (:func:`plan_restart`): given a finished flow
run's recorded task runs and its flow's edges, which task runs go back to Pending,
which keep their state and result, and which child flow runs restart in place with
them. Also the refusals (:func:`refusal`) and the states a run restarts from
(:data:`RESTARTABLE`). Pure: the standard library and the core's states."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.states import State

#: The final states a flow run may be restarted from (it ended without success).
RESTARTABLE = frozenset({State.FAILED, State.TRIGGER_FAILED, State.TIMED_OUT, State.CANCELLED})
#: The task run states a restart keeps (with their results).
KEPT = frozenset({State.SUCCESS, State.SKIPPED})
#: The message a reset task run, and the restarted flow run's event, carry.
RESTARTED = "restarted"


@dataclass(frozen=True)
class TaskRunView:
    """A recorded task run, as a restart sees it.

    Attributes:
        id: the task run.
        slug: its task.
        map_index: its index among a mapped task's children (-1: not one).
        state: its recorded state.
        child_flow_run_id: the child flow run it started and waited for
            (``StartFlowRun(wait=True)``), if any.
        child_state: that child's state.
    """

    id: str
    slug: str
    map_index: int
    state: State
    child_flow_run_id: str | None = None
    child_state: State | None = None


@dataclass(frozen=True)
class RestartPlan:
    """What a restart does to one flow run.

    Attributes:
        reset: the task runs that go back to Pending, with their retries counted afresh.
        keep_child: of those, the ones that keep their child flow run (the node
            splices that child in again instead of running the task's code).
        children: the child flow runs that restart in place with them (each one is
            planned in turn).
    """

    reset: tuple[str, ...]
    keep_child: tuple[str, ...]
    children: tuple[str, ...]


def _downstream(edges: Iterable[tuple[str, str]], roots: set[str]) -> set[str]:
    """``roots`` and every task after one of them."""
    after: dict[str, set[str]] = {}
    for up, down in edges:
        after.setdefault(up, set()).add(down)
    seen = set(roots)
    todo = list(roots)
    while todo:
        for nxt in after.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _failed_slugs(by_slug: Mapping[str, Sequence[TaskRunView]], slugs: Iterable[str]) -> set[str]:
    """The tasks whose own run did not succeed (a mapped task: any of its children);
    a task without a recorded run counts as not succeeded."""
    failed = set()
    for slug in slugs:
        runs = by_slug.get(slug, ())
        if not runs or any(r.state not in KEPT for r in runs):
            failed.add(slug)
    return failed


def plan_restart(
    slugs: Iterable[str], edges: Iterable[tuple[str, str]], task_runs: Sequence[TaskRunView]
) -> RestartPlan:
    """Plan the restart of one finished flow run.

    Task runs that ended Success or Skipped (a mapped task: with all of its
    children) keep their state and result. Those that did not, and every task run
    downstream of them, go back to Pending. Of a mapped task that failed itself, only
    the children that did not succeed are reset (and its own run, which maps again);
    a mapped task reset because of an upstream task is reset whole. A reset task run
    that waited for a child flow run keeps that child when it is its own (started by
    it): a child that did not succeed restarts in place, one that succeeded stays.

    Args:
        slugs: every task of the flow.
        edges: the flow's edges, as (upstream slug, downstream slug).
        task_runs: the run's recorded task runs.

    Returns:
        The plan.
    """
    by_slug: dict[str, list[TaskRunView]] = {}
    for tr in task_runs:
        by_slug.setdefault(tr.slug, []).append(tr)
    failed = _failed_slugs(by_slug, slugs)
    downstream = _downstream(edges, failed)
    reset: list[str] = []
    keep_child: list[str] = []
    children: list[str] = []
    for slug in sorted(downstream):
        whole = slug not in failed  # reset because of an upstream task
        for tr in by_slug.get(slug, ()):
            if not whole and tr.map_index >= 0 and tr.state in KEPT:
                continue  # a mapped element that succeeded: kept
            reset.append(tr.id)
            if tr.child_flow_run_id is None:
                continue
            keep_child.append(tr.id)
            if tr.child_state in RESTARTABLE:
                children.append(tr.child_flow_run_id)
    return RestartPlan(tuple(reset), tuple(keep_child), tuple(children))


def refusal(
    flow_run_id: str,
    state: State,
    archived_flow: str | None = None,
    waiting_parent: str | None = None,
) -> str | None:
    """Why a flow run may not be restarted (one line), or None when it may.

    Args:
        flow_run_id: the run.
        state: its state.
        archived_flow: its flow version, named, when that version is archived.
        waiting_parent: the unfinished flow run whose task waits for this run.
    """
    if waiting_parent is not None:
        return (
            f"flow run {flow_run_id} is a child that running flow run {waiting_parent} "
            f"waits on: restart the parent instead"
        )
    if not state.is_final:
        return f"flow run {flow_run_id} is still {state.value}: restart it once it has finished"
    if state.is_successful:
        return f"flow run {flow_run_id} ended {state.value}: there is nothing to restart"
    if archived_flow is not None:
        return (
            f"flow run {flow_run_id} ran {archived_flow}, which is archived: "
            "start a new run of the current version instead"
        )
    return None
