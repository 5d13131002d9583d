"""A mapped task on workers: its own node fans out (:func:`fan_out`, built on
:func:`orchestrator.mapping.expand`) into a chord of one node per element, closed by
the ``collect_map`` task, which records the mapped task's state and result list
from its children's; the task's state handlers see each of its transitions. Imports
Celery, the pure core (constants, context, engine, ids, mapping, states),
:mod:`orchestrator.db.models` and :mod:`workers.app`, :mod:`workers.flow_cache`,
:mod:`workers.signatures`, :mod:`workers.upstream`."""

from __future__ import annotations

from celery import Task as CeleryTask
from celery import chain, chord

import orchestrator.constants as constants
from orchestrator.context import RunContext, entered
from orchestrator.db.models import FlowRun
from orchestrator.engine import Outcome, handled
from orchestrator.ids import task_run_id
from orchestrator.mapping import expand, fanning, mapped_outcome
from orchestrator.states import State
from workers.app import InfraRetrying, app, current_backends, recorded
from workers.flow_cache import LoadedFlow, loaded
from workers.signatures import collect_signature, finalize_signature, node_signature
from workers.upstream import read_upstream

__all__ = ["collect_map", "fan_out"]


def fan_out(
    node: CeleryTask,
    lf: LoadedFlow,
    run: FlowRun,
    slug: str,
    tr_id: str,
    owner: str,
    finalize: bool,
) -> Outcome:
    """Fan a mapped task out over its elements (replacing ``node``), or say why it
    ends now.

    Args:
        node: the mapped task's own node task (bound).
        lf: the run's flow.
        run: the flow run.
        slug: the mapped task.
        tr_id: its task run, claimed by ``owner``.
        owner: the claim's lease owner.
        finalize: the node ends its flow (``finalize`` follows the chord).

    Returns:
        The outcome to record when the task ends now (no element: its mapped
        outcome); otherwise it does not return: the chord replaces the node.
    """
    store = current_backends().store
    task = lf.task(slug)
    upstream = read_upstream(store, lf, run.id, slug, -1, None)
    constants_ = lf.flow.constants.get(task, {})
    modes = lf.flow.constant_modes.get(task, {})
    elements = expand(task, constants_, modes, upstream)
    with entered(RunContext(run.id, lf.version.name, slug, tr_id, parameters=run.parameters)):
        if isinstance(elements, Outcome):
            return handled(task, State.PENDING, elements)
        mapping = handled(task, State.PENDING, fanning(len(elements)))
        if mapping.state is not State.RUNNING:
            return mapping  # a state handler ended it before it mapped
        if not elements:
            return handled(task, State.RUNNING, mapped_outcome([]))
    width = len(elements)
    store.task_runs.start_mapped(tr_id, run.id, slug, task.name, width, owner)
    header = [node_signature(lf, run.id, slug, i, e) for i, e in enumerate(elements)]
    fan = chord(header, collect_signature(lf, run.id, slug, width))
    raise node.replace(chain(fan, finalize_signature(lf, run.id)) if finalize else fan)


@app.task(name=constants.COLLECT_MAP, base=InfraRetrying)
def collect_map(flow_run_id: str, slug: str, width: int, handlers: bool = False) -> dict[str, str]:
    """Record a mapped task's state and result list from its children's (through
    its state handlers, when it has any)."""
    store = current_backends().store
    tr_id = task_run_id(flow_run_id, slug)
    tr = store.task_runs.get(tr_id)
    assert tr is not None
    if not State(tr.state).is_final:
        ids = [task_run_id(flow_run_id, slug, i) for i in range(width)]
        rows = store.task_runs.by_ids(ids)
        outcome = mapped_outcome([(State(rows[i].state), rows[i].result) for i in ids])
        if handlers:
            run = store.flow_runs.get(flow_run_id)
            lf = loaded(store, run.flow_id)
            ctx = RunContext(run.id, lf.version.name, slug, tr_id, parameters=run.parameters)
            with entered(ctx):
                outcome = handled(lf.task(slug), State.RUNNING, outcome)
        store.task_runs.finish(tr_id, flow_run_id, outcome.state, outcome.message, outcome.result)
        tr = store.task_runs.get(tr_id) or tr
    return recorded(tr)
