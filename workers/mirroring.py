"""A waiting task run taking its child flow run's final state: :class:`Waiting`
(the parent task run a child is spliced under, or that waits for a child's end),
:func:`mirror_child` and the ``mirror`` task that closes a spliced child's canvas
(or looks again until a child running elsewhere ends). Imports Celery (through the
app), the pure core (constants, engine, ids, states), :mod:`orchestrator.db.models`
and :mod:`workers.app`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orchestrator.constants as constants
from orchestrator.db.models import FlowRun
from orchestrator.engine import ChildTaskRun, ChildTaskRuns, mirror_outcome
from orchestrator.ids import task_run_id
from orchestrator.states import State
from workers.app import SETTINGS, InfraRetrying, app, current_backends, recorded, recorded_state

__all__ = ["Waiting", "mirror", "mirror_child"]


@dataclass(frozen=True)
class Waiting:
    """The parent task run a child flow run is spliced under (``wait=True``), or
    that waits for a child's end (``wait_for_flow_run``, ``get_task_run_result``).

    Attributes:
        takes: the child's task run whose result it takes (None: the child's
            structured result).
    """

    flow_run_id: str
    slug: str
    map_index: int
    takes: ChildTaskRun | None = None

    @property
    def task_run_id(self) -> str:
        """The waiting task run's id."""
        return task_run_id(self.flow_run_id, self.slug, self.map_index)


def child_task_runs(child_id: str) -> ChildTaskRuns:
    """A child flow run's task runs, as a waiting task run reads them."""
    rows = current_backends().store.task_runs.of_flow_run(child_id)
    return {(t.slug, t.map_index): (State(t.state), t.result) for t in rows}


def mirror_child(
    flow_run_id: str,
    slug: str,
    child: FlowRun,
    map_index: int,
    takes: ChildTaskRun | None = None,
) -> dict[str, str]:
    """Give a waiting task run its final child run's state (or, with ``takes``, one
    of its task runs' result); the recorded state."""
    store = current_backends().store
    tr_id = task_run_id(flow_run_id, slug, map_index)
    runs = child_task_runs(child.id)
    state, message, result = mirror_outcome(
        child.id, State(child.state), child.message, runs, takes
    )
    if store.task_runs.finish(tr_id, flow_run_id, state, message, result):
        return recorded_state(tr_id, state, child.id)
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
) -> dict[str, str]:
    """Give a waiting task run its child flow run's final state, once the child is
    final (looking again every ``ORCHESTRATOR_RECHECK_SECONDS`` until then)."""
    store = current_backends().store
    child = store.flow_runs.get(child_id)
    if not State(child.state).is_final:
        tr = store.task_runs.get(task_run_id(flow_run_id, slug, map_index))
        if tr is not None and State(tr.state).is_final:
            return recorded(tr)
        raise self.again(SETTINGS.recheck_seconds)
    return mirror_child(flow_run_id, slug, child, map_index, ChildTaskRun.from_json(takes))
