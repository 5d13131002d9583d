"""Letting a flow run start: the states it may start from (:data:`STARTABLE`), its
place in the line for a concurrency slot (:func:`arrival`, :func:`queue_for_slot`),
the task runs it starts with (:func:`task_rows`) and the move to Running that
creates them (:func:`begin`), each seen by the flow's state handlers
(:func:`started`); shared by ``start_flow_run`` and a node that splices a child in.
Imports the pure core (clock, states) and :mod:`workers.app`,
:mod:`workers.finalize`, :mod:`workers.flow_cache`, :mod:`workers.handling`."""

from __future__ import annotations

from typing import Any

from orchestrator.clock import aware, utcnow
from orchestrator.states import State, can_transition
from workers.app import current_backends
from workers.finalize import AnyRun, end_early
from workers.flow_cache import LoadedFlow, loaded
from workers.handling import flow_transition

__all__ = ["STARTABLE", "AnyRun", "arrival", "begin", "queue_for_slot", "started", "task_rows"]

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
    (announced); False, with nothing written, when it was no longer in ``state``,
    and False when the flow's state handlers ended it there (recorded).

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
    if not b.store.runs.begin(run.id, tasks, done, [state]):
        return False
    b.notify(run.id, State.RUNNING)
    return started(lf, run, state)


def started(lf: LoadedFlow, run: AnyRun, before: State, now: State = State.RUNNING) -> bool:
    """Let the flow's state handlers see a run enter ``now`` (Running or Queued) from
    ``before``; False when they ended it there (recorded: its tasks do not run)."""
    ended = flow_transition(lf, run.id, run.parameters, before, now)
    if ended.state is now:
        return True
    end_early(run, now, ended)
    return False


def arrival(run: AnyRun) -> float:
    """When a run joined the line for slots (seconds since the epoch): its creation."""
    return (aware(run.created) or utcnow()).timestamp()


def queue_for_slot(run: AnyRun, state: State, lf: LoadedFlow | None = None) -> None:
    """Record that a run waits for a concurrency slot (once), which the flow's state
    handlers see (``lf``: the run's flow, when the caller has it)."""
    if state is not State.QUEUED and current_backends().set_flow_run_state(
        run.id,
        State.QUEUED,
        f"waiting for a concurrency slot ({', '.join(run.labels)})",
        from_states=[state],
    ):
        store = current_backends().store
        started(lf or loaded(store, run.flow_id), run, state, State.QUEUED)
