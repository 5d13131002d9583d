"""Schedules in words, for the command line and the server: what a schedule does
(``cron 30 9 * * 1-5``, ``every 2s``, with its start and end dates) and its next fire
times in its own zone and in UTC. Imports pendulum and the sibling modules base,
catchup, cron, interval and overlap."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pendulum

from orchestrator.schedules.base import Schedule
from orchestrator.schedules.catchup import duration_text
from orchestrator.schedules.cron import CronSchedule
from orchestrator.schedules.interval import IntervalSchedule
from orchestrator.schedules.overlap import Overlap


def describe(schedule: Schedule) -> str:
    """A schedule in a few words: ``cron 30 9 * * 1-5`` or ``every 2s``, with options."""
    if isinstance(schedule, CronSchedule):
        text = f"cron {schedule.cron}"
    elif isinstance(schedule, IntervalSchedule):
        text = f"every {duration_text(schedule.interval.total_seconds())}"
    else:
        text = type(schedule).__name__
    extras = []
    if schedule.start_date is not None:
        extras.append(f"from {schedule.start_date.format('YYYY-MM-DD HH:mm')}")
    if schedule.end_date is not None:
        extras.append(f"until {schedule.end_date.format('YYYY-MM-DD HH:mm')}")
    if schedule.overlap is not Overlap.ALLOW:
        extras.append(f"overlap {schedule.overlap}")
    if not schedule.catch_up.latest_only:
        extras.append(f"catch-up {schedule.catch_up.describe()}")
    return text + "".join(f"\n{e}" for e in extras)


def _fmt(value: datetime, seconds: bool) -> str:
    moment = pendulum.instance(value)
    return moment.format("ddd YYYY-MM-DD HH:mm" + (":ss" if seconds else "") + " zz")


def fire_times(
    schedule: Schedule, count: int, after: datetime | None = None
) -> list[tuple[str, str]]:
    """The next ``count`` fire times, each in the schedule's zone and in UTC."""
    return slot_times(schedule.next(count, after=after))


def slot_times(times: Sequence[datetime]) -> list[tuple[str, str]]:
    """Slots as text, each in its own zone and in UTC (seconds only when some have them)."""
    seconds = any(t.second or t.microsecond for t in times)
    return [
        (_fmt(t, seconds), _fmt(pendulum.instance(t).in_timezone("UTC"), seconds)) for t in times
    ]
