"""Which schedule slots beat fires on one tick (:func:`plan_slots`), where its
bookmark starts (:func:`starting_point`), and each slot's idempotency key
(:func:`slot_key`): pure functions of a schedule, the instant up to which its slots
were handled, and the current time; the policy is in :class:`SlotPlan`'s
docstring. Pure: imports only pendulum, :mod:`orchestrator.errors` and the
schedules package's ``base`` and ``catchup``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pendulum

from orchestrator.errors import ScheduleError
from orchestrator.schedules.base import Schedule
from orchestrator.schedules.catchup import ON_TIME, CatchUp

__all__ = [
    "DEFAULT_MAX_RUNS",
    "DEFAULT_MAX_SKIPPED",
    "DEFAULT_WINDOW",
    "SLOT_KEY_PREFIX",
    "SlotPlan",
    "plan_slots",
    "schedule_hash",
    "slot_key",
    "starting_point",
    "utc_instant",
]

#: How far back beat looks for missed slots.
DEFAULT_WINDOW = timedelta(hours=24)
#: How many missed slots one tick records as skipped (the latest ones), at most.
DEFAULT_MAX_SKIPPED = 100
#: How many slots one tick runs for a catch-up schedule, at most.
DEFAULT_MAX_RUNS = 100
#: Every slot's run key starts so (:func:`slot_key`): how a schedule's runs are told apart.
SLOT_KEY_PREFIX = "schedule:"


@dataclass(frozen=True)
class SlotPlan:
    """What beat does with one schedule on one tick.

    A *slot* is one nominal fire time of a schedule. Beat keeps, per scheduled flow, a
    bookmark ``handled_until``: every slot at or before it has been dealt with (a run was
    created, or the slot was recorded as skipped or missed). On each tick it asks
    :func:`plan_slots` what to do with the slots in ``(handled_until, now]``:

    * One slot (the normal case: beat ticks far more often than schedules fire): run it.
    * Several slots (beat was down, or the flow was paused...): the schedule's
      catch-up (:class:`~orchestrator.schedules.catchup.CatchUp`) decides which run:

      - by default (``catchup=False``) only the most recent one runs, late, keeping its
        nominal time as its scheduled start time;
      - with ``catchup_window=W`` the ones younger than ``W`` run, oldest first (a slot
        seen within :data:`~orchestrator.schedules.catchup.ON_TIME` of its time is
        never missed, whatever ``W``);
      - with ``catchup=True`` every one runs, oldest first.

      The others are *missed*: recorded as skipped runs saying so, so ``orchestrator
      schedules`` and ``orchestrator runs`` show what did not happen and why. At most
      ``max_skipped`` are recorded (the latest ones); older ones are only counted in
      :attr:`SlotPlan.dropped`. At most ``max_runs`` slots run per tick; the bookmark
      then stops at the last slot handled, so the next tick goes on from there.

    * Slots older than ``now - window`` (or than the catch-up window, when that is
      longer) are never looked at: after a long outage beat neither runs nor records
      more than that.

    Which of the slots that run actually start, wait or skip is the overlap policy's
    decision (:mod:`orchestrator.schedules.overlap`), made slot by slot in order.

    Where the bookmark starts (:func:`starting_point`): a flow beat has never fired
    starts at its registration (or, when beat was already running, when beat first saw
    it), at most one window back; a flow whose schedule changed (a new cron, the seed's
    ``start_date=pendulum.now()`` registered again) fires the new schedule from when
    beat first sees it, without backfilling slots the new schedule would have had.

    Nothing here does I/O; beat (``workers/schedule_runner.py``) turns a plan into runs. Each
    run's idempotency key is :func:`slot_key`, the flow and the nominal fire time, so
    two beats (or one beat restarted in the middle of a slot) that plan the same slot
    create one run.

    Attributes:
        run: Slots to fire, ascending, in the schedule's zone.
        missed: Missed slots to record as such, ascending.
        dropped: Missed slots neither run nor recorded (beyond ``max_skipped``).
        handled_until: The new bookmark: every slot at or before it is dealt with.
    """

    run: tuple[pendulum.DateTime, ...]
    missed: tuple[pendulum.DateTime, ...]
    dropped: int
    handled_until: datetime

    @property
    def missed_count(self) -> int:
        """How many slots were missed (do not run): recorded and dropped."""
        return len(self.missed) + self.dropped


def utc_instant(value: datetime, what: str = "time") -> datetime:
    """``value`` as a plain ``datetime`` in UTC (never a pendulum one: pendulum loses
    the stdlib UTC zone in arithmetic).

    Raises:
        ScheduleError: ``value`` is not an aware datetime.
    """
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{what} must be a timezone-aware datetime, got {value!r}")
    instant = value.astimezone(UTC)
    return datetime(
        instant.year,
        instant.month,
        instant.day,
        instant.hour,
        instant.minute,
        instant.second,
        instant.microsecond,
        tzinfo=UTC,
    )


def plan_slots(
    schedule: Schedule,
    last_seen: datetime | None,
    now: datetime,
    *,
    window: timedelta = DEFAULT_WINDOW,
    max_skipped: int = DEFAULT_MAX_SKIPPED,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> SlotPlan:
    """Decide which slots of ``schedule`` in ``(last_seen, now]`` run and which were
    missed, as :class:`SlotPlan` describes.

    Args:
        schedule: The flow's schedule (its ``catch_up`` picks what runs late).
        last_seen: Every slot at or before this instant was handled already; None
            when nothing is known, which looks back the whole window.
        now: The current time (aware).
        window: Slots older than ``now - window`` are ignored (a longer catch-up
            window widens it).
        max_skipped: Record at most this many missed slots per tick.
        max_runs: Run at most this many slots per tick.

    Returns:
        The plan. Its ``handled_until`` never moves back from ``last_seen``.

    Raises:
        ScheduleError: A naive datetime, a non-positive window, or negative limits.

    Example:
        >>> from orchestrator.schedules import CronSchedule
        >>> s = CronSchedule("0 * * * *")
        >>> plan = plan_slots(s, pendulum.datetime(2026, 1, 1, 0, 30),
        ...                   pendulum.datetime(2026, 1, 1, 3, 10))
        >>> [t.hour for t in plan.run], [t.hour for t in plan.missed]
        ([3], [1, 2])
    """
    now_utc = utc_instant(now, "now")
    seen_utc = utc_instant(last_seen, "last_seen") if last_seen is not None else None
    if window <= timedelta(0):
        raise ScheduleError(f"window must be positive, got {window}")
    if max_skipped < 0 or max_runs < 1:
        raise ScheduleError("max_skipped must be >= 0 and max_runs >= 1")
    if seen_utc is not None and seen_utc >= now_utc:
        return SlotPlan(run=(), missed=(), dropped=0, handled_until=seen_utc)
    catch = schedule.catch_up
    if catch.window is not None and catch.window > window:
        window = catch.window
    lower = now_utc - window
    if seen_utc is not None and seen_utc > lower:
        lower = seen_utc
    if catch.window is None:  # every missed slot runs
        slots = schedule.between(lower, now_utc, limit=max_runs)
        handled = now_utc
        if len(slots) == max_runs:  # maybe more: go on from the last one next tick
            handled = utc_instant(slots[-1])
        return SlotPlan(run=tuple(slots), missed=(), dropped=0, handled_until=handled)
    return _windowed(schedule.between(lower, now_utc), catch, now_utc, max_skipped, max_runs)


def _windowed(
    slots: list[pendulum.DateTime],
    catch: CatchUp,
    now_utc: datetime,
    max_skipped: int,
    max_runs: int,
) -> SlotPlan:
    """The plan for ``slots`` (ascending, all due) when only some missed slots run:
    the latest one, or those younger than the catch-up window."""
    if not slots:
        return SlotPlan(run=(), missed=(), dropped=0, handled_until=now_utc)
    if catch.latest_only:
        young = 1
    else:
        cutoff = now_utc - max(catch.window or timedelta(0), ON_TIME)
        young = sum(1 for t in slots if utc_instant(t) >= cutoff)
    old, runs = slots[: len(slots) - young], slots[len(slots) - young :]
    handled = now_utc
    if len(runs) > max_runs:  # go on from the last one run next tick
        runs = runs[:max_runs]
        handled = utc_instant(runs[-1])
    missed = tuple(old[len(old) - max_skipped :]) if max_skipped else ()
    return SlotPlan(
        run=tuple(runs), missed=missed, dropped=len(old) - len(missed), handled_until=handled
    )


def slot_key(project_name: str, flow_name: str, slot: datetime) -> str:
    """The idempotency key of the run for one slot: flow and nominal fire time in UTC.

    Args:
        project_name: The flow's project.
        flow_name: The flow's name.
        slot: The nominal fire time (aware).

    Returns:
        ``schedule:{project}/{flow}:{ISO 8601 time in UTC}``, the same for every beat.
    """
    return f"{SLOT_KEY_PREFIX}{project_name}/{flow_name}:{utc_instant(slot, 'slot').isoformat()}"


def schedule_hash(schedule: Schedule) -> str:
    """A fingerprint of a schedule (all of :meth:`Schedule.to_dict`): equal when equal."""
    blob = json.dumps(schedule.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def starting_point(
    *,
    mark: datetime | None,
    mark_hash: str | None,
    current_hash: str,
    registered: datetime,
    seen_before: datetime | None,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
) -> tuple[datetime, bool]:
    """The bookmark to plan a schedule's slots from, when beat reads the schedule.

    Args:
        mark: The stored bookmark (None when beat never fired this flow).
        mark_hash: The :func:`schedule_hash` the bookmark was stored for.
        current_hash: The hash of the schedule as registered now.
        registered: When the flow version was registered.
        seen_before: When this beat last read the schedules (None on its first
            read since it started): a flow or change it did not see then is newer.
        now: The current time.
        window: The look-back window of :func:`plan_slots`.

    Returns:
        The bookmark, and whether it differs from the stored one (must be written).
    """
    now_utc = utc_instant(now, "now")
    if mark is not None and mark_hash == current_hash:
        return utc_instant(mark, "mark"), False
    if mark is None:
        start = utc_instant(registered, "registered")
        if seen_before is not None:  # appeared while beat ran: new since its last read
            start = max(start, utc_instant(seen_before, "seen_before"))
        return max(start, now_utc - window), True
    # the schedule changed: its slots count from when beat first saw the change
    since = utc_instant(seen_before, "seen_before") if seen_before is not None else now_utc
    return max(utc_instant(mark, "mark"), since), True
