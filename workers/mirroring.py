"""A waiting task run taking its child flow run's final state (through the waiting
task's state handlers): :class:`Waiting` (the parent task run a child is spliced
under, or that waits for a child's end), :func:`mirrored`, :func:`mirror_child` and
the ``mirror`` task that closes a spliced child's canvas (or looks again until a
child running elsewhere ends). Imports Celery (through the app), the pure core
(constants, context, engine, ids, states, task), :mod:`orchestrator.db.models` and
:mod:`workers.app`, :mod:`workers.flow_cache`, :mod:`workers.handling`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orchestrator.constants as constants
from orchestrator.context import RunContext, entered
from orchestrator.db.models import FlowRun
from orchestrator.engine import ChildTaskRun, ChildTaskRuns, Outcome, handled, mirror_outcome
from orchestrator.ids import task_run_id
from orchestrator.states import State
from orchestrator.task import Task
from workers.app import SETTINGS, InfraRetrying, app, current_backends, recorded, recorded_state
from workers.flow_cache import loaded
from workers.handling import handled_task

__all__ = ["Waiting", "child_task_runs", "mirror", "mirror_child", "mirrored"]


@dataclass(frozen=True)
class Waiting:
    """The parent task run a child flow run is spliced under (``wait=True``), or
    that waits for a child's end (``wait_for_flow_run``, ``get_task_run_result``).

    Attributes:
        takes: the child's task run whose result it takes (None: the child's
            structured result).
        task: the waiting task when it has state handlers (they see it take the
            child's state), else None.
        flow_name: the waiting run's flow, for the handlers' context.
    """

    flow_run_id: str
    slug: str
    map_index: int
    takes: ChildTaskRun | None = None
    task: Task | None = None
    flow_name: str = ""

    @property
    def task_run_id(self) -> str:
        """The waiting task run's id."""
        return task_run_id(self.flow_run_id, self.slug, self.map_index)


def child_task_runs(child_id: str) -> ChildTaskRuns:
    """A child flow run's task runs, as a waiting task run reads them."""
    rows = current_backends().store.task_runs.of_flow_run(child_id)
    return {(t.slug, t.map_index): (State(t.state), t.result) for t in rows}


def mirrored(
    waiting: Waiting,
    child_id: str,
    child_state: State,
    child_message: str | None,
    task_runs: ChildTaskRuns,
) -> Outcome:
    """What the waiting task run takes from its final child: the child's state (or,
    with ``waiting.takes``, one of its task runs' result), once the waiting task's
    state handlers have seen it."""
    state, message, result = mirror_outcome(
        child_id, child_state, child_message, task_runs, waiting.takes
    )
    outcome = Outcome(state, result, message)
    if waiting.task is None:
        return outcome
    ctx = RunContext(
        waiting.flow_run_id, waiting.flow_name, waiting.slug, map_index=waiting.map_index
    )
    with entered(ctx):
        return handled(waiting.task, State.RUNNING, outcome)


def mirror_child(waiting: Waiting, child: FlowRun) -> dict[str, str]:
    """Give a waiting task run its final child run's state; the recorded state."""
    store = current_backends().store
    tr_id = waiting.task_run_id
    taken = mirrored(
        waiting, child.id, State(child.state), child.message, child_task_runs(child.id)
    )
    if store.task_runs.finish(tr_id, waiting.flow_run_id, taken.state, taken.message, taken.result):
        return recorded_state(tr_id, taken.state, child.id)
    tr = store.task_runs.get(tr_id)  # already final: mirrored by another delivery
    assert tr is not None
    return recorded(tr)


@app.task(name=constants.MIRROR, bind=True, base=InfraRetrying)
def mirror(
    self: InfraRetrying,
    flow_run_id: str,
    slug: str,
    child_id: str,
    map_index: int = -1,
    takes: dict[str, Any] | None = None,
    handlers: bool = False,
) -> dict[str, str]:
    """Give a waiting task run its child flow run's final state, once the child is
    final (looking again every ``ORCHESTRATOR_RECHECK_SECONDS`` until then);
    ``handlers``: the waiting task has state handlers, which see it."""
    store = current_backends().store
    child = store.flow_runs.get(child_id)
    if not State(child.state).is_final:
        tr = store.task_runs.get(task_run_id(flow_run_id, slug, map_index))
        if tr is not None and State(tr.state).is_final:
            return recorded(tr)
        raise self.again(SETTINGS.recheck_seconds)
    waiting = Waiting(flow_run_id, slug, map_index, ChildTaskRun.from_json(takes))
    if handlers:
        lf = loaded(store, store.flow_runs.get(flow_run_id).flow_id)
        waiting = Waiting(
            flow_run_id, slug, map_index, waiting.takes, handled_task(lf, slug), lf.version.name
        )
    return mirror_child(waiting, child)
