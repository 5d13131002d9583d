"""A one-task flow run run inline: its task runs in the Celery task that started the
run (or waits for it) and the run is finalized there, with no canvas and no further
messages (:func:`run_inline`). What came of it is an :data:`InlineResult`:
:class:`Finished`, :class:`HandedOver` to a node task, or :class:`NotMine`.
Imports Celery (signatures), redis-py's errors, the pure core (engine, errors, ids,
requests, states), :mod:`orchestrator.db` and :mod:`workers.app`,
:mod:`workers.attempt`, :mod:`workers.begin`, :mod:`workers.finalize`,
:mod:`workers.flow_cache`, :mod:`workers.handling`, :mod:`workers.mirroring`,
:mod:`workers.signatures`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeAlias

import redis
from celery.canvas import Signature

from orchestrator.db import Claim, Link, Mirror
from orchestrator.engine import Outcome, flow_state
from orchestrator.errors import BackendUnavailable
from orchestrator.ids import task_run_id
from orchestrator.requests import NewFlowRun
from orchestrator.states import State
from workers.app import SETTINGS, current_backends, lease_owner, recorded_state, worker_id
from workers.attempt import execute
from workers.begin import AnyRun, started, task_rows
from workers.finalize import finalize_run, release
from workers.flow_cache import LoadedFlow
from workers.handling import flow_transition
from workers.mirroring import Waiting, mirror_child, mirrored
from workers.signatures import node_signature

__all__ = ["Finished", "HandedOver", "InlineResult", "NotMine", "run_inline"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finished:
    """The run is final, in ``state``.

    Attributes:
        recorded: what the waiting parent task run recorded once it took the run's
            final state (None when no task run waits for the run).
    """

    state: State
    recorded: dict[str, str] | None = None


@dataclass(frozen=True)
class HandedOver:
    """The node task of ``signature`` takes over (send it): the task retries later,
    waits for a child run, or a backend failed here."""

    signature: Signature


@dataclass(frozen=True)
class NotMine:
    """Nothing more to do here: the run was not in the state to begin from (nothing
    written), or another worker holds the task run's lease (it finishes the run, or
    the sweeper finds it stuck)."""


#: What :func:`run_inline` came to.
InlineResult: TypeAlias = Finished | HandedOver | NotMine


@dataclass(frozen=True)
class _Inline:
    """One inline run's fixed values."""

    lf: LoadedFlow
    run: AnyRun
    slug: str
    owner: str
    waiting: Waiting | None
    tasks: list[tuple[str, str]]
    params: dict[str, Any]
    handover: Signature

    @classmethod
    def of(cls, lf: LoadedFlow, run: AnyRun, waiting: Waiting | None) -> _Inline:
        """The values for running ``run``'s one task (a fresh lease owner)."""
        slug = lf.inline_slug
        assert slug is not None
        tasks, params = task_rows(lf, run)
        handover = node_signature(lf, run.id, slug, finalize=True)
        return cls(lf, run, slug, lease_owner(), waiting, tasks, params, handover)

    @property
    def tr_id(self) -> str:
        return task_run_id(self.run.id, self.slug)


