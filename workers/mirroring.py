"""A waiting task run taking its child flow run's final state: :class:`Waiting`
(the parent task run a child is spliced under), :func:`mirror_child` and the
``mirror`` task that closes a spliced child's canvas. Imports Celery (through the
app), the pure core (constants, engine, ids, states), :mod:`orchestrator.db.models`
and :mod:`workers.app`."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Task as CeleryTask

import orchestrator.constants as constants
from orchestrator.db.models import FlowRun
from orchestrator.engine import mirror_outcome
from orchestrator.ids import task_run_id
from orchestrator.states import State
from workers.app import InfraRetrying, app, current_backends, recorded, recorded_state

__all__ = ["Waiting", "mirror", "mirror_child"]


@dataclass(frozen=True)
class Waiting:
    """The parent task run a child flow run is spliced under (``wait=True``)."""

    flow_run_id: str
    slug: str
    map_index: int

    @property
    def task_run_id(self) -> str:
        """The waiting task run's id."""
        return task_run_id(self.flow_run_id, self.slug, self.map_index)


def mirror_child(flow_run_id: str, slug: str, child: FlowRun, map_index: int) -> dict[str, str]:
    """Give a waiting task run its final child run's state; the recorded state."""
    store = current_backends().store
    tr_id = task_run_id(flow_run_id, slug, map_index)
    results = {t.slug: t.result for t in store.task_runs.of_flow_run(child.id) if t.map_index == -1}
    state, message, result = mirror_outcome(child.id, State(child.state), child.message, results)
    if store.task_runs.finish(tr_id, flow_run_id, state, message, result):
        return recorded_state(tr_id, state, child.id)
    tr = store.task_runs.get(tr_id)  # already final: mirrored by another delivery
    assert tr is not None
    return recorded(tr)


@app.task(name=constants.MIRROR, bind=True, base=InfraRetrying)
def mirror(
    self: CeleryTask, flow_run_id: str, slug: str, child_id: str, map_index: int = -1
) -> dict[str, str]:
    """Give a waiting task run its child flow run's final state."""
    store = current_backends().store
    child = store.flow_runs.get(child_id)
    if not State(child.state).is_final:
        tr = store.task_runs.get(task_run_id(flow_run_id, slug, map_index))
        if tr is not None and State(tr.state).is_final:
            return recorded(tr)
        raise self.retry(countdown=constants.DUPLICATE_RECHECK_SECONDS, max_retries=None)
    return mirror_child(flow_run_id, slug, child, map_index)
