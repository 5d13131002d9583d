"""Backfills: one run per slot of a flow's schedule over a range of dates, decided by
an overlap policy and keyed like beat's runs, so running one twice, or over slots
beat already fired, creates nothing new (:func:`backfill`; a dry run only lists the
slots). :meth:`Client.backfill` and ``orchestrator schedules backfill`` call it.

May import the backends, :mod:`orchestrator.slot_runs` and the pure core (clock,
errors, parameters, schedules, states)."""

from __future__ import annotations

from datetime import datetime

from orchestrator.backends import Backends
from orchestrator.clock import utcnow
from orchestrator.errors import ScheduleError
from orchestrator.parameters import resolve_parameters
from orchestrator.schedules.backfill import (
    BackfillReport,
    BackfillSlot,
    Bound,
    Outcome,
    backfill_range,
    backfill_slots,
)
from orchestrator.schedules.loading import schedule_from_dict
from orchestrator.schedules.overlap import Overlap, overlap_policy
from orchestrator.schedules.slots import schedule_hash, slot_key
from orchestrator.slot_runs import Entry, fire_slots
from orchestrator.states import State

__all__ = ["backfill"]


def backfill(
    b: Backends,
    flow_name: str,
    project_name: str,
    start: Bound,
    end: Bound,
    *,
    overlap: Overlap | str = Overlap.BUFFER_ALL,
    dry_run: bool = False,
    now: datetime | None = None,
) -> BackfillReport:
    """Create one run per slot of a flow's schedule from ``start`` to ``end``.

    See :meth:`orchestrator.client.Client.backfill`, which calls this.

    Raises:
        FlowNotFound: no such project or flow.
        ScheduleError: the flow has no schedule, a bad range or overlap policy.
        ParameterError: the schedule's parameter defaults leave a required
            parameter without a value (nothing is created).
    """
    policy = overlap_policy(overlap)
    flow = b.store.flows.newest(project_name, flow_name)
    if not flow.schedule:
        raise ScheduleError(
            f"flow {flow_name!r} in project {project_name!r} has no schedule to backfill"
        )
    schedule = schedule_from_dict(flow.schedule)
    # a clear error before anything is stored when the runs could not start
    resolve_parameters(flow.name, flow.parameters, schedule.parameter_defaults)
    first, last = backfill_range(schedule, start, end)
    slots = backfill_slots(schedule, start, end)
    entry = Entry(project_name, flow, schedule, schedule_hash(schedule))
    cancelled: list[str] = []
    if dry_run:
        there = b.store.flow_runs.by_keys(slot_key(project_name, flow.name, s) for s in slots)
        outcomes = []
        for slot in slots:
            found = there.get(slot_key(project_name, flow.name, slot))
            outcomes.append(
                BackfillSlot(slot, Outcome.NEW)
                if found is None
                else BackfillSlot(slot, Outcome.THERE, found.id, State(found.state))
            )
    else:
        fired = fire_slots(b, entry, slots, now or utcnow(), policy=policy, origin="backfill")
        outcomes, cancelled = fired.outcomes, fired.cancelled
    return BackfillReport(
        flow_name=flow.name,
        project_name=project_name,
        version=flow.version,
        schedule=schedule,
        timezone=schedule.timezone,
        first=first,
        last=last,
        overlap=policy,
        dry_run=dry_run,
        slots=tuple(outcomes),
        cancelled=tuple(cancelled),
    )
