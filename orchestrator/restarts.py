"""Restarting a finished flow run from its failure (:func:`restart_flow_run`): the
database puts the run and its failed children back in place
(:class:`~orchestrator.db.restarts.Restarts`), then the run goes from Scheduled to
Submitted and its start is sent to the workers. Client layer: imports the backends,
the database package and the core's states."""

from __future__ import annotations

from orchestrator.backends import Backends
from orchestrator.db.restarts import Restarted
from orchestrator.states import State

__all__ = ["Restarted", "restart_flow_run"]


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