def run_inline(
    lf: LoadedFlow,
    run: AnyRun,
    begin_from: State | None = None,
    link: Link | None = None,
    waiting: Waiting | None = None,
) -> InlineResult:
    """Run a one-task flow run's task here, in the Celery task that started the run
    (or waits for it), and finalize it: no canvas, no further messages.

    Args:
        lf: the run's flow, of one inline task.
        run: the run; a :class:`~orchestrator.requests.NewFlowRun` (with
            ``begin_from``) is not stored yet: it is inserted in the transaction
            that begins it (:class:`NotMine` when its id is taken already).
        begin_from: start the run from this state first (its task runs created, the
            task claimed and the run Running, in one transaction).
        link: with ``begin_from``, the parent task run that starts waiting for this
            run, recorded in that same transaction.
        waiting: the parent task run that waits for this run: it takes the run's
            final state when the run ends here, in the same transaction when it can
            (what it recorded is :attr:`Finished.recorded`).

    Returns:
        :class:`Finished` when the run is final; :class:`HandedOver` with the node
        task that takes over when the task retries later, waits for a child run, or
        a backend failed; :class:`NotMine` when the run was not in ``begin_from``
        (nothing written) or another worker holds the task run's lease.
    """
    job = _Inline.of(lf, run, waiting)
    claim: Claim | None = None
    if begin_from is not None:
        claim = _begin(job, begin_from, link)
        if claim is None:
            return NotMine()
        if not started(lf, run, begin_from):  # a flow's state handler ended it
            return _ended(job, State(current_backends().store.flow_runs.get(run.id).state))
    try:
        if claim is None:
            claim = current_backends().store.task_runs.claim(
                job.tr_id, run.id, job.owner, SETTINGS.lease_seconds, worker_id()
            )
        return _attempt(job, claim, fresh=begin_from is not None)
    except (BackendUnavailable, redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("flow run %s: %s; its node task takes over", run.id, exc)
        return HandedOver(job.handover)


def _begin(job: _Inline, begin_from: State, link: Link | None) -> Claim | None:
    """Begin the run from ``begin_from`` and claim its task (inserting a run not
    stored yet, and linking the waiting parent), in one transaction; announce it."""
    b = current_backends()
    run = job.run
    create = run if isinstance(run, NewFlowRun) else None
    claim = b.store.runs.begin_and_claim(
        run.id,
        job.tasks,
        job.params,
        [begin_from],
        job.slug,
        job.owner,
        SETTINGS.lease_seconds,
        worker_id(),
        link,
        create=create,
    )
    if claim is not None:
        b.notify(run.id, State.RUNNING)
    return claim


def _attempt(job: _Inline, claim: Claim, fresh: bool) -> InlineResult:
    """Run the claimed task (``fresh``: the run's slots were taken right before) and
    record what came of it."""
    store = current_backends().store
    run_id = job.run.id
    if not claim.claimed:
        if State(claim.task_run.state).is_final:
            return _ended(job, State(finalize_run(run_id, job.lf)["state"]))
        return HandedOver(job.handover) if claim.task_run.child_flow_run_id else NotMine()
    if claim.task_run.child_flow_run_id:  # restarted, with its child: the node splices it
        return HandedOver(job.handover)
    outcome = execute(job.lf, claim.flow_run, claim.task_run, job.slug, -1, None, job.owner, fresh)
    wait_for = outcome.wait_for
    if wait_for is not None:
        if wait_for.new is not None:
            store.flow_runs.insert(wait_for.new)
        store.task_runs.finish(
            job.tr_id,
            run_id,
            State.RUNNING,
            outcome.message,
            wait_for.takes.as_json() if wait_for.takes is not None else None,
            owner=job.owner,
            child_flow_run_id=wait_for.flow_run_id,
        )
        return HandedOver(job.handover)  # the node splices the child in
    if outcome.state is not State.RETRYING and job.lf.reference == [job.slug]:
        # the task's state decides the flow's (and the waiting parent's): record
        # them all at once
        return _end_flow(job, claim, outcome)
    if not store.task_runs.finish(
        job.tr_id,
        run_id,
        outcome.state,
        outcome.message,
        outcome.result,
        owner=job.owner,
        retry_in=outcome.retry_in,
    ):
        return NotMine()  # our lease was lost: its new holder records the run
    if outcome.state is State.RETRYING:
        return HandedOver(job.handover.set(countdown=outcome.retry_in or 0))
    known: dict[str, State] = {job.slug: outcome.state}
    return _ended(job, State(finalize_run(run_id, job.lf, claim.flow_run, known)["state"]))


def _end_flow(job: _Inline, claim: Claim, outcome: Outcome) -> InlineResult:
    """Record the task run, the flow run's final state and the waiting parent's
    mirrored state in one transaction."""
    b = current_backends()
    run_id = job.run.id
    final, message = flow_state({job.slug: outcome.state})
    ended = flow_transition(job.lf, run_id, job.params, State.RUNNING, final, message)
    final, message = ended.state, ended.message or message
    mirror = None
    if job.waiting is not None:
        w = job.waiting
        runs = {(slug, -1): (State.SUCCESS, value) for slug, value in job.params.items()}
        runs[(job.slug, -1)] = (outcome.state, outcome.result)
        taken = mirrored(w, run_id, final, message, runs)
        mirror = Mirror(w.task_run_id, w.flow_run_id, taken.state, taken.message, taken.result)
    task_done, flow_done, took = b.store.runs.finish_task_and_flow(
        job.tr_id,
        run_id,
        outcome.state,
        outcome.message,
        outcome.result,
        job.owner,
        final,
        message,
        mirror,
    )
    if not task_done:
        return NotMine()  # our lease was lost: its new holder records the run
    if not flow_done:  # no longer Running (cancelled meanwhile)
        return _ended(job, State(finalize_run(run_id, job.lf)["state"]))
    b.notify(run_id, final)
    release(claim.flow_run)
    if mirror is not None and took:
        return _ended(job, final, recorded_state(mirror.task_run_id, mirror.state, run_id))
    return _ended(job, final)


def _ended(job: _Inline, state: State, recorded: dict[str, str] | None = None) -> Finished:
    """The run ended in ``state``; a waiting parent task run not given the run's
    state with its end (``recorded``) takes it now."""
    if job.waiting is not None and recorded is None:
        child = current_backends().store.flow_runs.get(job.run.id)
        recorded = mirror_child(job.waiting, child)
    return Finished(state, recorded)
