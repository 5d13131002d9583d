"""Starting flow runs and giving back their slots: the ``start_flow_run`` task (a
run with a slot of each limited label moves to Running and its canvas is sent, a
one-task run runs right there; without a slot it waits in Queued), ``resubmit``
(the sweeper's resend of a stuck run), ``release_slots`` and ``wake_label``. Imports
Celery, the pure core (constants, errors, states), :mod:`orchestrator.db.models` and
:mod:`workers.app`, :mod:`workers.begin`, :mod:`workers.finalize`,
:mod:`workers.flow_cache`, :mod:`workers.inline`, :mod:`workers.signatures`, and
the telemetry gate."""

from __future__ import annotations

from celery import Task as CeleryTask

import orchestrator.constants as constants
import orchestrator.telemetry as telemetry
from orchestrator.db.models import FlowRun
from orchestrator.errors import BackendUnavailable, OrchestratorError
from orchestrator.states import State
from workers.app import InfraRetrying, app, current_backends, current_slots, run_answer
from workers.begin import STARTABLE, arrival, begin, queue_for_slot
from workers.finalize import wake
from workers.flow_cache import loaded
from workers.inline import Finished, HandedOver, InlineResult, run_inline
from workers.signatures import build_canvas

__all__ = ["release_slots", "resubmit", "start_flow_run", "wake_label"]


@app.task(name=constants.START_FLOW_RUN, bind=True, base=InfraRetrying)
def start_flow_run(self: CeleryTask, flow_run_id: str) -> dict[str, str]:
    """Move a submitted flow run to Running and send its canvas (a one-task flow
    runs right here), once it has a slot of each of its limited labels (else it
    waits in Queued)."""
    store = current_backends().store
    run = store.flow_runs.get(flow_run_id)
    state = State(run.state)
    if state.is_final:
        wake(current_slots().release(run.id, run.labels))
        return run_answer(flow_run_id, state)
    again = self.request.retries or (self.request.delivery_info or {}).get("redelivered")
    if state is State.RUNNING and again:
        # this task died or failed after recording Running: resume a one-task flow
        # inline (the claim runs the task again only if its lease expired), or send
        # the canvas again (it may not have gone out; finished nodes change nothing)
        lf = loaded(store, run.flow_id)
        if lf.inline_slug is not None:
            return _started(run.id, run_inline(lf, run))
        if not _spliced(run):
            build_canvas(lf, run.id).apply_async()
            return run_answer(flow_run_id, state)
    if state not in STARTABLE or _spliced(run):
        return run_answer(flow_run_id, state)
    if run.labels and not current_slots().acquire(run.id, run.labels, arrival(run)):
        queue_for_slot(run, state)  # (loads the flow for its state handlers)
        return run_answer(flow_run_id, State.QUEUED)
    return _start(run, state)


def _start(run: FlowRun, state: State) -> dict[str, str]:
    """Start a run that has its slots: inline for a one-task flow, else its canvas."""
    b = current_backends()
    try:
        lf = loaded(b.store, run.flow_id)
        canvas = None if lf.inline_slug is not None else build_canvas(lf, run.id)
    except BackendUnavailable:
        raise  # retried with backoff (InfraRetrying)
    except OrchestratorError as exc:
        if b.set_flow_run_state(run.id, State.FAILED, str(exc)):
            wake(current_slots().release(run.id, run.labels))
        return run_answer(run.id, State.FAILED)
    if canvas is None:
        return _started(run.id, run_inline(lf, run, begin_from=state))
    if not begin(run, state, lf):
        return run_answer(run.id, State(b.store.flow_runs.get(run.id).state))
    with telemetry.within(telemetry.context_of(run.id, run.trace_context)):  # in the headers
        canvas.apply_async()
    return run_answer(run.id, State.RUNNING)


def _spliced(run: FlowRun) -> bool:
    """Whether a run is a child spliced into a waiting parent's canvas."""
    if not run.parent_task_run_id:
        return False
    parent_task = current_backends().store.task_runs.get(run.parent_task_run_id)
    return (
        parent_task is not None
        and parent_task.child_flow_run_id == run.id
        and not State(parent_task.state).is_final  # a child restarted on its own starts
    )


def _started(flow_run_id: str, inline: InlineResult) -> dict[str, str]:
    """Send the node that takes over an inline run, if any; what start_flow_run returns."""
    if isinstance(inline, Finished):
        return run_answer(flow_run_id, inline.state)
    if isinstance(inline, HandedOver):
        inline.signature.apply_async()
    return run_answer(flow_run_id, State.RUNNING)


@app.task(name=constants.RESUBMIT, base=InfraRetrying)
def resubmit(flow_run_id: str) -> dict[str, str]:
    """Send a stuck Running flow run's canvas again (the sweeper asks for it).

    Idempotent: finished nodes return their recorded state, unfinished ones run,
    child runs are found by their idempotency keys."""
    store = current_backends().store
    run = store.flow_runs.get(flow_run_id)
    if State(run.state) is State.RUNNING:
        build_canvas(loaded(store, run.flow_id), flow_run_id).apply_async()
    return run_answer(flow_run_id, State(run.state))


@app.task(name=constants.RELEASE_SLOTS, base=InfraRetrying)
def release_slots(flow_run_id: str, labels: list[str]) -> None:
    """Give back a finished or cancelled run's slots and wake the runs waiting longest."""
    wake(current_slots().release(flow_run_id, labels))


@app.task(name=constants.WAKE_LABEL, base=InfraRetrying)
def wake_label(label: str) -> None:
    """Wake the runs waiting longest for a label (after its limit changed)."""
    wake(current_slots().waiting(label))
