"""Rebuilding a schedule from its dict form (:meth:`Schedule.to_dict`, as stored
with a registered flow): :func:`schedule_from_dict`. Pure: imports only
:mod:`orchestrator.errors` and the schedules package's own modules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from orchestrator.errors import ScheduleError
from orchestrator.schedules.base import Schedule
from orchestrator.schedules.cron import CronSchedule
from orchestrator.schedules.interval import IntervalSchedule
from orchestrator.schedules.zones import load_zone, parse_datetime


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output.

    Args:
        data: The dict, e.g. read back from a database column.

    Returns:
        An equal :class:`CronSchedule` or :class:`IntervalSchedule`.

    Raises:
        ScheduleError: An unknown type or time zone, or a missing or malformed field.
    """
    if not isinstance(data, Mapping):
        raise ScheduleError(f"a schedule must be a dict, got {type(data).__name__}")
    kind = data.get("type")
    zone = load_zone(data.get("timezone", "UTC"))
    start = parse_datetime(data.get("start_date"), "start_date", zone)
    end = parse_datetime(data.get("end_date"), "end_date", zone)
    if start is None and zone.name != "UTC":
        raise ScheduleError(
            f"time zone {zone.name!r} needs a start_date: without one a schedule is in UTC"
        )
    common: dict[str, Any] = {
        "start_date": start,
        "end_date": end,
        "parameter_defaults": data.get("parameter_defaults") or {},
        "catchup": data.get("catchup", False),
        "catchup_window": _window(data.get("catchup_window_seconds")),
        "overlap": data.get("overlap", "allow"),
    }
    if kind == CronSchedule.kind:
        if "cron" not in data:
            raise ScheduleError("a cron schedule needs a 'cron' field")
        return CronSchedule(data["cron"], **common)
    if kind == IntervalSchedule.kind:
        seconds = data.get("interval_seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ScheduleError(
                f"an interval schedule needs a numeric 'interval_seconds', got {seconds!r}"
            )
        return IntervalSchedule(timedelta(seconds=seconds), **common)
    raise ScheduleError(f"unknown schedule type {kind!r}: expected 'cron' or 'interval'")


def _window(seconds: object) -> timedelta | None:
    """The catch-up window stored as ``catchup_window_seconds`` (None when absent)."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ScheduleError(f"'catchup_window_seconds' must be a number, got {seconds!r}")
    return timedelta(seconds=seconds)
