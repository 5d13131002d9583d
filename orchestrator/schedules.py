"""Schedules: when a registered flow fires. Pure functions of time, no I/O.

Two kinds, both with an optional ``start_date`` (no fire before it), ``end_date``
(no fire after it), ``parameter_defaults`` (the parameters each scheduled run gets)
and ``catchup`` (for beat: when True a run is created for every slot missed while no
beat was running; when False only for the most recent missed slot):

* :class:`CronSchedule` fires when a cron expression matches the **local wall
  clock** of its time zone: the zone of ``start_date``, or UTC when there is none.
  ``CronSchedule("30 9 * * 1-5", start_date=pendulum.now(tz="US/Eastern"))`` fires at
  09:30 New York time on weekdays all year: 14:30 UTC in winter, 13:30 UTC in summer.
* :class:`IntervalSchedule` fires every ``interval`` of real (elapsed) time, at
  ``anchor + k * interval`` where the anchor is ``start_date`` (the Unix epoch in UTC
  when there is none). Daylight saving time never stretches or shrinks an interval.

Daylight saving rules for cron. Wall-clock candidates are computed by croniter on
naive local datetimes (croniter's own DST handling is not used) and then placed on
the real time line with the zone's rules (PEP 495 ``fold``). Expressions fall in two
classes, following Vixie cron:

* **Fixed-time** expressions (neither the minute nor the hour field starts with
  ``*``, e.g. ``"30 2 * * *"``, ``"30 9 * * 1-5"``, ``"0 1-3 * * *"``) fire exactly once
  per matching local calendar slot:

  - a slot that does not exist because clocks spring forward fires once, at the
    first instant after the gap (the moment the clocks change). ``"30 2 * * *"`` in
    New York on 2026-03-08 fires at 03:00 EDT (07:00 UTC). Several slots in one gap
    (``"0,30 2 * * *"``) collapse into that one firing, and so does a slot that
    matches the gap's end itself (``"0 2,3 * * *"`` fires once at 03:00);
  - a slot that occurs twice because clocks fall back fires once, at its first
    occurrence (the earlier, pre-transition offset). ``"30 1 * * *"`` in New York on
    2026-11-01 fires at 01:30 EDT (05:30 UTC) and not at 01:30 EST.

* **Periodic** expressions (the minute or the hour field starts with ``*``, e.g.
  ``"0 * * * *"``, ``"*/15 * * * *"``, ``"@hourly"``) follow real time: they fire at
  every real instant whose local wall time matches. Slots inside a spring-forward
  gap never happen and are skipped; slots in a repeated fall-back hour fire in both
  passes. So ``"0 * * * *"`` in New York fires once per real hour with no duplicate
  and no missing hour (02:00 on 2026-03-08 does not exist; on 2026-11-01 it fires at
  01:00 EDT and again at 01:00 EST). ``"0 0-23 * * *"`` is fixed-time, and fires
  once at 01:00 on the fall-back day.

Every list returned here is strictly increasing in real time, without duplicates,
and holds :class:`pendulum.DateTime` values in the schedule's zone. Compare them by
instant (``.timestamp()`` or in UTC): Python compares two datetimes that share one
tzinfo object by wall time, ignoring ``fold``, so 01:30 EDT and 01:30 EST compare
equal.
"""

from __future__ import annotations

import abc
import heapq
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, ClassVar

import pendulum
from croniter import CroniterBadDateError, croniter
from pendulum.tz import fixed_timezone

from orchestrator.errors import ScheduleError

__all__ = ["CronSchedule", "IntervalSchedule", "Schedule", "schedule_from_dict"]

_Zone = pendulum.Timezone | pendulum.FixedTimezone

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
# Wall clocks never jump backwards by more than this (2 hours in Antarctica/Troll;
# 1 hour, or 30 minutes, elsewhere), so a search that starts this far before a wall
# time sees every fall-back repeat of it.
_MAX_BACKWARD_JUMP = timedelta(hours=3)
_FIXED_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# --- time zones and datetimes ----------------------------------------------------


def _load_zone(name: object) -> _Zone:
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


def _aware(value: object, what: str) -> pendulum.DateTime:
    """Return ``value`` as a pendulum DateTime, refusing anything but an aware datetime."""
    if not isinstance(value, datetime):
        raise ScheduleError(f"{what} must be a timezone-aware datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(
            f"{what} must be timezone-aware (for example pendulum.now(tz='US/Eastern')), "
            f"got naive {value.isoformat()}"
        )
    return pendulum.instance(value)


