"""Backfills as pure values: the range a backfill covers, read in the schedule's zone
(:func:`backfill_range`), its slots (:func:`backfill_slots`), and what a backfill did
with each (:class:`BackfillSlot`, :class:`BackfillReport`). Pure: imports only
pendulum, :mod:`orchestrator.errors`, :mod:`orchestrator.states` and the schedules
package's ``base``, ``overlap`` and ``zones``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

import pendulum

from orchestrator.errors import ScheduleError
from orchestrator.schedules.base import Schedule
from orchestrator.schedules.overlap import Overlap
from orchestrator.schedules.zones import Zone, load_zone
from orchestrator.states import State

__all__ = [
    "MAX_BACKFILL_SLOTS",
    "BackfillReport",
    "BackfillSlot",
    "Outcome",
    "backfill_range",
    "backfill_slots",
]

#: The most slots one backfill creates; a longer range is refused (backfill it in parts).
MAX_BACKFILL_SLOTS = 10_000

_ONE_MICROSECOND = timedelta(microseconds=1)

#: A backfill bound: a date (a whole day), a datetime, or an ISO 8601 string of either.
Bound = date | datetime | str


def _bound(value: Bound, what: str, zone: Zone, end: bool) -> pendulum.DateTime:
    """One bound as an instant: a date is its day's first instant (``end``: its last);
    a datetime without offset is a wall time in ``zone``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f"{what} {text!r} is not a date (2026-03-02) or a date and time (2026-03-02T09:30)"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return pendulum.instance(value.replace(tzinfo=None), tz=zone)
        return pendulum.instance(value).in_timezone(zone)
    if isinstance(value, date):
        day = pendulum.datetime(value.year, value.month, value.day, tz=zone)
        if not end:
            return day
        return pendulum.instance(day.add(days=1) - _ONE_MICROSECOND).in_timezone(zone)
    raise ScheduleError(f"{what} must be a date, a datetime or a string, got {value!r}")


def backfill_range(
    schedule: Schedule, start: Bound, end: Bound
) -> tuple[pendulum.DateTime, pendulum.DateTime]:
    """The first and last instants a backfill covers, both included.

    Dates are read in the schedule's zone: ``start`` from the first instant of its
    day, ``end`` through the last instant of its day. A date and time without an
    offset is a wall time in that zone; one with an offset is that instant.

    Raises:
        ScheduleError: a bound that is not a date or datetime, or ``end`` before ``start``.
    """
    zone = load_zone(schedule.timezone)
    first = _bound(start, "start", zone, end=False)
    last = _bound(end, "end", zone, end=True)
    if last < first:
        raise ScheduleError(f"end {last.isoformat()} is before start {first.isoformat()}")
    return first, last


def backfill_slots(
    schedule: Schedule, start: Bound, end: Bound, limit: int = MAX_BACKFILL_SLOTS
) -> list[pendulum.DateTime]:
    """The slots of ``schedule`` from ``start`` to ``end`` (both included, see
    :func:`backfill_range`), ascending, in the schedule's zone.

    The schedule's own ``start_date`` and ``end_date`` do not clip the range: a
    backfill names the range it wants (the seed's ``start_date=pendulum.now()`` would
    otherwise refuse every past slot).

    Raises:
        ScheduleError: a bad range, or more than ``limit`` slots in it.
    """
    first, last = backfill_range(schedule, start, end)
    slots = schedule.between(first - _ONE_MICROSECOND, last, limit + 1, within_dates=False)
    if len(slots) > limit:
        raise ScheduleError(
            f"the range {first.isoformat()} to {last.isoformat()} has more than {limit} "
            "slots: backfill a shorter range"
        )
    return slots


class Outcome(StrEnum):
    """What a backfill did with one slot."""

    #: A dry run: the slot has no run yet and would get one.
    NEW = "new"
    #: A run was created, to be sent when due.
    CREATED = "created"
    #: A run was created held back by the overlap policy.
    BUFFERED = "buffered"
    #: The overlap policy recorded the slot as skipped.
    SKIPPED = "skipped"
    #: The slot already had its run (or its skipped record), from beat or a backfill.
    THERE = "there"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class BackfillSlot:
    """One slot of a backfill.

    Attributes:
        slot: the nominal fire time, in the schedule's zone.
        outcome: what the backfill did with it.
        run_id: the slot's run (or skipped record), when it has one.
        state: that run's state when the backfill looked.
    """

    slot: datetime
    outcome: Outcome
    run_id: str | None = None
    state: State | None = None


@dataclass(frozen=True)
class BackfillReport:
    """What :meth:`Client.backfill` did (or, with ``dry_run``, would do).

    Attributes:
        flow_name: the flow.
        project_name: its project.
        version: the flow version whose schedule was used.
        schedule: that schedule.
        timezone: the schedule's zone.
        first: the first instant of the range, in that zone.
        last: the last instant of the range.
        overlap: the overlap policy the new slots were decided by.
        dry_run: True when nothing was created.
        slots: one entry per slot, in order.
        cancelled: runs cancelled under ``cancel_other``.
    """

    flow_name: str
    project_name: str
    version: int
    schedule: Schedule
    timezone: str
    first: pendulum.DateTime
    last: pendulum.DateTime
    overlap: Overlap
    dry_run: bool
    slots: tuple[BackfillSlot, ...]
    cancelled: tuple[str, ...] = ()

    def count(self, *outcomes: Outcome) -> int:
        """How many slots had one of these outcomes."""
        return sum(1 for s in self.slots if s.outcome in outcomes)

    @property
    def created(self) -> list[str]:
        """The ids of the runs this backfill created (buffered ones included)."""
        made = (Outcome.CREATED, Outcome.BUFFERED)
        return [s.run_id for s in self.slots if s.outcome in made and s.run_id]

    @property
    def existing(self) -> int:
        """How many slots already had a run or a skipped record."""
        return self.count(Outcome.THERE)
