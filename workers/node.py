"""The ``node`` task: one task run of a flow run. It claims the task run, runs the
code (a mapped task's own node fans out instead), splices in a child run it waits
for, records the outcome and sends itself again for a retry or a duplicate
delivery (never bounded by Celery's retry counter); with ``finalize`` it then
records the flow run's state. It returns the recorded state, the same bytes on
every delivery. Imports Celery, the pure core (constants, engine, ids, mapping,
states), :mod:`orchestrator.db` and :mod:`workers.app`, :mod:`workers.attempt`,
:mod:`workers.children`, :mod:`workers.finalize`, :mod:`workers.flow_cache`,
:mod:`workers.mapping`, :mod:`workers.mirroring`."""

from __future__ import annotations

from typing import Any

import orchestrator.constants as constants
from orchestrator.clock import as_utc, utcnow
from orchestrator.db import Claim, Link
from orchestrator.engine import ChildTaskRun
from orchestrator.ids import task_run_id
from orchestrator.mapping import Element
from orchestrator.states import State
from workers.app import (
    SETTINGS,
    InfraRetrying,
    app,
    current_backends,
    lease_owner,
    recorded,
    recorded_state,
    worker_id,
)
from workers.attempt import execute
from workers.children import splice_child
from workers.finalize import finalize_run
from workers.flow_cache import loaded
from workers.mapping import fan_out
from workers.mirroring import Waiting

__all__ = ["node"]


@app.task(name=constants.NODE, bind=True, base=InfraRetrying)
def node(
    self: InfraRetrying,
    flow_run_id: str,
    slug: str,
    map_index: int = -1,
    element: dict[str, Any] | None = None,
    finalize: bool = False,
    states: dict[str, str] | None = None,
) -> dict[str, str]:
    """Run one task run of a flow run and return its recorded state; with
    ``finalize``, then record the flow run's state.

    A mapped task's own node maps: it records its children and replaces itself with
    a chord of one node per element, closed by ``collect_map``; a mapped child gets
    its ``element`` (the mapped values) and the ``states`` that go with them."""
    store = current_backends().store
    tr_id = task_run_id(flow_run_id, slug, map_index)
    owner = lease_owner()
    claim = store.task_runs.claim(tr_id, flow_run_id, owner, SETTINGS.lease_seconds, worker_id())
    if not claim.claimed:
        return _held_elsewhere(self, flow_run_id, claim, slug, map_index, finalize)
    tr, run = claim.task_run, claim.flow_run
    lf = loaded(store, run.flow_id)
    if tr.child_flow_run_id and not State(run.state).is_final:
        # a restarted task run keeps its child, restarted in place: splice it in again
        waiting = Waiting(flow_run_id, slug, map_index)
        return splice_child(self, waiting, tr.child_flow_run_id, lf, finalize)
    if slug in lf.mapped and map_index < 0 and not State(run.state).is_final:
        outcome = fan_out(self, lf, run, slug, tr_id, owner, finalize)
    else:
        child = Element.from_wire(element, states) if map_index >= 0 else None
        outcome = execute(lf, run, tr, slug, map_index, child, owner)
    if outcome.wait_for is not None:
        wait_for = outcome.wait_for
        takes = wait_for.takes
        link = Link(tr_id, flow_run_id, owner, outcome.message, takes.as_json() if takes else None)
        waiting = Waiting(flow_run_id, slug, map_index, takes)
        return splice_child(self, waiting, wait_for.flow_run_id, lf, finalize, link, wait_for.new)
    if not store.task_runs.finish(
        tr_id,
        flow_run_id,
        outcome.state,
        outcome.message,
        outcome.result,
        owner=owner,
        retry_in=outcome.retry_in,
    ):
        return recorded(store.task_runs.get(tr_id) or tr)  # another delivery recorded it
    if outcome.state is State.RETRYING:
        raise self.again(outcome.retry_in or 0)
    if finalize:
        finalize_run(flow_run_id, lf, run, {slug: outcome.state} if map_index < 0 else None)
    return recorded_state(tr_id, outcome.state)


def _held_elsewhere(
    self: InfraRetrying, flow_run_id: str, claim: Claim, slug: str, map_index: int, finalize: bool
) -> dict[str, str]:
    """A task run this delivery could not claim: it waits for a child (splice it in
    again), is still running elsewhere (look again shortly), or is final (its
    recorded state, the same bytes as the delivery that recorded it)."""
    tr = claim.task_run
    if tr.child_flow_run_id and not State(tr.state).is_final:
        # while it waits, its result holds what it takes from the child
        waiting = Waiting(flow_run_id, slug, map_index, ChildTaskRun.from_json(tr.result))
        lf = loaded(current_backends().store, claim.flow_run.flow_id)
        return splice_child(self, waiting, tr.child_flow_run_id, lf, finalize)
    if State(tr.state) is State.RETRYING and tr.not_before is not None:
        # its next attempt is not due yet (this is a duplicate delivery): look again then
        due = (as_utc(tr.not_before) - utcnow()).total_seconds()
        raise self.again(max(SETTINGS.recheck_seconds, due))
    if not State(tr.state).is_final:
        raise self.again(SETTINGS.recheck_seconds)
    if finalize:
        finalize_run(flow_run_id)
    return recorded(tr)
