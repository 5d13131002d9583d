"""One attempt of a claimed task run on a worker (:func:`execute`): what the engine's
one attempt sequence (:func:`orchestrator.engine.attempt`) needs here, namely the
upstream read from the database, a mapped child's element, the run context, and,
around the code only, the heartbeat that renews the lease (and the run's slots) and
the capture of its log lines. Imports Celery's time-limit error, the pure core
(engine, mapping, context, logcapture, states), :mod:`orchestrator.db.models`,
:mod:`orchestrator.backends` (a type) and :mod:`workers.app`,
:mod:`workers.flow_cache`, :mod:`workers.heartbeat`, :mod:`workers.observing` (the
attempt's span and figures), :mod:`workers.running`, :mod:`workers.upstream`."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

from celery.exceptions import SoftTimeLimitExceeded

import orchestrator.logcapture as logcapture
import workers.observing as observing
from orchestrator.backends import Backends
from orchestrator.context import RunContext, entered
from orchestrator.db.models import FlowRun, TaskRun
from orchestrator.engine import Outcome, attempt, handled
from orchestrator.mapping import Element, element_constants
from orchestrator.states import State
from workers.app import current_backends, current_slots
from workers.flow_cache import LoadedFlow
from workers.heartbeat import heartbeat
from workers.running import CodeCancelled, running_code
from workers.upstream import read_upstream

__all__ = ["execute"]


def execute(
    lf: LoadedFlow,
    run: FlowRun,
    tr: TaskRun,
    slug: str,
    map_index: int,
    element: Element | None,
    owner: str,
    slots_fresh: bool = False,
) -> Outcome:
    """Run a claimed task run's code, or say why it does not run (its trigger, a
    cancelled flow run).

    Args:
        lf: the run's flow.
        run: the flow run, as read with the claim.
        tr: the claimed task run.
        slug: its task.
        map_index: its index among a mapped task's children (-1: not one).
        element: a mapped child's element (its mapped values and their states).
        owner: the lease owner of the claim.
        slots_fresh: the run's slots were just taken (no need to renew them before
            the code starts).

    Returns:
        The attempt's outcome, to record.
    """
    task = lf.task(slug)
    if State(run.state).is_final:  # cancelled, or ended by a flow's state handler
        message = "flow run cancelled" if State(run.state) is State.CANCELLED else None
        cancelled = Outcome(State.CANCELLED, message=message or f"flow run ended {run.state}")
        with entered(RunContext(run.id, lf.version.name, slug, tr.id, map_index)):
            return handled(task, State.PENDING, cancelled)
    b = current_backends()
    limited = bool(run.labels or run.parent_flow_run_id)
    if limited and not slots_fresh:
        current_slots().renew(run.id)
    upstream = read_upstream(b.store, lf, run.id, slug, map_index, element)
    constants = lf.flow.constants.get(task, {})
    if element is not None:
        constants = element_constants(constants, lf.flow.constant_modes.get(task, {}), element)
    ctx = _context(lf, run, tr, slug, map_index)
    project = functools.partial(observing.project_of, b.store, lf.version.project_id)
    with observing.watched(lf.version.name, project, run, tr, slug, map_index) as watch:
        try:
            outcome = attempt(
                task,
                constants,
                upstream,
                ctx,
                call=watch.call(logcapture.traced),
                timeout_errors=(SoftTimeLimitExceeded,),
                around=functools.partial(_held, b, run.id, limited, tr, owner),
                max_bytes=b.settings.max_value_bytes,
            )
        except CodeCancelled:  # cancelled as the code was about to start: it did not run
            outcome = Outcome(State.CANCELLED, message="flow run cancelled")
        watch.ended(outcome)
    return outcome


def _context(lf: LoadedFlow, run: FlowRun, tr: TaskRun, slug: str, map_index: int) -> RunContext:
    """The run context the task's code sees."""
    return RunContext(
        flow_run_id=run.id,
        flow_name=lf.version.name,
        task_slug=slug,
        task_run_id=tr.id,
        map_index=map_index,
        parameters=dict(run.parameters or {}),
        attempt=tr.attempts,
    )


@contextlib.contextmanager
def _held(b: Backends, run_id: str, limited: bool, tr: TaskRun, owner: str) -> Iterator[None]:
    """While the code runs: the lease (and the slots of a ``limited`` run) renewed by
    the heartbeat, the lines captured, the Celery task running it recorded (a cancel
    terminates it)."""
    lease = b.settings.lease_seconds
    with (
        heartbeat.holding(_renewer(b, tr.id, owner, lease, run_id if limited else None), lease),
        logcapture.task_run_logs(b.store, run_id, tr.id, tr.attempts, label=_label(run_id, tr)),
        running_code(b.redis, b.store, run_id, tr.id),
    ):
        yield


def _label(run_id: str, tr: TaskRun) -> str:
    """How the worker log names a task run's printed lines."""
    index = f"[{tr.map_index}]" if tr.map_index >= 0 else ""
    return f"flow run {run_id} task {tr.slug}{index}"


def _renewer(
    b: Backends, tr_id: str, owner: str, lease: float, run_id: str | None
) -> Callable[[], None]:
    """What the heartbeat calls for one running task run: renew its lease, and its
    flow run's slots when it has any."""
    store = b.store

    def renew() -> None:
        store.task_runs.renew_lease(tr_id, owner, lease)
        if run_id is not None:
            current_slots().renew(run_id)

    return renew
