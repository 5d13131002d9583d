"""Cron schedules: :class:`CronSchedule`, which fires when a cron expression matches
the local wall clock of its zone, across daylight saving changes (its docstring
gives the rules), and the checking of cron strings. Pure: imports only croniter,
:mod:`orchestrator.errors` and the schedules package's own modules."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter

from orchestrator.errors import ScheduleError
from orchestrator.schedules.base import Schedule
from orchestrator.schedules.overlap import Overlap
from orchestrator.schedules.zones import Zone

# Wall clocks never jump backwards by more than this (2 hours in Antarctica/Troll;
# 1 hour, or 30 minutes, elsewhere), so a search that starts this far before a wall
# time sees every fall-back repeat of it.
_MAX_BACKWARD_JUMP = timedelta(hours=3)
_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronSchedule(Schedule):
    """Fires when a cron expression matches the local wall clock of its zone.

    The zone is ``start_date``'s (UTC without one):
    ``CronSchedule("30 9 * * 1-5", start_date=pendulum.now(tz="US/Eastern"))`` fires
    at 09:30 New York time on weekdays all year, 14:30 UTC in winter, 13:30 UTC in
    summer.

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

    Args:
        cron: Five fields (minute hour day-of-month month day-of-week) in croniter's
            syntax, or an alias such as ``@daily`` or ``@hourly``.
        start_date: No fire before this aware datetime; its zone is the schedule's.
        end_date: No fire after this aware datetime.
        parameter_defaults: JSON-serialisable parameters for each scheduled run.
        catchup: For beat: True runs every missed slot, False only the latest.
        catchup_window: For beat, instead of ``catchup``: the missed slots younger than
            this run after downtime; older ones are recorded as missed.
        overlap: What beat does with a slot while an earlier run from this schedule
            has not finished: ``"allow"`` (default), ``"skip"``, ``"buffer_one"``,
            ``"buffer_all"`` or ``"cancel_other"``.

    Raises:
        ScheduleError: An invalid or never-firing cron string, a naive date,
            ``end_date`` before ``start_date``, a bad catch-up or an unknown overlap
            policy.

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
        catchup_window: timedelta | None = None,
        overlap: Overlap | str = Overlap.ALLOW,
    ) -> None:
        self._cron, self._expression = _parse_cron(cron)
        fields = self._expression.split()
        self._periodic = fields[0].startswith("*") or fields[1].startswith("*")
        super().__init__(start_date, end_date, parameter_defaults, catchup, catchup_window, overlap)

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
        earlier_offset = wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)
        later_offset = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        if earlier_offset == later_offset:  # an ordinary wall time
            return earlier_offset, None
        if earlier_offset < later_offset:  # repeated: clocks fell back
            return earlier_offset, later_offset if self._periodic else None
        # Nonexistent: clocks sprang forward over it (fold=0 used the pre-gap offset).
        if self._periodic:
            return None, None
        return _gap_end(later_offset, earlier_offset, self._zone), None


def _gap_end(before: datetime, after: datetime, zone: Zone) -> datetime:
    """Return the instant clocks spring forward, which lies in ``(before, after]``."""
    target = after.astimezone(zone).utcoffset()
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


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
