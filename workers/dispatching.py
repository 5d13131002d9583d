"""Sending due runs to the workers, for beat: every Scheduled run whose time has come
(:func:`dispatch_due`), and, for each schedule not paused whose earlier runs have
finished, its oldest buffered run (:func:`release_buffered`: the overlap policy's
:func:`~orchestrator.schedules.overlap.may_release` decides). A compare-and-set to
Submitted comes first, so two beats never send one run twice. Imports
:mod:`orchestrator.backends`, :mod:`orchestrator.slot_runs` and the pure core (clock,
schedules, states); no Celery."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from orchestrator.backends import Backends
from orchestrator.clock import aware
from orchestrator.db.models import FlowRun
from orchestrator.schedules.overlap import may_release
from orchestrator.slot_runs import busy_of
from orchestrator.states import State

__all__ = ["LATE_AFTER", "Dispatcher", "dispatch_due", "release_buffered"]

log = logging.getLogger(__name__)

#: A run dispatched this much after its nominal time says so in its state message.
LATE_AFTER = timedelta(seconds=60)

#: Sends a run to the workers: ``(flow_run_id, flow_name)``.
Dispatcher = Callable[[str, str], None]


class NotSent(Exception):
    """Sending a run failed; it was put back in Scheduled for the next tick."""


def _send(
    b: Backends, dispatch: Dispatcher, run: FlowRun, flow_name: str, message: str | None
) -> bool:
    """Move a run from Scheduled to Submitted and send it; False when another beat or
    a worker got there first.

    Raises:
        NotSent: sending failed (the run is Scheduled again).
    """
    if not b.set_flow_run_state(run.id, State.SUBMITTED, message, from_states=[State.SCHEDULED]):
        return False
    try:
        dispatch(run.id, flow_name)
    except Exception as exc:
        # not sent: put it back so the next tick tries again
        b.store.flow_runs.set_state(
            run.id,
            State.SCHEDULED,
            f"dispatch failed, retrying: {exc}",
            from_states=[State.SUBMITTED],
        )
        log.error("beat: could not send run %s of %s: %s", run.id, flow_name, exc)
        raise NotSent(run.id) from exc
    return True


def dispatch_due(b: Backends, dispatch: Dispatcher, now: datetime, limit: int) -> list[str]:
    """Send every Scheduled run whose time has come (buffered ones aside).

    Returns:
        The ids sent; stops at the first run that could not be sent.
    """
    sent: list[str] = []
    for run, flow_name in b.store.schedules.due_runs(now, limit):
        nominal = aware(run.scheduled_start_time) or now
        message = None
        if now - nominal > LATE_AFTER:
            message = f"dispatched late: due at {nominal.isoformat()}"
        try:
            if _send(b, dispatch, run, flow_name, message):
                sent.append(run.id)
        except NotSent:
            break
    return sent


def release_buffered(b: Backends, dispatch: Dispatcher, now: datetime) -> list[str]:
    """Send the oldest buffered run of each schedule that has no active run left
    and is not paused.

    Buffered runs so start one at a time per schedule, in slot order.

    Returns:
        The ids sent.
    """
    sent: list[str] = []
    buffering = b.store.schedules.buffering(now)
    paused = b.store.schedules.pauses() if buffering else {}
    for project_id, flow_name in buffering:
        if (project_id, flow_name) in paused:
            continue  # a paused schedule starts nothing, its buffered runs included
        unfinished = b.store.schedules.unfinished(project_id, flow_name, now)
        if not may_release(busy_of(unfinished)):
            continue
        oldest = next(r for r in unfinished if r.buffered and r.state == State.SCHEDULED.value)
        message = "buffered run sent: the schedule's earlier runs have finished"
        try:
            if _send(b, dispatch, oldest, flow_name, message):
                sent.append(oldest.id)
                log.info("beat: %s: sent buffered run %s", flow_name, oldest.id)
        except NotSent:
            break
    return sent
