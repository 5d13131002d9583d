"""The Celery beat scheduler that fires registered flows' schedules.

``orchestrator beat`` runs ``celery -A workers beat -S workers.scheduler:FlowScheduler``.
Every tick (each second) the scheduler:

1. takes or renews the beat leader lock in Redis, a lease of
   :data:`~orchestrator.constants.BEAT_LEASE_SECONDS`. Only the leader goes on; a
   second beat tries again each tick and takes over within one lease after the
   leader dies;
2. every few seconds re-reads the schedules of registered, non-archived, non-paused
   flow versions and each flow's bookmark (how far its slots were handled), so
   flows registered, changed, paused or resumed are picked up without a restart;
3. for each schedule asks :func:`~orchestrator.schedule_slots.plan_slots` which
   slots are due, creates a run for each (state Scheduled, ``scheduled_start_time``
   the nominal fire time, the schedule's ``parameter_defaults``), records missed
   slots as Skipped runs, and moves the bookmark forward;
4. dispatches every run in Scheduled whose scheduled start time has come (runs
   created here, and runs clients created for a future time): a compare-and-set to
   Submitted, then ``start_flow_run`` on the queue. Never a Celery ETA or countdown,
   which would outlive the Redis visibility timeout and be redelivered.

The lock only cuts contention. The guarantee is in the database: each slot's run
has the idempotency key ``schedule:{project}/{flow}:{nominal time in UTC}``, so a
restarted beat, or two beats that both believe they lead, create one run per slot.

The decisions live in :class:`ScheduleRunner`, driven by ``tick(now)``; tests drive
it (or :class:`FlowScheduler` with an injected ``clock``) through simulated time.
:class:`FlowScheduler` is the thin Celery adapter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from celery import Celery
from celery.beat import Scheduler
from redis.exceptions import LockError

from orchestrator import constants
from orchestrator.config import hide_password
from orchestrator.errors import (
    BackendUnavailable,
    OrchestratorError,
    ParameterError,
    ScheduleError,
    SerializationError,
)
from orchestrator.models import FlowVersion
from orchestrator.parameters import resolve_parameters
from orchestrator.runtime import Backends, backends
from orchestrator.schedule_slots import (
    DEFAULT_MAX_RUNS,
    DEFAULT_MAX_SKIPPED,
    DEFAULT_WINDOW,
    plan_slots,
    schedule_hash,
    slot_key,
    starting_point,
    utc_instant,
)
from orchestrator.schedules import Schedule, schedule_from_dict
from orchestrator.states import State
from orchestrator.store import aware, utcnow
from workers.sweeper import SweepReport, sweep

log = logging.getLogger(__name__)

#: A run dispatched this much after its nominal time says so in its state message.
LATE_AFTER = timedelta(seconds=60)
#: Environment variable overriding the leader lock's lease, in seconds.
ENV_LEASE_SECONDS = "ORCHESTRATOR_BEAT_LEASE_SECONDS"

Dispatcher = Callable[[str, str], None]


@dataclass
class TickReport:
    """What one tick did.

    Attributes:
        now: The tick's time.
        leader: Whether this scheduler held the leader lock (if not, it did nothing).
        created: Ids of runs created for due slots.
        skipped: Ids of runs recorded as Skipped for missed slots.
        dispatched: Ids of Scheduled runs sent to the workers.
    """

    now: datetime
    leader: bool
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)
    swept: SweepReport | None = None


@dataclass(frozen=True)
class _Entry:
    """One scheduled flow as beat sees it."""

    project: str
    flow: FlowVersion
    schedule: Schedule
    schedule_hash: str

    @property
    def key(self) -> tuple[int, str]:
        return (self.flow.project_id, self.flow.name)

    @property
    def label(self) -> str:
        return f"{self.project}/{self.flow.name}"


def lock_name_for(database_url: str) -> str:
    """The leader lock's Redis key: one beat leads per database."""
    scope = hashlib.sha1(database_url.encode()).hexdigest()[:16]
    return constants.BEAT_LEADER_LOCK.format(scope=scope)


