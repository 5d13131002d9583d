"""Time zones and datetimes for schedules: loading a zone by name (an IANA name,
"UTC" or a fixed "+05:30"), refusing naive datetimes, and converting to plain UTC
instants and back from ISO 8601. Pure: imports only pendulum and
:mod:`orchestrator.errors`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pendulum
from pendulum.tz import fixed_timezone

from orchestrator.errors import ScheduleError

#: A schedule's zone: a named zone or a fixed offset.
Zone = pendulum.Timezone | pendulum.FixedTimezone

_FIXED_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def load_zone(name: object) -> Zone:
    """Return the zone called ``name`` (an IANA name, "UTC" or a fixed "+05:30")."""
    if not isinstance(name, str) or not name:
        raise ScheduleError(f"unknown time zone {name!r}: expected an IANA name such as 'UTC'")
    fixed = _FIXED_OFFSET.match(name)
    if fixed:
        sign = -1 if fixed.group(1) == "-" else 1
        return fixed_timezone(sign * (int(fixed.group(2)) * 3600 + int(fixed.group(3)) * 60))
    try:
        return pendulum.timezone(name)
    except Exception as exc:  # InvalidTimezone, ZoneInfoNotFoundError, ValueError...
        raise ScheduleError(
            f"unknown time zone {name!r}: expected an IANA name such as 'US/Eastern'"
        ) from exc


def aware(value: object, what: str) -> pendulum.DateTime:
    """Return ``value`` as a pendulum DateTime, refusing anything but an aware datetime."""
    if not isinstance(value, datetime):
        raise ScheduleError(f"{what} must be a timezone-aware datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(
            f"{what} must be timezone-aware (for example pendulum.now(tz='US/Eastern')), "
            f"got naive {value.isoformat()}"
        )
    return pendulum.instance(value)


def zone_of(value: pendulum.DateTime) -> Zone:
    """Return the named zone of an aware DateTime (a fixed offset when it has no name)."""
    name = value.timezone_name
    if name is None:
        offset = value.utcoffset() or timedelta(0)
        return fixed_timezone(int(offset.total_seconds()))
    return load_zone(name)


def utc(value: datetime) -> datetime:
    """Return the instant ``value`` as a plain ``datetime`` in UTC."""
    plain = datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=value.tzinfo,
        fold=value.fold,
    )
    return plain.astimezone(UTC)


def parse_datetime(value: object, what: str, zone: Zone) -> pendulum.DateTime | None:
    """Parse an ISO 8601 string with a UTC offset (as written by ``to_dict``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScheduleError(f"{what} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ScheduleError(f"{what} is not an ISO 8601 datetime: {value!r}") from exc
    return aware(parsed, what).in_timezone(zone)
