"""Ending a flow run: :func:`finalize_run` records its final state from its
reference tasks (once the flow's state handlers saw it) and gives back its
concurrency slots, waking the runs that wait for them (:func:`release`,
:func:`wake`); :func:`end_early`, for a run a handler ended at its start; the
``finalize`` task that closes a canvas. Imports Celery (through the app), the pure
core (constants, engine, ids, requests, states), :mod:`orchestrator.db.models` and
:mod:`workers.app`, :mod:`workers.flow_cache`, :mod:`workers.handling`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import orchestrator.constants as constants
from orchestrator.db.models import FlowRun
from orchestrator.engine import flow_state
from orchestrator.ids import task_run_id
from orchestrator.requests import NewFlowRun
from orchestrator.states import FlowRunState, State
from workers.app import (
    SETTINGS,
    InfraRetrying,
    app,
    current_backends,
    current_slots,
    run_answer,
)
from workers.flow_cache import LoadedFlow, loaded
from workers.handling import flow_transition

__all__ = ["AnyRun", "end_early", "finalize", "finalize_run", "release", "wake"]

#: A flow run as stored, or built and not stored yet (a child a task asked for).
AnyRun: TypeAlias = FlowRun | NewFlowRun


def finalize_run(
    flow_run_id: str,
    lf: LoadedFlow | None = None,
    run: FlowRun | None = None,
    known: dict[str, State] | None = None,
) -> dict[str, str]:
    """Record a flow run's final state from its reference tasks and give back its
    slots.

    Args:
        flow_run_id: the run.
        lf: its loaded flow, when the caller has it.
        run: the run as the caller last read it while Running (saves a read).
        known: states of reference tasks the caller just recorded (saves a read).

    Returns:
        What ``finalize`` returns: the run and its state as recorded now.
    """
    b = current_backends()
    store = b.store
    if run is None or State(run.state) is not State.RUNNING:
        run = store.flow_runs.get(flow_run_id)
    state = State(run.state)
    if not state.is_final:
        lf = lf or loaded(store, run.flow_id)
        known = known or {}
        ids = {task_run_id(flow_run_id, s): s for s in lf.reference if s not in known}
        states = dict(known)
        if ids:
            rows = store.task_runs.by_ids(list(ids))
            states.update({ids[i]: State(t.state) for i, t in rows.items()})
        final, message = flow_state({s: states[s] for s in lf.reference})
        ended = flow_transition(lf, run.id, run.parameters, State.RUNNING, final, message)
        final, message = ended.state, ended.message or message
        if b.set_flow_run_state(flow_run_id, final, message, from_states=[State.RUNNING]):
            state = final
        else:
            state = State(store.flow_runs.get(flow_run_id).state)
    release(run)
    return run_answer(flow_run_id, state)


def end_early(run: AnyRun, entered: State, ended: FlowRunState) -> None:
    """A flow's handler ended a run as it entered ``entered`` (Running or Queued),
    before its tasks ran: record its end, cancel its task runs, give back its slots."""
    b = current_backends()
    # its task runs first: whoever sees the run final sees them final too
    b.store.task_runs.cancel_pending(run.id, f"flow run ended {ended.state.value} at its start")
    if b.set_flow_run_state(run.id, ended.state, ended.message, from_states=[entered]):
        release(run)


def release(run: AnyRun) -> None:
    """Give back a finished run's concurrency slots and wake who waits for them."""
    if run.labels or run.parent_flow_run_id:
        wake(current_slots().release(run.id, run.labels))


def wake(run_ids: Iterable[str]) -> None:
    """Send ``start_flow_run`` again for runs that may now get a slot."""
    for run_id in run_ids:
        app.send_task(constants.START_FLOW_RUN, args=[run_id], queue=SETTINGS.queue)


@app.task(name=constants.FINALIZE, base=InfraRetrying)
def finalize(flow_run_id: str) -> dict[str, str]:
    """Record a flow run's final state from its reference tasks."""
    return finalize_run(flow_run_id)