def _zone_of(value: pendulum.DateTime) -> _Zone:
    """Return the named zone of an aware DateTime (a fixed offset when it has no name)."""
    name = value.timezone_name
    if name is None:
        offset = value.utcoffset() or timedelta(0)
        return fixed_timezone(int(offset.total_seconds()))
    return _load_zone(name)


def _utc(value: datetime) -> datetime:
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
    return plain.astimezone(_UTC)


def _parse_datetime(value: object, what: str, zone: _Zone) -> pendulum.DateTime | None:
    """Parse an ISO 8601 string with a UTC offset (as written by ``to_dict``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScheduleError(f"{what} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ScheduleError(f"{what} is not an ISO 8601 datetime: {value!r}") from exc
    return _aware(parsed, what).in_timezone(zone)


# --- the schedules ----------------------------------------------------------------


class Schedule(abc.ABC):
    """Base of every schedule: start and end dates, defaults, and the queries.

    Subclasses supply :meth:`_instants_after`, an endless ascending stream of fire
    instants; this class clips it to ``start_date``/``end_date`` and converts it.

    Args:
        start_date: No fire before this aware datetime. Its zone is the schedule's.
        end_date: No fire after this aware datetime.
        parameter_defaults: JSON-serialisable parameters for each scheduled run.
        catchup: For beat: True runs every missed slot, False only the latest.

    Raises:
        ScheduleError: A naive date, ``end_date`` before ``start_date``, or defaults
            that are not a JSON-serialisable dict.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        catchup: bool = False,
    ) -> None:
        start = _aware(start_date, "start_date") if start_date is not None else None
        end = _aware(end_date, "end_date") if end_date is not None else None
        if start is not None and end is not None and _utc(end) < _utc(start):
            raise ScheduleError(
                f"end_date {end.isoformat()} is before start_date {start.isoformat()}"
            )
        self._zone: _Zone = _zone_of(start) if start is not None else pendulum.UTC
        self._start = start.in_timezone(self._zone) if start is not None else None
        self._end = end.in_timezone(self._zone) if end is not None else None
        self._start_utc = _utc(start) if start is not None else None
        self._end_utc = _utc(end) if end is not None else None
        if parameter_defaults is None:
            parameter_defaults = {}
        if not isinstance(parameter_defaults, Mapping) or not all(
            isinstance(k, str) for k in parameter_defaults
        ):
            raise ScheduleError("parameter_defaults must be a dict with string keys")
        try:
            json.dumps(dict(parameter_defaults))
        except (TypeError, ValueError) as exc:
            raise ScheduleError(f"parameter_defaults must be JSON-serialisable: {exc}") from exc
        if not isinstance(catchup, bool):
            raise ScheduleError(f"catchup must be True or False, got {catchup!r}")
        self._parameter_defaults = dict(parameter_defaults)
        self._catchup = catchup

    # -- attributes

    @property
    def timezone(self) -> str:
        """The name of the schedule's zone, e.g. ``"US/Eastern"`` or ``"UTC"``."""
        return str(self._zone.name)

    @property
    def start_date(self) -> pendulum.DateTime | None:
        """The first instant the schedule may fire, in the schedule's zone."""
        return self._start

    @property
    def end_date(self) -> pendulum.DateTime | None:
        """The last instant the schedule may fire, in the schedule's zone."""
        return self._end

    @property
    def parameter_defaults(self) -> dict[str, Any]:
        """A copy of the parameters each scheduled run receives."""
        return dict(self._parameter_defaults)

    @property
    def catchup(self) -> bool:
        """Whether beat creates a run for every missed slot (else only the latest)."""
        return self._catchup

    # -- queries

    def next(self, n: int, after: datetime | None = None) -> list[pendulum.DateTime]:
        """Return the next ``n`` fire times strictly after ``after``.

        Args:
            n: How many fire times to return (at most; fewer when ``end_date`` comes).
            after: An aware datetime; defaults to now.

        Returns:
            Up to ``n`` ascending fire times in the schedule's zone.

        Raises:
            ScheduleError: ``n`` is negative or ``after`` is naive.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ScheduleError(f"n must be a non-negative integer, got {n!r}")
        lower = _utc(_aware(after, "after")) if after is not None else datetime.now(_UTC)
        return [self._local(t) for t in islice(self._fire_times(lower, None), n)]

    def between(
        self, start: datetime, end: datetime, limit: int | None = None
    ) -> list[pendulum.DateTime]:
        """Return the fire times in ``(start, end]``: the slots beat may have missed.

        Work is proportional to the number of fire times returned; nothing is
        computed past ``end``.

        Args:
            start: Exclusive lower bound, aware.
            end: Inclusive upper bound, aware.
            limit: Return at most this many (the earliest), when given.

        Returns:
            Ascending fire times in the schedule's zone (empty when ``end <= start``).

        Raises:
            ScheduleError: A naive bound or a negative ``limit``.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ScheduleError(f"limit must be a non-negative integer, got {limit!r}")
        lower = _utc(_aware(start, "start"))
        upper = _utc(_aware(end, "end"))
        if upper <= lower:
            return []
        return [self._local(t) for t in islice(self._fire_times(lower, upper), limit)]

    def _fire_times(self, lower: datetime, upper: datetime | None) -> Iterator[datetime]:
        """Fire instants (UTC) in ``(lower, upper]`` clipped to the start and end dates."""
        if self._start_utc is not None:
            lower = max(lower, self._start_utc - _ONE_MICROSECOND)
        if self._end_utc is not None:
            upper = self._end_utc if upper is None else min(upper, self._end_utc)
        if upper is not None and upper <= lower:
            return
        for instant in self._instants_after(lower):
            if upper is not None and instant > upper:
                return
            yield instant

    def _local(self, instant: datetime) -> pendulum.DateTime:
        return pendulum.instance(instant).in_timezone(self._zone)

    @abc.abstractmethod
    def _instants_after(self, lower: datetime) -> Iterator[datetime]:
        """Yield every fire instant (UTC) strictly after ``lower``, ascending, unique."""

    # -- serialisation

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description; :func:`schedule_from_dict` reverses it.

        Returns:
            A dict with ``type``, ``timezone`` (the zone name), ISO 8601 ``start_date``
            and ``end_date`` (or None), ``parameter_defaults``, ``catchup`` and the
            kind's own fields.
        """
        return {
            "type": self.kind,
            **self._own_fields(),
            "timezone": self.timezone,
            "start_date": self._start.isoformat() if self._start is not None else None,
            "end_date": self._end.isoformat() if self._end is not None else None,
            "parameter_defaults": dict(self._parameter_defaults),
            "catchup": self._catchup,
        }

    @abc.abstractmethod
    def _own_fields(self) -> dict[str, Any]:
        """The kind's own JSON fields for :meth:`to_dict`."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"{type(self).__name__}({fields})"


