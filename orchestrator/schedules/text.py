"""Schedules in words, for the command line and the server: what a schedule does
(``cron 30 9 * * 1-5``, ``every 2s``, with its start and end dates) and its next fire
times in its own zone and in UTC. Imports pendulum and the sibling modules base,
cron and interval."""

from __future__ import annotations

from datetime import datetime

import pendulum

from orchestrator.schedules.base import Schedule
from orchestrator.schedules.cron import CronSchedule
from orchestrator.schedules.interval import IntervalSchedule


def _duration(seconds: float) -> str:
    """``2s``, ``90s`` -> ``1m30s``, ``1h``, ``1d2h`` (a schedule's interval)."""
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)


def describe(schedule: Schedule) -> str:
    """A schedule in a few words: ``cron 30 9 * * 1-5`` or ``every 2s``, with options."""
    if isinstance(schedule, CronSchedule):
        text = f"cron {schedule.cron}"
    elif isinstance(schedule, IntervalSchedule):
        text = f"every {_duration(schedule.interval.total_seconds())}"
    else:
        text = type(schedule).__name__
    extras = []
    if schedule.start_date is not None:
        extras.append(f"from {schedule.start_date.format('YYYY-MM-DD HH:mm')}")
    if schedule.end_date is not None:
        extras.append(f"until {schedule.end_date.format('YYYY-MM-DD HH:mm')}")
    if schedule.catchup:
        extras.append("catch-up")
    return text + "".join(f"\n{e}" for e in extras)


def _fmt(value: datetime, seconds: bool) -> str:
    moment = pendulum.instance(value)
    return moment.format("ddd YYYY-MM-DD HH:mm" + (":ss" if seconds else "") + " zz")


def fire_times(
    schedule: Schedule, count: int, after: datetime | None = None
) -> list[tuple[str, str]]:
    """The next ``count`` fire times, each in the schedule's zone and in UTC."""
    times = schedule.next(count, after=after)
    seconds = any(t.second or t.microsecond for t in times)
    return [(_fmt(t, seconds), _fmt(t.in_timezone("UTC"), seconds)) for t in times]
