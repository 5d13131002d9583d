"""The base of every schedule, :class:`Schedule`: start and end dates, parameter
defaults, catch-up, the overlap policy, the queries (:meth:`Schedule.next`,
:meth:`Schedule.between`) and the dict form (:meth:`Schedule.to_dict`); each kind
supplies an endless stream of fire instants, which this class clips to the dates.
Pure: imports only pendulum, :mod:`orchestrator.errors` and the schedules package's
``zones``, ``catchup`` and ``overlap``."""

from __future__ import annotations

import abc
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, ClassVar

import pendulum

from orchestrator.errors import ScheduleError
from orchestrator.schedules.catchup import CatchUp, catch_up
from orchestrator.schedules.overlap import Overlap, overlap_policy
from orchestrator.schedules.zones import Zone, aware, utc, zone_of

_ONE_MICROSECOND = timedelta(microseconds=1)


class Schedule(abc.ABC):
    """Base of every schedule: start and end dates, defaults, and the queries.

    Subclasses supply :meth:`_instants_after`, an endless ascending stream of fire
    instants; this class clips it to ``start_date``/``end_date`` and converts it.

    Every list returned is strictly increasing in real time, without duplicates,
    and holds :class:`pendulum.DateTime` values in the schedule's zone. Compare them
    by instant (``.timestamp()`` or in UTC): Python compares two datetimes that share
    one tzinfo object by wall time, ignoring ``fold``, so 01:30 EDT and 01:30 EST
    compare equal.

    Args:
        start_date: No fire before this aware datetime. Its zone is the schedule's.
        end_date: No fire after this aware datetime.
        parameter_defaults: JSON-serialisable parameters for each scheduled run.
        catchup: For beat: True runs every missed slot, False only the latest.
        catchup_window: For beat, instead of ``catchup``: after downtime, the missed
            slots younger than this run (each once, oldest first, under the overlap
            policy); older ones are recorded as missed.
        overlap: What beat does with a slot while an earlier run of the flow from
            this schedule has not finished: ``"allow"`` (start it anyway),
            ``"skip"``, ``"buffer_one"``, ``"buffer_all"`` or ``"cancel_other"``
            (see :class:`~orchestrator.schedules.overlap.Overlap`).

    Raises:
        ScheduleError: A naive date, ``end_date`` before ``start_date``, defaults
            that are not a JSON-serialisable dict, a bad catch-up or an unknown
            overlap policy (the message names the allowed ones).
    """

    kind: ClassVar[str]

    def __init__(
        self,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        catchup: bool = False,
        catchup_window: timedelta | None = None,
        overlap: Overlap | str = Overlap.ALLOW,
    ) -> None:
        start = aware(start_date, "start_date") if start_date is not None else None
        end = aware(end_date, "end_date") if end_date is not None else None
        if start is not None and end is not None and utc(end) < utc(start):
            raise ScheduleError(
                f"end_date {end.isoformat()} is before start_date {start.isoformat()}"
            )
        self._zone: Zone = zone_of(start) if start is not None else pendulum.UTC
        self._start = start.in_timezone(self._zone) if start is not None else None
        self._end = end.in_timezone(self._zone) if end is not None else None
        self._start_utc = utc(start) if start is not None else None
        self._end_utc = utc(end) if end is not None else None
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
        self._catch_up = catch_up(catchup, catchup_window)
        self._overlap = overlap_policy(overlap)
        self._parameter_defaults = dict(parameter_defaults)
        self._catchup = catchup
        self._catchup_window = catchup_window

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
        """Whether beat creates a run for every missed slot (``catchup=True``)."""
        return self._catchup

    @property
    def catchup_window(self) -> timedelta | None:
        """How young a missed slot must be to still run, when given."""
        return self._catchup_window

    @property
    def catch_up(self) -> CatchUp:
        """What beat does with missed slots: ``catchup`` and ``catchup_window`` as one."""
        return self._catch_up

    @property
    def overlap(self) -> Overlap:
        """What beat does with a slot while an earlier run has not finished."""
        return self._overlap

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
        lower = utc(aware(after, "after")) if after is not None else datetime.now(UTC)
        return [self._local(t) for t in islice(self._fire_times(lower, None), n)]

    def between(
        self,
        start: datetime,
        end: datetime,
        limit: int | None = None,
        *,
        within_dates: bool = True,
    ) -> list[pendulum.DateTime]:
        """Return the fire times in ``(start, end]``: the slots beat may have missed.

        Work is proportional to the number of fire times returned; nothing is
        computed past ``end``.

        Args:
            start: Exclusive lower bound, aware.
            end: Inclusive upper bound, aware.
            limit: Return at most this many (the earliest), when given.
            within_dates: Clip to ``start_date`` and ``end_date`` (the default). A
                backfill asks for its range explicitly and passes False: the slots
                the schedule's expression gives, in its zone, whatever its dates.

        Returns:
            Ascending fire times in the schedule's zone (empty when ``end <= start``).

        Raises:
            ScheduleError: A naive bound or a negative ``limit``.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ScheduleError(f"limit must be a non-negative integer, got {limit!r}")
        lower = utc(aware(start, "start"))
        upper = utc(aware(end, "end"))
        if upper <= lower:
            return []
        times = self._fire_times(lower, upper, within_dates)
        return [self._local(t) for t in islice(times, limit)]

    def _fire_times(
        self, lower: datetime, upper: datetime | None, within_dates: bool = True
    ) -> Iterator[datetime]:
        """Fire instants (UTC) in ``(lower, upper]``, clipped to the start and end dates
        unless ``within_dates`` is False."""
        if within_dates and self._start_utc is not None:
            lower = max(lower, self._start_utc - _ONE_MICROSECOND)
        if within_dates and self._end_utc is not None:
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
            kind's own fields; ``catchup_window_seconds`` and ``overlap`` only when
            given (a schedule stored before they existed keeps its fingerprint).
        """
        data: dict[str, Any] = {
            "type": self.kind,
            **self._own_fields(),
            "timezone": self.timezone,
            "start_date": self._start.isoformat() if self._start is not None else None,
            "end_date": self._end.isoformat() if self._end is not None else None,
            "parameter_defaults": dict(self._parameter_defaults),
            "catchup": self._catchup,
        }
        if self._catchup_window is not None:
            seconds = self._catchup_window.total_seconds()
            data["catchup_window_seconds"] = int(seconds) if seconds.is_integer() else seconds
        if self._overlap is not Overlap.ALLOW:
            data["overlap"] = self._overlap.value
        return data

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
