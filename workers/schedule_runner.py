"""Beat's decisions, made one tick at a time by :class:`ScheduleRunner` (the Celery
adapter is :mod:`workers.scheduler`): the leader lock, reading schedules and
bookmarks, firing due slots under their overlap policy and recording missed ones,
dispatching due Scheduled runs and releasing buffered ones, and the periodic sweep
for stuck runs; :class:`TickReport` says what a tick did. Imports redis-py,
:mod:`orchestrator.backends`, :mod:`orchestrator.db.models`,
:mod:`orchestrator.slot_runs`, the pure core (clock, constants, errors, schedules)
and :mod:`workers.dispatching`, :mod:`workers.sweeper`, :mod:`workers.upkeep` (lag and
sweep figures, the daily prune); no Celery."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from redis.exceptions import LockError

import orchestrator.constants as constants
import workers.upkeep as upkeep
from orchestrator.backends import Backends
from orchestrator.clock import aware, utcnow
from orchestrator.db.models import FlowVersion
from orchestrator.errors import BackendUnavailable, OrchestratorError, ScheduleError
from orchestrator.schedules.base import Schedule
from orchestrator.schedules.loading import schedule_from_dict
from orchestrator.schedules.slots import (
    DEFAULT_MAX_RUNS,
    DEFAULT_MAX_SKIPPED,
    DEFAULT_WINDOW,
    SlotPlan,
    plan_slots,
    schedule_hash,
    starting_point,
    utc_instant,
)
from orchestrator.slot_runs import Entry, fire_slots, record_missed
from workers.dispatching import LATE_AFTER, Dispatcher, dispatch_due, release_buffered
from workers.sweeper import SweepReport, sweep

__all__ = ["LATE_AFTER", "Dispatcher", "ScheduleRunner", "TickReport", "lock_name_for"]

log = logging.getLogger(__name__)

#: A flow's bookmark: (handled until, hash of the schedule it is for).
Mark = tuple[datetime, str | None]


@dataclass
class TickReport:
    """What one tick did.

    Attributes:
        now: The tick's time.
        leader: Whether this scheduler held the leader lock (if not, it did nothing).
        created: Ids of runs created for due slots (to start when due).
        buffered: Ids of runs created held back by their overlap policy.
        skipped: Ids of Skipped records of slots the overlap policy skipped.
        missed: Ids of Skipped records of slots beat missed (outside the catch-up).
        cancelled: Ids of runs cancelled by a ``cancel_other`` slot.
        dispatched: Ids of Scheduled runs sent to the workers (released buffered
            runs included).
        released: Ids of buffered runs sent because their schedule's earlier runs
            finished.
        swept: What the sweep for stuck runs did, when one ran this tick.
    """

    now: datetime
    leader: bool
    created: list[str] = field(default_factory=list)
    buffered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    swept: SweepReport | None = None


def lock_name_for(database_url: str) -> str:
    """The leader lock's Redis key: one beat leads per database."""
    scope = hashlib.sha1(database_url.encode()).hexdigest()[:16]
    return constants.BEAT_LEADER_LOCK.format(scope=scope)