class CronSchedule(Schedule):
    """Fires when a cron expression matches the local wall clock of its zone.

    The zone is ``start_date``'s (UTC without one). See the module docstring for
    what happens on daylight saving changes.

    Args:
        cron: Five fields (minute hour day-of-month month day-of-week) in croniter's
            syntax, or an alias such as ``@daily`` or ``@hourly``.
        start_date: No fire before this aware datetime; its zone is the schedule's.
        end_date: No fire after this aware datetime.
        parameter_defaults: JSON-serialisable parameters for each scheduled run.
        catchup: For beat: True runs every missed slot, False only the latest.

    Raises:
        ScheduleError: An invalid or never-firing cron string, a naive date, or
            ``end_date`` before ``start_date``.

    Example:
        >>> new_york = pendulum.datetime(2026, 1, 1, tz="US/Eastern")
        >>> s = CronSchedule("30 9 * * 1-5", start_date=new_york)
        >>> [t.isoformat() for t in s.next(2, after=pendulum.datetime(2026, 3, 6, tz="UTC"))]
        ['2026-03-06T09:30:00-05:00', '2026-03-09T09:30:00-04:00']
    """

    kind = "cron"

    def __init__(
        self,
        cron: str,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        catchup: bool = False,
    ) -> None:
        self._cron, self._expression = _parse_cron(cron)
        fields = self._expression.split()
        self._periodic = fields[0].startswith("*") or fields[1].startswith("*")
        super().__init__(start_date, end_date, parameter_defaults, catchup)

    @property
    def cron(self) -> str:
        """The cron string as given."""
        return self._cron

    @property
    def periodic(self) -> bool:
        """True when the minute or hour field starts with ``*`` (follows real time)."""
        return self._periodic

    def _own_fields(self) -> dict[str, Any]:
        return {"cron": self._cron}

    def _instants_after(self, lower: datetime) -> Iterator[datetime]:
        # Walk naive wall-clock candidates; each gives its first instant (monotone in
        # the wall time) and, for periodic expressions in a repeated hour, a second one
        # later. A heap merges the two streams: everything up to the latest first
        # instant is final, since later candidates only give later instants.
        wall_start = lower.astimezone(self._zone).replace(tzinfo=None) - _MAX_BACKWARD_JUMP
        candidates = croniter(self._expression, wall_start)
        pending: list[datetime] = []
        last: datetime | None = None
        while True:
            try:
                wall = candidates.get_next(datetime)
            except (CroniterBadDateError, OverflowError):
                break
            first, second = self._place(wall)
            if first is None:
                continue
            heapq.heappush(pending, first)
            if second is not None:
                heapq.heappush(pending, second)
            while pending and pending[0] <= first:
                instant = heapq.heappop(pending)
                if instant > lower and instant != last:
                    last = instant
                    yield instant
        while pending:
            instant = heapq.heappop(pending)
            if instant > lower and instant != last:
                last = instant
                yield instant

    def _place(self, wall: datetime) -> tuple[datetime | None, datetime | None]:
        """Return the (first, second) UTC instants a naive wall time fires at."""
        earlier_offset = wall.replace(tzinfo=self._zone, fold=0).astimezone(_UTC)
        later_offset = wall.replace(tzinfo=self._zone, fold=1).astimezone(_UTC)
        if earlier_offset == later_offset:  # an ordinary wall time
            return earlier_offset, None
        if earlier_offset < later_offset:  # repeated: clocks fell back
            return earlier_offset, later_offset if self._periodic else None
        # Nonexistent: clocks sprang forward over it (fold=0 used the pre-gap offset).
        if self._periodic:
            return None, None
        return _gap_end(later_offset, earlier_offset, self._zone), None


