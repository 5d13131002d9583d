"""Letting a flow run start: the states it may start from (:data:`STARTABLE`), its
place in the line for a concurrency slot (:func:`arrival`, :func:`queue_for_slot`),
the task runs it starts with (:func:`task_rows`) and the move to Running that
creates them (:func:`begin`); shared by ``start_flow_run`` and a node that splices
a child in. Imports the pure core (clock, requests, states),
:mod:`orchestrator.db.models` and :mod:`workers.app`, :mod:`workers.flow_cache`."""

from __future__ import annotations

from typing import Any, TypeAlias

from orchestrator.clock import aware, utcnow
from orchestrator.db.models import FlowRun
from orchestrator.requests import NewFlowRun
from orchestrator.states import State, can_transition
from workers.app import current_backends
from workers.flow_cache import LoadedFlow

__all__ = ["STARTABLE", "AnyRun", "arrival", "begin", "queue_for_slot", "task_rows"]

#: A flow run as stored, or built and not stored yet (a child a task asked for).
AnyRun: TypeAlias = FlowRun | NewFlowRun

#: The states a flow run starts from.
STARTABLE = (State.SUBMITTED, State.PENDING, State.QUEUED, State.SCHEDULED)


def task_rows(lf: LoadedFlow, run: AnyRun) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """A run's task runs to create: (slug, name) of every task, and the parameters'
    values (recorded as Success at once)."""
    params = dict(run.parameters or {})
    tasks = [(t.slug or t.name, t.name) for t in lf.flow.tasks]
    done = {t.slug or "": params.get(t.name, t.default) for t in lf.flow.parameters()}
    return tasks, done


def begin(run: AnyRun, state: State, lf: LoadedFlow) -> bool:
    """Create a startable run's task runs and move it from ``state`` to Running
    (announced); False, with nothing written, when it was no longer in ``state``.

    A run read Running was begun already (by another delivery of the node that
    splices it in): True, with nothing written, so its canvas is sent again
    (finished nodes return their recorded state). A run read in a final state is
    not begun again: False."""
    if state is State.RUNNING:
        return True
    if not can_transition(state, State.RUNNING):
        return False
    b = current_backends()
    tasks, done = task_rows(lf, run)
    if b.store.runs.begin(run.id, tasks, done, [state]):
        b.notify(run.id, State.RUNNING)
        return True
    return False


def arrival(run: AnyRun) -> float:
    """When a run joined the line for slots (seconds since the epoch): its creation."""
    return (aware(run.created) or utcnow()).timestamp()


def queue_for_slot(run: AnyRun, state: State) -> None:
    """Record that a run waits for a concurrency slot (once)."""
    if state is not State.QUEUED:
        current_backends().set_flow_run_state(
            run.id,
            State.QUEUED,
            f"waiting for a concurrency slot ({', '.join(run.labels)})",
            from_states=[state],
        )
