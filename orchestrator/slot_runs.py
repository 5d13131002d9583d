"""The runs of schedule slots, as beat and backfills create them, each keyed by flow
and nominal fire time so a slot never gets two: :class:`Entry` (one scheduled flow),
:func:`slot_run` (the run of one slot, not stored yet), :func:`fire_slots` (a batch
of slots as the overlap policy decides them: runs started, buffered or recorded as
skipped, unfinished runs cancelled) and :func:`record_missed` (slots beat missed).
Beat (``workers/schedule_runner.py``) and backfills (:mod:`orchestrator.backfills`)
both call these, so they share slot keys and decisions.

May import the backends, the database package and the pure core (clock, errors,
parameters, requests, schedules, states)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.backends import Backends
from orchestrator.db.models import FlowRun, FlowVersion
from orchestrator.errors import ParameterError, SerializationError
from orchestrator.parameters import resolve_parameters
from orchestrator.requests import FlowRunRequest, NewFlowRun
from orchestrator.schedules.backfill import (
    BackfillSlot,
    Outcome,
)
from orchestrator.schedules.base import Schedule
from orchestrator.schedules.catchup import CatchUp, duration_text
from orchestrator.schedules.overlap import (
    Action,
    Busy,
    Overlap,
    SlotDecision,
    arrange,
    overlap_policy,
)
from orchestrator.schedules.slots import slot_key, utc_instant
from orchestrator.states import State

__all__ = ["Entry", "Fired", "busy_of", "fire_slots", "record_missed", "slot_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One scheduled flow as beat sees it: its project, newest version, parsed
    schedule and that schedule's hash."""

    project: str
    flow: FlowVersion
    schedule: Schedule
    schedule_hash: str

    @property
    def key(self) -> tuple[int, str]:
        """The flow's key, (project id, flow name), as bookmarks are stored."""
        return (self.flow.project_id, self.flow.name)

    @property
    def label(self) -> str:
        """``project/flow``, for the logs."""
        return f"{self.project}/{self.flow.name}"


@dataclass
class Fired:
    """What :func:`fire_slots` did: run ids by what happened, and every slot's outcome."""

    created: list[str] = field(default_factory=list)
    buffered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    outcomes: list[BackfillSlot] = field(default_factory=list)


def _parameters(entry: Entry) -> dict[str, Any]:
    return resolve_parameters(
        entry.flow.name, entry.flow.parameters, entry.schedule.parameter_defaults
    )


def slot_run(
    entry: Entry,
    slot: datetime,
    parameters: dict[str, Any],
    state: State,
    *,
    buffered: bool = False,
    origin: str = "scheduled",
) -> NewFlowRun:
    """The run of one slot, keyed by flow and nominal time, not stored yet.

    Args:
        entry: the scheduled flow.
        slot: the nominal fire time (aware).
        parameters: the run's parameter values.
        state: its first state.
        buffered: held back by the overlap policy.
        origin: ``scheduled`` (beat) or ``backfill``, the first word of its name.

    Returns:
        The run, named ``{origin} {slot}``, its scheduled start time the slot.
    """
    request = FlowRunRequest(
        flow_name=entry.flow.name,
        project_name=entry.project,
        parameters=parameters,
        idempotency_key=slot_key(entry.project, entry.flow.name, slot),
        run_name=f"{origin} {slot.isoformat()}",
        scheduled_start_time=utc_instant(slot),
    )
    new = NewFlowRun.of(request, entry.flow.id, parameters, entry.flow.labels or (), state)
    return dataclasses.replace(new, buffered=True) if buffered else new


def busy_of(unfinished: Sequence[FlowRun]) -> Busy:
    """What the overlap policy sees in a schedule's unfinished runs."""
    held = sum(1 for r in unfinished if r.buffered and r.state == State.SCHEDULED.value)
    return Busy(active=len(unfinished) - held, held=held)


def fire_slots(
    b: Backends,
    entry: Entry,
    slots: Sequence[datetime],
    now: datetime,
    *,
    policy: Overlap | str | None = None,
    origin: str = "scheduled",
) -> Fired:
    """Create what a batch of slots (ascending) gets under the overlap policy.

    Slots that already have a run (or a skipped record) are left alone; the others
    are decided one after the other by :func:`~orchestrator.schedules.overlap.arrange`
    from the schedule's unfinished runs, and each decision is carried out: a run
    in Scheduled (sent when due), a buffered run (sent once the schedule's earlier
    runs finished), a Skipped record saying why, or the unfinished runs cancelled
    (with their children) before a run is created. A flow whose parameters do not
    resolve gets a Failed record per slot instead.

    Args:
        b: the connections.
        entry: the scheduled flow.
        slots: the slots, ascending.
        now: the current time (only slots at or before it count as unfinished runs).
        policy: the overlap policy (default: the schedule's).
        origin: ``scheduled`` or ``backfill``, in each run's name.

    Returns:
        What was done.
    """
    chosen = overlap_policy(policy if policy is not None else entry.schedule.overlap)
    fired = Fired()
    there = b.store.flow_runs.by_keys(slot_key(entry.project, entry.flow.name, s) for s in slots)
    outcomes: dict[datetime, BackfillSlot] = {}
    fresh = []
    for slot in slots:
        found = there.get(slot_key(entry.project, entry.flow.name, slot))
        if found is None:
            fresh.append(slot)
        else:
            outcomes[slot] = BackfillSlot(slot, Outcome.THERE, found.id, State(found.state))
    try:
        parameters = _parameters(entry)
    except (ParameterError, SerializationError) as exc:
        for slot in fresh:
            outcomes[slot] = _record_failed(b, entry, slot, exc, origin)
        fired.outcomes = [outcomes[s] for s in slots]
        return fired
    unfinished = b.store.schedules.unfinished(entry.flow.project_id, entry.flow.name, now)
    blockers = [r.id for r in unfinished]
    decisions, _ = arrange(chosen, busy_of(unfinished), fresh)
    for decision in decisions:
        outcomes[decision.slot] = _carry_out(
            b, entry, decision, parameters, chosen, blockers, fired, origin
        )
    fired.outcomes = [outcomes[s] for s in slots]
    return fired