class ScheduleRunner:
    """Beat's decisions, one :meth:`tick` at a time, for one process's backends.

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
        self._entries: list[_Entry] | None = None
        self._refreshed_at: datetime | None = None
        self._marks: dict[tuple[int, str], tuple[datetime, str | None]] = {}
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
        return report

    def _refresh(self, now: datetime) -> None:
        """Re-read schedules and bookmarks when ``refresh`` has passed since the last read."""
        if (
            self._entries is not None
            and self._refreshed_at is not None
            and timedelta(0) <= now - self._refreshed_at < self.refresh
        ):
            return
        store = self.backends.store
        rows = store.scheduled_flows()
        stored = store.schedule_marks()
        seen_before = self._refreshed_at
        before = {(e.flow.id, e.schedule_hash) for e in self._entries or []}
        entries = []
        for project, flow in rows:
            parsed = self._schedule_of(project, flow)
            if parsed is None:
                continue
            entry = _Entry(project, flow, *parsed)
            entries.append(entry)
            # the newest of what this beat knows and what the database says
            mark = max(
                (m for m in (self._marks.get(entry.key), stored.get(entry.key)) if m),
                key=lambda m: m[0], default=None,
            )  # fmt: skip
            start, changed = starting_point(
                mark=mark[0] if mark else None, mark_hash=mark[1] if mark else None,
                current_hash=entry.schedule_hash, registered=aware(flow.created) or now,
                seen_before=seen_before, now=now, window=self.window,
            )  # fmt: skip
            if changed:
                mark = store.advance_schedule_mark(
                    flow.project_id, flow.name, start, entry.schedule_hash
                )
            if mark is not None:
                self._marks[entry.key] = mark
            if (flow.id, entry.schedule_hash) not in before:
                log.info("beat: firing %s version %d from %s: %s", entry.label, flow.version,
                         start.isoformat(), entry.schedule)  # fmt: skip
        self._entries = entries
        self._refreshed_at = now

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

    def _fire(self, entry: _Entry, now: datetime, report: TickReport) -> None:
        """Create the runs (and skipped records) of one schedule's due slots."""
        known = self._marks.get(entry.key)
        mark = known[0] if known else None
        last_seen = mark if mark is not None else aware(entry.flow.created) or now
        plan = plan_slots(
            entry.schedule, last_seen, now,
            window=self.window, max_skipped=self.max_skipped, max_runs=self.max_runs,
        )  # fmt: skip
        if not plan.run and not plan.skip:
            return
        if plan.missed:
            log.warning(
                "beat: %s missed %d slot(s) since %s; running the latest (%s) late, "
                "recording %d as skipped%s",
                entry.label, plan.missed, last_seen.isoformat(), plan.run[-1].isoformat(),
                len(plan.skip), f" ({plan.dropped} too old to record)" if plan.dropped else "",
            )  # fmt: skip
        if len(plan.run) > 1:
            log.warning("beat: %s catching up %d missed slot(s)", entry.label, len(plan.run))
        latest = plan.run[-1] if plan.run else None
        for slot in plan.skip:
            run_id = self._record_skipped(entry, slot, latest)
            if run_id:
                report.skipped.append(run_id)
        for slot in plan.run:
            run_id = self._create(entry, slot)
            if run_id:
                report.created.append(run_id)
        if mark is None or plan.handled_until > mark:
            self._marks[entry.key] = self.backends.store.advance_schedule_mark(
                entry.flow.project_id, entry.flow.name, plan.handled_until, entry.schedule_hash
            )

    def _parameters(self, entry: _Entry) -> dict[str, Any]:
        return resolve_parameters(
            entry.flow.name, entry.flow.parameters, entry.schedule.parameter_defaults
        )

    def _create(self, entry: _Entry, slot: datetime) -> str | None:
        """Create the run of one slot (state Scheduled); its id when this call created it."""
        store = self.backends.store
        key = slot_key(entry.project, entry.flow.name, slot)
        name = f"scheduled {slot.isoformat()}"
        try:
            parameters = self._parameters(entry)
        except (ParameterError, SerializationError) as exc:
            message = f"scheduled run not started: {exc}"
            run, created = store.create_final_flow_run(
                entry.flow, {}, State.FAILED, message, key, name, utc_instant(slot)
            )
            if created:
                log.error("beat: %s slot %s: %s", entry.label, slot.isoformat(), message)
            return None
        run, created = store.create_flow_run(
            entry.flow, parameters, State.SCHEDULED, idempotency_key=key, name=name,
            scheduled_start_time=utc_instant(slot),
        )  # fmt: skip
        if not created:
            return None
        log.info("beat: %s slot %s: created run %s", entry.label, slot.isoformat(), run.id)
        return run.id

    def _record_skipped(self, entry: _Entry, slot: datetime, latest: datetime | None) -> str | None:
        """Record a missed slot as a Skipped run; its id when this call recorded it."""
        try:
            parameters = self._parameters(entry)
        except (ParameterError, SerializationError):
            parameters = {}
        instead = f"; the latest missed slot ({latest.isoformat()}) ran instead" if latest else ""
        message = f"missed: no beat was running at {slot.isoformat()}{instead}"
        run, created = self.backends.store.create_final_flow_run(
            entry.flow, parameters, State.SKIPPED, message,
            slot_key(entry.project, entry.flow.name, slot),
            f"scheduled {slot.isoformat()}", utc_instant(slot),
        )  # fmt: skip
        return run.id if created else None

    def _dispatch_due(self, now: datetime, report: TickReport) -> None:
        """Send every Scheduled run whose time has come to the workers."""
        b = self.backends
        for run, flow_name in b.store.due_scheduled_runs(now, self.dispatch_limit):
            nominal = aware(run.scheduled_start_time) or now
            message = None
            if now - nominal > LATE_AFTER:
                message = f"dispatched late: due at {nominal.isoformat()}"
            if not b.set_flow_run_state(run.id, State.SUBMITTED, message, [State.SCHEDULED]):
                continue  # another beat, or a worker, got there first
            try:
                self._dispatch(run.id, flow_name)
            except Exception as exc:
                # not sent: put it back so the next tick tries again
                b.store.set_flow_run_state(
                    run.id, State.SCHEDULED, f"dispatch failed, retrying: {exc}",
                    [State.SUBMITTED],
                )  # fmt: skip
                log.error("beat: could not send run %s of %s: %s", run.id, flow_name, exc)
                return
            report.dispatched.append(run.id)


