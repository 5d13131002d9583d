"""Interval schedules: :class:`IntervalSchedule` fires every ``interval`` of real
(elapsed) time, at ``anchor + k * interval`` where the anchor is ``start_date`` (the
Unix epoch in UTC when there is none), so daylight saving time never stretches or
shrinks an interval. Pure: imports only :mod:`orchestrator.errors` and the schedules
package's own modules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.errors import ScheduleError
from orchestrator.schedules.base import Schedule
from orchestrator.schedules.overlap import Overlap

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        catchup_window: For beat, instead of ``catchup``: the missed slots younger than
            this run after downtime; older ones are recorded as missed.
        overlap: What beat does with a slot while an earlier run from this schedule
            has not finished: ``"allow"`` (default), ``"skip"``, ``"buffer_one"``,
            ``"buffer_all"`` or ``"cancel_other"``.

    Raises:
        ScheduleError: A non-positive interval, a naive date, ``end_date`` before
            ``start_date``, a bad catch-up or an unknown overlap policy.
    """

    kind = "interval"

    def __init__(
        self,
        interval: timedelta,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        catchup: bool = False,
        catchup_window: timedelta | None = None,
        overlap: Overlap | str = Overlap.ALLOW,
    ) -> None:
        if not isinstance(interval, timedelta):
            raise ScheduleError(
                f"interval must be a datetime.timedelta, got {type(interval).__name__}"
            )
        if interval <= timedelta(0):
            raise ScheduleError(f"interval must be positive, got {interval}")
        self._interval = interval
        super().__init__(start_date, end_date, parameter_defaults, catchup, catchup_window, overlap)

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
