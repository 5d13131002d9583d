"""State handlers on workers: the flow's handlers called on a flow run's moves to
Running, Queued and its final state (:func:`flow_transition`), with the run's
context entered, and the waiting task whose handlers see a mirrored child's state
(:func:`handled_task`). The handlers themselves are called by the core
(:mod:`orchestrator.handlers`, :func:`orchestrator.engine.handled`), the same
functions ``flow.run()`` uses; without handlers everything here returns at once.
Imports the pure core (context, handlers, states, task) and
:mod:`workers.flow_cache`."""

from __future__ import annotations

from typing import Any

from orchestrator.context import RunContext, entered
from orchestrator.handlers import flow_changed
from orchestrator.states import FlowRunState, State
from orchestrator.task import Task
from workers.flow_cache import LoadedFlow

__all__ = ["flow_transition", "handled_task"]


def flow_transition(
    lf: LoadedFlow,
    run_id: str,
    parameters: dict[str, Any] | None,
    old: State,
    new: State,
    message: str | None = None,
) -> FlowRunState:
    """What a flow run's move from ``old`` to ``new`` comes to once the flow's
    handlers have seen it: ``new`` (with its message), or the final state they
    chose (Failed, naming the handler, when one raised).

    Args:
        lf: the run's flow.
        run_id: the run.
        parameters: its parameter values (in the context the handlers see).
        old: the state it leaves.
        new: the state it enters.
        message: the new state's message.
    """
    wanted = FlowRunState(new, message)
    if not lf.flow.state_handlers:
        return wanted
    ctx = RunContext(run_id, lf.version.name, "", parameters=dict(parameters or {}))
    with entered(ctx):
        return flow_changed(lf.flow, FlowRunState(old), wanted)


def handled_task(lf: LoadedFlow | None, slug: str) -> Task | None:
    """The task ``slug`` of ``lf`` when it has state handlers (else None: nothing to
    call when it takes a child's state)."""
    if lf is None:
        return None
    task = lf.task(slug)
    return task if task.state_handlers else None