class FlowScheduler(Scheduler):  # type: ignore[misc]
    """Celery beat's scheduler for registered flows (``-S workers.scheduler:FlowScheduler``).

    A thin adapter: each Celery tick runs :meth:`ScheduleRunner.tick` at
    ``clock()``, then Celery's own periodic entries (``beat_schedule``, if any) when
    this beat leads, and asks to be called again in ``tick_seconds``.

    Args:
        app: The Celery app.
        *args: Passed to :class:`celery.beat.Scheduler`.
        backends: The connections (default: from the environment).
        clock: Returns the current time, aware (default: the real clock). Tests
            inject one to drive the scheduler through simulated time.
        **kwargs: ``lease_seconds``, ``refresh_seconds``, ``window``,
            ``max_skipped``, ``max_runs``, ``dispatch_limit``, ``lock_name`` and
            ``dispatch`` go to :class:`ScheduleRunner`; the rest to Celery. The lease
            defaults to ``ORCHESTRATOR_BEAT_LEASE_SECONDS`` when that is set.
    """

    #: Seconds between two ticks.
    tick_seconds = constants.BEAT_TICK_SECONDS

    _RUNNER_OPTIONS = (
        "lease_seconds", "refresh_seconds", "window", "max_skipped", "max_runs",
        "dispatch_limit", "lock_name", "dispatch",
    )  # fmt: skip

    def __init__(
        self,
        app: Celery,
        *args: Any,
        backends: Backends | None = None,
        clock: Callable[[], datetime] | None = None,
        **kwargs: Any,
    ) -> None:
        self._backends = backends
        self._runner_options = {k: kwargs.pop(k) for k in self._RUNNER_OPTIONS if k in kwargs}
        if "lease_seconds" not in self._runner_options and os.environ.get(ENV_LEASE_SECONDS):
            self._runner_options["lease_seconds"] = float(os.environ[ENV_LEASE_SECONDS])
        self._runner: ScheduleRunner | None = None
        self.clock: Callable[[], datetime] = clock or utcnow
        #: What the last tick did (None before the first, or when it failed).
        self.last_report: TickReport | None = None
        #: The error the last tick failed with, if it did.
        self.last_error: BaseException | None = None
        super().__init__(app, *args, **kwargs)

    @property
    def runner(self) -> ScheduleRunner:
        """The decision logic (made on first use)."""
        if self._runner is None:
            b = self._backends or backends()
            self._runner = ScheduleRunner(b, **self._runner_options)
        return self._runner

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One beat iteration; returns the seconds to sleep before the next."""
        try:
            self.last_report = self.runner.tick(self.clock())
            self.last_error = None
        except Exception as exc:  # beat must outlive a bad tick
            self.last_report, self.last_error = None, exc
            log.exception("beat: tick failed; trying again in %gs", self.tick_seconds)
            return self.tick_seconds
        delay = self.tick_seconds
        if self.last_report.leader and self.schedule:
            delay = min(delay, super().tick(*args, **kwargs))
        return delay

    def close(self) -> None:
        """Release the leader lock, then close Celery's resources."""
        if self._runner is not None:
            self._runner.release()
        super().close()

    @property
    def info(self) -> str:
        """The startup banner's line about this scheduler."""
        b = self._backends or backends()
        lease = self._runner_options.get("lease_seconds", constants.BEAT_LEASE_SECONDS)
        return (
            f"flows from {hide_password(b.store.url)}, leader lock "
            f"{self._runner_options.get('lock_name') or lock_name_for(b.store.url)} "
            f"(lease {lease:g}s)"
        )
