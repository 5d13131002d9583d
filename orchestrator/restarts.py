"""Restarting a finished flow run from its failure (:func:`restart_flow_run`): the
database puts the run and its failed children back in place
(:class:`~orchestrator.db.restarts.Restarts`), then the run goes from Scheduled to
Submitted and its start is sent to the workers. :func:`tries` reads a run's tries
back from its state history. Client layer: imports the backends, the database
package and the core's restarting and states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.backends import Backends
from orchestrator.db.restarts import Restarted
from orchestrator.restarting import RESTARTED
from orchestrator.states import State

__all__ = ["Restarted", "Try", "restart_flow_run", "tries"]


@dataclass
class Try:
    """One try of a flow run: its first, or one after a restart.

    Attributes:
        number: 1 for the first try, 2 after the first restart, ...
        queued: when it was created (the first try) or restarted.
        cause: "created", or the restart's message (``restarted: try 2``, ...).
        started: when it began to run, if it did.
        ended: when it ended, if it did.
        state: its last recorded state.
        message: that state's message.
    """

    number: int
    queued: datetime
    cause: str = "created"
    started: datetime | None = None
    ended: datetime | None = None
    state: State = State.SCHEDULED
    message: str | None = None


def tries(b: Backends, flow_run_id: str) -> list[Try]:
    """A flow run's tries, oldest first, read from its state history.

    Raises:
        FlowRunNotFound: no such run.
    """
    b.store.flow_runs.get(flow_run_id)
    out: list[Try] = []
    for e in b.store.flow_runs.history(flow_run_id):
        if e.task_run_id is not None:
            continue
        state = State(e.state)
        restart = state is State.SCHEDULED and (e.message or "").startswith(f"{RESTARTED}:")
        if not out or restart:
            out.append(Try(len(out) + 1, e.timestamp, (e.message or "") if restart else "created"))
        last = out[-1]
        last.state, last.message = state, e.message
        if state is State.RUNNING and last.started is None:
            last.started = e.timestamp
        if state.is_final:
            last.ended = e.timestamp
    return out


def restart_flow_run(b: Backends, flow_run_id: str) -> Restarted:
    """Restart a finished flow run that did not succeed, in place (same id).

    Its task runs that succeeded (or were skipped) keep their state and result; the
    others, and everything downstream of them, run again with their retries counted
    afresh. A StartFlowRun whose child failed restarts that child in place, down the
    tree; a child that succeeded is kept.

    Raises:
        FlowRunNotFound: no such run.
        RestartRefused: the run may not be restarted (the one-line reason).
    """
    done = b.store.restarts.restart(flow_run_id)
    b.notify(flow_run_id, State.SCHEDULED)
    for child in done.children:
        b.notify(child, State.SCHEDULED)
    message = f"restarted: try {done.attempt}, sent to the workers"
    if b.set_flow_run_state(flow_run_id, State.SUBMITTED, message, from_states=[State.SCHEDULED]):
        b.dispatch(flow_run_id, done.flow_name)
    return done