def _carry_out(
    b: Backends,
    entry: Entry,
    decision: SlotDecision,
    parameters: dict[str, Any],
    policy: Overlap,
    blockers: list[str],
    fired: Fired,
    origin: str,
) -> BackfillSlot:
    """Do what ``decision`` says for one slot; ``blockers`` (the schedule's unfinished
    runs, oldest first) is kept up to date for the next slot."""
    slot, action = decision.slot, decision.action
    when = slot.isoformat()
    if action is Action.SKIP:
        return _skip(b, entry, decision, parameters, policy, blockers, fired, origin)
    if action is Action.CANCEL_AND_START:
        for other in blockers:
            why = f"cancelled by the schedule (overlap policy {policy}): slot {when} starts instead"
            if b.cancel_flow_run(other, why):
                fired.cancelled.append(other)
                log.info("schedule: %s slot %s: cancelled run %s", entry.label, when, other)
        blockers.clear()
    buffered = action is Action.BUFFER
    message = None
    if buffered:
        message = f"buffered (overlap policy {policy}): waits for {_latest(blockers)} to finish"
    new = slot_run(entry, slot, parameters, State.SCHEDULED, buffered=buffered, origin=origin)
    run, created = b.store.flow_runs.insert(new, message)
    if not created:
        return BackfillSlot(slot, Outcome.THERE, run.id, State(run.state))
    blockers.append(run.id)
    (fired.buffered if buffered else fired.created).append(run.id)
    log.info(
        "schedule: %s slot %s: created run %s%s",
        entry.label,
        when,
        run.id,
        " (buffered)" * buffered,
    )
    return BackfillSlot(slot, Outcome.BUFFERED if buffered else Outcome.CREATED, run.id, new.state)


def _skip(
    b: Backends,
    entry: Entry,
    decision: SlotDecision,
    parameters: dict[str, Any],
    policy: Overlap,
    blockers: list[str],
    fired: Fired,
    origin: str,
) -> BackfillSlot:
    """Record a slot the overlap policy skips, saying why."""
    slot = decision.slot
    if decision.superseded_by is not None:
        why = f"superseded by the later slot {decision.superseded_by.isoformat()}"
    else:
        why = f"{_latest(blockers)} has not finished"
    message = f"skipped: overlap policy {policy}: {why}"
    skipped = slot_run(entry, slot, parameters, State.SKIPPED, origin=origin)
    run, created = b.store.flow_runs.insert_final(skipped, message)
    if not created:
        return BackfillSlot(slot, Outcome.THERE, run.id, State(run.state))
    fired.skipped.append(run.id)
    log.info("schedule: %s slot %s %s", entry.label, slot.isoformat(), message)
    return BackfillSlot(slot, Outcome.SKIPPED, run.id, State.SKIPPED)


def _latest(blockers: Sequence[str]) -> str:
    """``run <id>``: the latest unfinished run, for messages."""
    return f"run {blockers[-1]}" if blockers else "an earlier run"


def _record_failed(
    b: Backends, entry: Entry, slot: datetime, exc: Exception, origin: str
) -> BackfillSlot:
    """A Failed record for a slot whose parameters do not resolve."""
    message = f"scheduled run not started: {exc}"
    failed = slot_run(entry, slot, {}, State.FAILED, origin=origin)
    run, created = b.store.flow_runs.insert_final(failed, message)
    if created:
        log.error("schedule: %s slot %s: %s", entry.label, slot.isoformat(), message)
    return BackfillSlot(slot, Outcome.THERE, run.id, State(run.state))


def record_missed(
    b: Backends,
    entry: Entry,
    slots: Sequence[datetime],
    now: datetime,
    latest: datetime | None,
) -> list[str]:
    """Record slots beat missed as Skipped runs saying why; the ids this call recorded.

    Args:
        b: the connections.
        entry: the scheduled flow.
        slots: the missed slots.
        now: when beat saw them.
        latest: the latest missed slot, which runs instead (only the latest runs).
    """
    catch: CatchUp = entry.schedule.catch_up
    if catch.latest_only:
        why = f"the latest missed slot ({latest.isoformat()}) ran instead" if latest else ""
    else:
        window = duration_text(catch.window.total_seconds() if catch.window is not None else 0)
        why = f"older than the catch-up window ({window}) at {utc_instant(now).isoformat()}"
    try:
        parameters = _parameters(entry)
    except (ParameterError, SerializationError):
        parameters = {}
    recorded = []
    for slot in slots:
        message = f"missed: no beat was running at {slot.isoformat()}" + (f"; {why}" if why else "")
        run, created = b.store.flow_runs.insert_final(
            slot_run(entry, slot, parameters, State.SKIPPED), message
        )
        if created:
            recorded.append(run.id)
    return recorded
