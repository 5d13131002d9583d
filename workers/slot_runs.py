"""The runs of schedule slots, as beat creates them: :class:`Entry` (one scheduled
flow as beat sees it), the run of one slot keyed by flow and nominal fire time
(:func:`slot_run`), creating it in Scheduled, or Failed when its parameters do not
resolve (:func:`create_slot_run`), and recording a missed slot as a Skipped run
(:func:`record_skipped`). Imports :mod:`orchestrator.db` and the pure core
(errors, parameters, requests, schedules, states)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.db import Store
from orchestrator.db.models import FlowVersion
from orchestrator.errors import ParameterError, SerializationError
from orchestrator.parameters import resolve_parameters
from orchestrator.requests import FlowRunRequest, NewFlowRun
from orchestrator.schedules.base import Schedule
from orchestrator.schedules.slots import slot_key, utc_instant
from orchestrator.states import State

__all__ = ["Entry", "create_slot_run", "record_skipped", "slot_run"]

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


def _parameters(entry: Entry) -> dict[str, Any]:
    return resolve_parameters(
        entry.flow.name, entry.flow.parameters, entry.schedule.parameter_defaults
    )


def slot_run(entry: Entry, slot: datetime, parameters: dict[str, Any], state: State) -> NewFlowRun:
    """The run of one slot, keyed by flow and nominal time, not stored yet.

    Args:
        entry: the scheduled flow.
        slot: the nominal fire time (aware).
        parameters: the run's parameter values.
        state: its first state.

    Returns:
        The run, named ``scheduled {slot}``, its scheduled start time the slot.
    """
    request = FlowRunRequest(
        flow_name=entry.flow.name,
        project_name=entry.project,
        parameters=parameters,
        idempotency_key=slot_key(entry.project, entry.flow.name, slot),
        run_name=f"scheduled {slot.isoformat()}",
        scheduled_start_time=utc_instant(slot),
    )
    return NewFlowRun.of(request, entry.flow.id, parameters, entry.flow.labels or (), state)


def create_slot_run(store: Store, entry: Entry, slot: datetime) -> str | None:
    """Create the run of one slot (state Scheduled); its id when this call created it.

    A slot whose parameters do not resolve gets a Failed run saying why instead
    (and None)."""
    try:
        parameters = _parameters(entry)
    except (ParameterError, SerializationError) as exc:
        message = f"scheduled run not started: {exc}"
        _, created = store.flow_runs.insert_final(slot_run(entry, slot, {}, State.FAILED), message)
        if created:
            log.error("beat: %s slot %s: %s", entry.label, slot.isoformat(), message)
        return None
    run, created = store.flow_runs.insert(slot_run(entry, slot, parameters, State.SCHEDULED))
    if not created:
        return None
    log.info("beat: %s slot %s: created run %s", entry.label, slot.isoformat(), run.id)
    return run.id


def record_skipped(
    store: Store, entry: Entry, slot: datetime, latest: datetime | None
) -> str | None:
    """Record a missed slot as a Skipped run; its id when this call recorded it.

    Args:
        store: the database.
        entry: the scheduled flow.
        slot: the missed slot.
        latest: the latest missed slot, which runs instead (if any).
    """
    try:
        parameters = _parameters(entry)
    except (ParameterError, SerializationError):
        parameters = {}
    instead = f"; the latest missed slot ({latest.isoformat()}) ran instead" if latest else ""
    message = f"missed: no beat was running at {slot.isoformat()}{instead}"
    skipped = slot_run(entry, slot, parameters, State.SKIPPED)
    run, created = store.flow_runs.insert_final(skipped, message)
    return run.id if created else None