def _gap_end(before: datetime, after: datetime, zone: _Zone) -> datetime:
    """Return the instant clocks spring forward, which lies in ``(before, after]``."""
    target = after.astimezone(zone).utcoffset()
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, _UTC)


def _parse_cron(cron: object) -> tuple[str, str]:
    """Return (the string as given, the five-field expression), or raise ScheduleError."""
    if not isinstance(cron, str):
        raise ScheduleError(f"cron must be a string, got {type(cron).__name__}: {cron!r}")
    expression = " ".join(_CRON_ALIASES.get(cron.strip().lower(), cron).split())
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"invalid cron string {cron!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week) or an alias such as @daily, "
            f"got {len(fields)}"
        )
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise ScheduleError(f"cron string {cron!r} never fires") from exc
    except Exception as exc:  # croniter raises several types for bad fields
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ScheduleError(f"invalid cron string {cron!r}: {reason}") from exc
    return cron, expression


class IntervalSchedule(Schedule):
    """Fires every ``interval`` of real time, at ``anchor + k * interval``.

    The anchor is ``start_date`` (the Unix epoch in UTC without one). Intervals are
    absolute durations: ``timedelta(days=1)`` is always 24 hours, so across a DST
    change the local wall time of the fires moves by an hour.

    Args:
        interval: A positive duration.
        start_date: The anchor, and no fire before it; its zone is the schedule's.
        end_date: No fire after this aware datetime.
        parameter_defaults: JSON-serialisable parameters for each scheduled run.
        catchup: For beat: True runs every missed slot, False only the latest.

    Raises:
        ScheduleError: A non-positive interval, a naive date, or ``end_date`` before
            ``start_date``.
    """

    kind = "interval"

    def __init__(
        self,
        interval: timedelta,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        catchup: bool = False,
    ) -> None:
        if not isinstance(interval, timedelta):
            raise ScheduleError(
                f"interval must be a datetime.timedelta, got {type(interval).__name__}"
            )
        if interval <= timedelta(0):
            raise ScheduleError(f"interval must be positive, got {interval}")
        self._interval = interval
        super().__init__(start_date, end_date, parameter_defaults, catchup)

    @property
    def interval(self) -> timedelta:
        """The duration between two fires."""
        return self._interval

    def _own_fields(self) -> dict[str, Any]:
        seconds = self._interval.total_seconds()
        return {"interval_seconds": int(seconds) if seconds.is_integer() else seconds}

    def _instants_after(self, lower: datetime) -> Iterator[datetime]:
        anchor = self._start_utc if self._start_utc is not None else _EPOCH
        instant = anchor + ((lower - anchor) // self._interval + 1) * self._interval
        while True:
            yield instant
            try:
                instant += self._interval
            except OverflowError:
                return


# --- loading ----------------------------------------------------------------------


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
    zone = _load_zone(data.get("timezone", "UTC"))
    start = _parse_datetime(data.get("start_date"), "start_date", zone)
    end = _parse_datetime(data.get("end_date"), "end_date", zone)
    if start is None and zone.name != "UTC":
        raise ScheduleError(
            f"time zone {zone.name!r} needs a start_date: without one a schedule is in UTC"
        )
    common: dict[str, Any] = {
        "start_date": start,
        "end_date": end,
        "parameter_defaults": data.get("parameter_defaults") or {},
        "catchup": data.get("catchup", False),
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
