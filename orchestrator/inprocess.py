"""The services the pure core asks for (:class:`orchestrator.hooks.Services`), as
this process provides them: registering a flow through :mod:`orchestrator.registry`,
and running a stored child flow run here, with :func:`orchestrator.local.run_flow`,
for ``flow.run()`` of a Flow-of-Flows (:func:`run_stored`).

:mod:`orchestrator.client` installs :class:`InProcessServices` when it is imported.
May import the backends, the registry and the core; never the client or the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.backends import Backends, backends
from orchestrator.config import Settings
from orchestrator.engine import ChildTaskRun, Outcome, WaitForFlowRun, mirror_outcome
from orchestrator.ids import task_run_id
from orchestrator.loader import load_flow
from orchestrator.local import run_flow
from orchestrator.registry import register
from orchestrator.states import State

if TYPE_CHECKING:
    from orchestrator.flow import Flow
    from orchestrator.task import Task


def run_stored(b: Backends, flow_run_id: str, takes: ChildTaskRun | None = None) -> Outcome:
    """Run a stored flow run in this process unless it is final already, record its
    task runs and state, and return the outcome a task mirroring it takes.

    Args:
        b: the connections.
        flow_run_id: the stored run.
        takes: the task run whose result the waiting task takes (None: the run's
            structured result).

    Returns:
        The run's state (Failed for TimedOut and TriggerFailed), a message naming it,
        and the structured result (its id, state and task results), or with
        ``takes`` that task run's result (see :func:`mirror_outcome`).
    """
    store = b.store
    run = store.flow_runs.get(flow_run_id)
    if not State(run.state).is_final:
        flow = load_flow(store.flows.get(run.flow_id).import_ref)
        b.set_flow_run_state(flow_run_id, State.RUNNING, "running in process")
        final = run_flow(flow, dict(run.parameters or {}), flow_run_id=flow_run_id)
        store.task_runs.create(flow_run_id, [(t.slug or t.name, t.name) for t in final.result])
        for t, st in final.result.items():
            tr_id = task_run_id(flow_run_id, t.slug or t.name)
            store.task_runs.finish(tr_id, flow_run_id, st.state, st.message, st.result)
        b.set_flow_run_state(flow_run_id, final.state, final.message)
        run = store.flow_runs.get(flow_run_id)
    runs = {
        (t.slug, t.map_index): (State(t.state), t.result)
        for t in store.task_runs.of_flow_run(flow_run_id)
    }
    state, message, result = mirror_outcome(run.id, State(run.state), run.message, runs, takes)
    return Outcome(state, result=result, message=message)


class InProcessServices:
    """:class:`orchestrator.hooks.Services` on this process's backends.

    Args:
        settings: where Redis and the database are; by default read from the
            environment on each call.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def _backends(self) -> Backends:
        return backends(self.settings)

    def register_flow(self, flow: Flow, project_name: str, import_ref: str | None) -> int:
        """Store ``flow`` in a project and return its version (see :func:`register`)."""
        return register(flow, project_name, self._backends().store, import_ref)

    def run_child(self, task: Task, wait_for: WaitForFlowRun) -> Outcome:
        """Store the child run when it is only prepared, run it here, and return the
        outcome ``task`` takes from it."""
        b = self._backends()
        if wait_for.new is not None:
            b.store.flow_runs.insert(wait_for.new)
        return run_stored(b, wait_for.flow_run_id, wait_for.takes)