class ScheduleRunner:
    """Beat's decisions, one :meth:`tick` at a time, for one process's backends.

    Every tick (each second) the runner:

    1. takes or renews the beat leader lock in Redis, a lease of ``lease_seconds``.
       Only the leader goes on; a second beat tries again each tick and takes over
       within one lease after the leader dies;
    2. every ``refresh_seconds`` re-reads the schedules of registered, non-archived,
       non-paused flow versions and each flow's bookmark (how far its slots were
       handled), so flows registered, changed, paused or resumed are picked up
       without a restart;
    3. for each schedule asks :func:`~orchestrator.schedules.slots.plan_slots` which
       slots are due and which were missed (its catch-up), records the missed ones
       as Skipped runs (logging their times), lets
       :func:`~orchestrator.slot_runs.fire_slots` carry out the overlap policy's
       decision for each due slot, oldest first (a run in Scheduled with
       ``scheduled_start_time`` the nominal fire time and the schedule's
       ``parameter_defaults``, a buffered run, a Skipped record, or the unfinished
       runs cancelled first), and moves the bookmark forward;
    4. dispatches every run in Scheduled whose scheduled start time has come (runs
       created here, and runs clients created for a future time), and, per
       schedule without an active run, its oldest buffered run: a compare-and-set
       to Submitted, then ``start_flow_run`` on the queue. Never a Celery ETA or
       countdown, which would outlive the Redis visibility timeout and be
       redelivered;
    5. every ``sweep_seconds`` of wall-clock time, sweeps for stuck runs.

    The lock only cuts contention. The guarantee is in the database: each slot's
    run has the idempotency key ``schedule:{project}/{flow}:{nominal time in UTC}``,
    so a restarted beat, or two beats that both believe they lead, create one run
    per slot. Tests drive ``tick(now)`` through simulated time.

    Args:
        b: The connections (database, Redis, Celery app).
        lease_seconds: How long the leader lock lasts without renewal.
        refresh_seconds: How often (in tick time) to re-read schedules and bookmarks.
        window: How far back to look for missed slots.
        max_skipped: Missed slots recorded as skipped per flow and tick, at most.
        max_runs: Catch-up runs created per flow and tick, at most.
        dispatch_limit: Due Scheduled runs dispatched per tick, at most.
        lock_name: The leader lock's Redis key (default: one per database).
        dispatch: Sends a run to the workers, ``(flow_run_id, flow_name)``; default
            :meth:`Backends.dispatch`.
    """

    def __init__(
        self,
        b: Backends,
        *,
        lease_seconds: float = constants.BEAT_LEASE_SECONDS,
        refresh_seconds: float = constants.BEAT_REFRESH_SECONDS,
        window: timedelta = DEFAULT_WINDOW,
        max_skipped: int = DEFAULT_MAX_SKIPPED,
        max_runs: int = DEFAULT_MAX_RUNS,
        dispatch_limit: int = 100,
        lock_name: str | None = None,
        dispatch: Dispatcher | None = None,
    ) -> None:
        self.backends = b
        self.lease_seconds = lease_seconds
        self.refresh = timedelta(seconds=refresh_seconds)
        self.window = window
        self.max_skipped = max_skipped
        self.max_runs = max_runs
        self.dispatch_limit = dispatch_limit
        self.lock_name = lock_name or lock_name_for(b.store.url)
        self._dispatch = dispatch or b.dispatch
        self._lock = b.redis.lock(
            self.lock_name, timeout=lease_seconds, blocking=False, thread_local=False
        )
        self._leading = False
        self._entries: list[Entry] | None = None
        self._refreshed_at: datetime | None = None
        self._marks: dict[tuple[int, str], Mark] = {}
        self._parsed: dict[str, tuple[Schedule, str]] = {}
        self._broken: set[str] = set()
        self._swept_at = float("-inf")

    # --- leadership ----------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Whether the last tick held the leader lock."""
        return self._leading

    def _lead(self) -> bool:
        """Renew the leader lock, or try to take it; True while this runner leads."""
        try:
            if self._leading:
                try:
                    self._lock.reacquire()
                    return True
                except LockError:
                    self._leading = False
                    log.warning("beat: lost the leader lock %s; standing by", self.lock_name)
            if self._lock.acquire(blocking=False):
                self._leading = True
                self._refreshed_at = None  # another beat may have moved things on
                log.info("beat: took the leader lock %s; firing schedules", self.lock_name)
        except redis.RedisError as exc:
            log.warning("beat: Redis unavailable (%s); not firing this tick", exc)
            return False
        return self._leading

    def release(self) -> None:
        """Give up the leader lock (on shutdown), so another beat takes over at once."""
        if self._leading:
            self._leading = False
            with contextlib.suppress(LockError, redis.RedisError):
                self._lock.release()

    # --- the tick --------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        """Fire due slots and dispatch due runs, as of ``now`` (aware).

        Returns:
            What the tick did; nothing at all when another beat leads.
        """
        now = utc_instant(now)
        report = TickReport(now=now, leader=self._lead())
        if not report.leader:
            return report
        try:
            self._refresh(now)
        except BackendUnavailable as exc:
            log.warning("beat: cannot read schedules: %s", exc)
            return report
        for entry in self._entries or []:
            try:
                self._fire(entry, now, report)
            except BackendUnavailable as exc:
                log.warning("beat: cannot fire schedules: %s", exc)
                return report  # the database is down: try again next tick
            except OrchestratorError as exc:
                log.error("beat: schedule of %s failed this tick: %s", entry.label, exc)
        try:
            self._dispatch_due(now, report)
        except BackendUnavailable as exc:
            log.warning("beat: cannot dispatch due runs: %s", exc)
        self._sweep(report)
        upkeep.swept(report.swept)
        upkeep.prune_daily(self.backends, now)
        return report

    def _sweep(self, report: TickReport) -> None:
        """Sweep for stuck runs when ``sweep_seconds`` passed since the last sweep."""
        settings = self.backends.settings
        # staleness is about real progress, so the sweep runs on the wall clock
        if time.monotonic() - self._swept_at >= settings.sweep_seconds:
            self._swept_at = time.monotonic()
            try:
                report.swept = sweep(
                    self.backends, utcnow(), settings.stale_seconds, settings.max_resubmits
                )
            except (BackendUnavailable, redis.RedisError) as exc:
                log.warning("beat: cannot sweep for stuck runs: %s", exc)

    # --- schedules and bookmarks --------------------------------------------------

    def _refresh(self, now: datetime) -> None:
        """Re-read schedules and bookmarks when ``refresh`` has passed since the last read."""
        if (
            self._entries is not None
            and self._refreshed_at is not None
            and timedelta(0) <= now - self._refreshed_at < self.refresh
        ):
            return
        store = self.backends.store
        rows = store.schedules.flows()
        stored = store.schedules.marks()
        before = {(e.flow.id, e.schedule_hash) for e in self._entries or []}
        entries = []
        for project, flow in rows:
            parsed = self._schedule_of(project, flow)
            if parsed is None:
                continue
            entry = Entry(project, flow, *parsed)
            entries.append(entry)
            start = self._bookmark(entry, stored.get(entry.key), now)
            if (flow.id, entry.schedule_hash) not in before:
                log.info(
                    "beat: firing %s version %d from %s: %s",
                    entry.label,
                    flow.version,
                    start.isoformat(),
                    entry.schedule,
                )
        self._entries = entries
        self._refreshed_at = now

    def _bookmark(self, entry: Entry, stored: Mark | None, now: datetime) -> datetime:
        """Where an entry's slots count from, from the newest of what this beat knows
        and what the database says (written back when it moves); the start."""
        mark = max(
            (m for m in (self._marks.get(entry.key), stored) if m),
            key=lambda m: m[0],
            default=None,
        )
        start, changed = starting_point(
            mark=mark[0] if mark else None,
            mark_hash=mark[1] if mark else None,
            current_hash=entry.schedule_hash,
            registered=aware(entry.flow.created) or now,
            seen_before=self._refreshed_at,
            now=now,
            window=self.window,
        )
        if changed:
            mark = self.backends.store.schedules.advance_mark(
                entry.flow.project_id, entry.flow.name, start, entry.schedule_hash
            )
        if mark is not None:
            self._marks[entry.key] = mark
        return start

    def _schedule_of(self, project: str, flow: FlowVersion) -> tuple[Schedule, str] | None:
        """The flow's schedule and its hash (parsed once), or None when it cannot be read."""
        raw = flow.schedule or {}
        key = json.dumps(raw, sort_keys=True, default=str)
        found = self._parsed.get(key)
        if found is not None or key in self._broken:
            return found
        try:
            schedule = schedule_from_dict(raw)
        except ScheduleError as exc:
            self._broken.add(key)
            log.error("beat: ignoring the schedule of %s/%s: %s", project, flow.name, exc)
            return None
        found = (schedule, schedule_hash(schedule))
        self._parsed[key] = found
        return found

    # --- slots -----------------------------------------------------------------------

    def _fire(self, entry: Entry, now: datetime, report: TickReport) -> None:
        """Record the missed slots of one schedule and fire its due ones."""
        known = self._marks.get(entry.key)
        mark = known[0] if known else None
        last_seen = mark if mark is not None else aware(entry.flow.created) or now
        plan = plan_slots(
            entry.schedule,
            last_seen,
            now,
            window=self.window,
            max_skipped=self.max_skipped,
            max_runs=self.max_runs,
        )
        if plan.missed_count:
            self._log_missed(entry, plan, last_seen)
        b = self.backends
        latest = plan.run[-1] if plan.run else None
        report.missed += record_missed(b, entry, plan.missed, now, latest)
        if plan.run:
            fired = fire_slots(b, entry, plan.run, now)
            upkeep.fired(entry.flow.name, plan.run, now)
            report.created += fired.created
            report.buffered += fired.buffered
            report.skipped += fired.skipped
            report.cancelled += fired.cancelled
        if mark is None or plan.handled_until > mark:
            self._marks[entry.key] = b.store.schedules.advance_mark(
                entry.flow.project_id, entry.flow.name, plan.handled_until, entry.schedule_hash
            )

    def _log_missed(self, entry: Entry, plan: SlotPlan, last_seen: datetime) -> None:
        """Say which slots were missed, with their times, and which run late."""
        recorded = len(plan.missed)
        shown = ", ".join(t.isoformat() for t in plan.missed[-10:])
        latest = f"the latest 10: {shown}" if recorded > 10 else shown
        log.warning(
            "beat: %s missed %d slot(s) since %s (catch-up %s); recorded %d as missed%s%s; %s",
            entry.label,
            plan.missed_count,
            last_seen.isoformat(),
            entry.schedule.catch_up.describe(),
            recorded,
            f" ({latest})" if recorded else "",
            f", {plan.dropped} more too old to record" if plan.dropped else "",
            f"running {len(plan.run)} late from {plan.run[0].isoformat()}"
            if plan.run
            else "running none",
        )

    # --- dispatch --------------------------------------------------------------------

    def _dispatch_due(self, now: datetime, report: TickReport) -> None:
        """Send due Scheduled runs, then buffered ones whose turn came, to the workers."""
        b = self.backends
        report.dispatched += dispatch_due(b, self._dispatch, now, self.dispatch_limit)
        report.released += release_buffered(b, self._dispatch, now)
        report.dispatched += report.released
