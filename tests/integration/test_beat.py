"""Schedules fired by Celery beat, on a real Redis and database (SQLite, and
PostgreSQL when configured): the real :class:`FlowScheduler` driven through
simulated time with an injected clock, and ``orchestrator beat`` run for real next
to a worker.

Each test gets a database of its own, so no test sees another's schedules (beat
fires every scheduled flow of its database) and each has its own leader lock."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import select

from orchestrator.backends import Backends, backends, redis_urls
from orchestrator.celery_app import make_app
from orchestrator.clock import aware, utcnow
from orchestrator.db import Store
from orchestrator.db.models import FlowRun, FlowVersion, Project
from orchestrator.states import State
from tests.conftest import Fleet, fresh_database
from tests.flows import scheduled
from workers.scheduler import ENV_LEASE_SECONDS, FlowScheduler, TickReport, lock_name_for

pytestmark = pytest.mark.integration

NEW_YORK = "US/Eastern"


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def beat_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database for this test alone."""
    yield from fresh_database(request.param, tmp_path)


def _migrate(url: str) -> None:
    store = Store(url)
    store.upgrade()
    store.close()


class Beat:
    """A fleet (no workers unless a test starts some) on this test's database, and
    the schedulers a test made, closed at the end."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.b = backends(fleet.settings)
        self.schedulers: list[FlowScheduler] = []
        self._others: list[Backends] = []

    def scheduler(
        self, clock: Callable[[], datetime], b: Backends | None = None, **options: Any
    ) -> FlowScheduler:
        """A real FlowScheduler on these backends, ticking at ``clock()``."""
        b = b or self.b
        s = FlowScheduler(app=b.app, backends=b, clock=clock, **options)
        self.schedulers.append(s)
        return s

    def separate_backends(self) -> Backends:
        """Connections of their own, as another beat process would have."""
        settings = self.fleet.settings
        celery_url, redis_url = redis_urls(settings)
        other = Backends(
            settings,
            celery_url,
            redis.Redis.from_url(redis_url),
            Store(settings.resolved_database_url()),
            make_app(celery_url, settings),
        )
        self._others.append(other)
        return other

    def register(self, flow: Any, project: str) -> FlowVersion:
        self.fleet.client.register(flow, project)
        return self.b.store.flows.newest(project, flow.name)

    def runs(self, project: str, flow: str | None = None) -> list[FlowRun]:
        """The runs of a project (one flow's), by scheduled start time."""
        with self.b.store.reading() as s:
            q = (
                select(FlowRun)
                .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
                .join(Project, Project.id == FlowVersion.project_id)
                .where(Project.name == project)
            )
            if flow is not None:
                q = q.where(FlowVersion.name == flow)
            return list(s.scalars(q.order_by(FlowRun.scheduled_start_time, FlowRun.created)))

    def close(self) -> None:
        for s in self.schedulers:
            s.close()
        self.fleet.stop()
        with contextlib.suppress(redis.RedisError):
            self.b.redis.delete(self.fleet.queue)  # runs sent to no worker
        for other in self._others:
            other.store.close()
            other.redis.close()
        self.b.store.close()


@pytest.fixture()
def beat(beat_db: str, redis_url: str, tmp_path: Path) -> Iterator[Beat]:
    home, logs = tmp_path / "home", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    b = Beat(Fleet(home, redis_url, beat_db, logs))
    try:
        yield b
    finally:
        b.close()


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def next_minute(after: datetime | None) -> datetime:
    """The first whole minute strictly after ``after`` (aware)."""
    assert after is not None
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


def next_hour(after: datetime | None) -> datetime:
    """The first whole hour strictly after ``after`` (aware)."""
    assert after is not None
    return after.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def registered(version: FlowVersion) -> datetime:
    """When a flow version was registered (aware)."""
    created = aware(version.created)
    assert created is not None
    return created


def starts(runs: list[FlowRun]) -> list[datetime]:
    return [aware(r.scheduled_start_time) for r in runs]  # type: ignore[misc]


def tick(s: FlowScheduler) -> TickReport:
    """Tick once; fail the test on an error inside the tick."""
    s.tick()
    assert s.last_error is None, repr(s.last_error)
    assert s.last_report is not None
    return s.last_report


# --- the seed's weekday schedule ----------------------------------------------------------


def test_seed_parent_flow_fires_weekdays_at_0930_new_york_never_at_weekends(
    beat: Beat, project: str
) -> None:
    # Given the seed's Flow-of-Flows, scheduled "30 9 * * 1-5" from pendulum.now(US/Eastern)
    beat.register(scheduled.parent_flow, project)
    start = utcnow()
    clock = Clock(start)
    s = beat.scheduler(clock)
    # When beat ticks every 20 minutes through a simulated week, the last tick just
    # before the week ends (so a slot in the last 20 minutes fires too, whatever the
    # time of day the test starts at)
    end = start + timedelta(days=7) - timedelta(seconds=1)
    created = tick(s).created
    while clock.now < end:
        clock.now = min(clock.now + timedelta(minutes=20), end)
        created += tick(s).created
    # Then it created one run on each weekday, at 09:30 New York time
    runs = beat.runs(project, "parent-flow")
    assert len(runs) == 5 and sorted(created) == sorted(r.id for r in runs)
    local = [pendulum.instance(t).in_timezone(NEW_YORK) for t in starts(runs)]
    assert [(t.hour, t.minute) for t in local] == [(9, 30)] * 5
    assert sorted(t.isoweekday() for t in local) == [1, 2, 3, 4, 5]
    assert not [t for t in local if t.isoweekday() in (6, 7)]  # never Saturday or Sunday
    # exactly the schedule's own fire times, one per slot, each keyed by its nominal time
    expected = scheduled.weekday_schedule.next(5, after=start)
    assert starts(runs) == [t.in_timezone("UTC") for t in expected]
    assert [r.idempotency_key for r in runs] == [
        f"schedule:{project}/parent-flow:{t.in_timezone('UTC').isoformat()}" for t in expected
    ]
    # and each was dispatched once due, none skipped
    assert {r.state for r in runs} == {State.SUBMITTED.value}


# --- exactly one run per slot -------------------------------------------------------------


def test_two_beats_ticking_the_same_instant_create_one_run(beat: Beat, project: str) -> None:
    # Given a flow firing every minute, and two beats that both believe they lead
    # (each with its own connections and its own lock: the database must decide)
    version = beat.register(scheduled.every_minute, project)
    slot = next_minute(registered(version))
    clock = Clock(slot + timedelta(seconds=1))
    one = beat.scheduler(clock, lock_name=f"test:{project}:one")
    two = beat.scheduler(clock, b=beat.separate_backends(), lock_name=f"test:{project}:two")
    # When both tick at the same instant, in parallel
    barrier = threading.Barrier(2)
    reports: list[TickReport] = []

    def go(s: FlowScheduler) -> None:
        barrier.wait()
        reports.append(tick(s))

    threads = [threading.Thread(target=go, args=(s,)) for s in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then both led, yet the slot has one run, created once and dispatched once
    assert len(reports) == 2 and all(r.leader for r in reports)
    runs = beat.runs(project, "every-minute")
    assert starts(runs) == [slot]
    assert [i for r in reports for i in r.created] == [runs[0].id]
    assert [i for r in reports for i in r.dispatched] == [runs[0].id]


def test_with_one_lock_only_the_leader_creates_runs_and_a_standby_takes_over(
    beat: Beat, project: str
) -> None:
    # Given two beats sharing the leader lock, with a short lease
    lease = 1.5
    version = beat.register(scheduled.every_minute, project)
    clock = Clock(next_minute(registered(version)) - timedelta(seconds=30))
    first = beat.scheduler(clock, lease_seconds=lease)
    second = beat.scheduler(clock, b=beat.separate_backends(), lease_seconds=lease)
    # When both tick every 20 simulated seconds for three minutes
    by_first, by_second = [], []
    for _ in range(9):
        clock.advance(seconds=20)
        by_first += tick(first).created
        report = tick(second)
        assert not report.leader
        by_second += report.created
    # Then only the first created runs, one per slot
    assert len(by_first) == 3 and by_second == []
    # When the first stops renewing its lease (it died)
    clock.advance(seconds=20)
    assert not tick(second).leader  # the lease still holds
    # Then the second takes over once the lease runs out (its time goes to bench/),
    # and goes on where the first stopped
    died = time.monotonic()
    while not tick(second).leader:
        assert time.monotonic() - died < 60, "the standby never took over"
        time.sleep(0.1)
    print(f"standby took over {time.monotonic() - died:.2f} s after the lease's last renewal")
    for _ in range(6):
        clock.advance(seconds=20)
        by_second += tick(second).created
    runs = beat.runs(project, "every-minute")
    assert len(by_second) >= 2 and sorted(by_first + by_second) == sorted(r.id for r in runs)
    minutes = starts(runs)
    assert minutes == sorted(set(minutes)), "a slot got two runs"
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(minutes))
    assert not [r for r in runs if r.state == State.SKIPPED.value]


def test_a_restart_in_the_middle_of_a_slot_creates_no_duplicate(
    beat: Beat, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given beat created the run of the 1st slot, and stopped (gracefully) a second later
    version = beat.register(scheduled.every_minute, project)
    slot = next_minute(registered(version))
    clock = Clock(slot + timedelta(seconds=1))
    before = beat.scheduler(clock)
    assert len(tick(before).created) == 1
    before.close()
    # When a new beat starts within the same slot and ticks on
    after = beat.scheduler(Clock(slot + timedelta(seconds=2)))
    assert tick(after).created == []
    # Then the slot still has its one run
    assert starts(beat.runs(project, "every-minute")) == [slot]

    # Given a beat killed after creating the next slot's run but before its bookkeeping
    after.close()
    marks = beat.b.store.schedules
    real_advance = marks.advance_mark

    def killed(*args: Any, **kwargs: Any) -> bool:
        raise SystemExit("killed")

    monkeypatch.setattr(marks, "advance_mark", killed)
    clock = Clock(slot + timedelta(minutes=1, seconds=1))
    dying = beat.scheduler(clock, lease_seconds=1.0)
    with pytest.raises(SystemExit):
        dying.runner.tick(clock())
    monkeypatch.setattr(marks, "advance_mark", real_advance)
    # When another beat takes over once the dead one's lease ran out, in the same slot
    time.sleep(1.2)
    successor = beat.scheduler(Clock(slot + timedelta(minutes=1, seconds=3)))
    report = tick(successor)
    # Then it created nothing: each slot has exactly one run
    assert report.leader and report.created == [] and report.skipped == [] and report.missed == []
    assert starts(beat.runs(project, "every-minute")) == [slot, slot + timedelta(minutes=1)]


def test_a_flow_registered_while_beat_runs_is_picked_up(beat: Beat, project: str) -> None:
    # Given a beat running with nothing to fire
    clock = Clock(utcnow())
    s = beat.scheduler(clock)
    assert tick(s).created == []
    # When a scheduled flow is registered, without restarting beat, and beat ticks on
    version = beat.register(scheduled.every_minute, project)
    created = []
    for _ in range(18):
        clock.advance(seconds=10)
        created += tick(s).created
    # Then each of its slots after its registration fired once, on time
    runs = beat.runs(project, "every-minute")
    first = next_minute(registered(version))
    assert starts(runs) == [first + timedelta(minutes=i) for i in range(len(runs))]
    assert len(runs) >= 2 and sorted(created) == sorted(r.id for r in runs)
    assert {r.state for r in runs} == {State.SUBMITTED.value}


def test_a_changed_schedule_replaces_the_old_one_without_backfill(beat: Beat, project: str) -> None:
    # Given "every-minute" fired once by a running beat
    flow = scheduled.every_minute
    slot = next_minute(registered(beat.register(flow, project)))
    clock = Clock(slot + timedelta(seconds=1))
    s = beat.scheduler(clock)
    tick(s)
    # When it is registered again with an hourly schedule (same structure: the stored
    # version's schedule changes in place)
    original = flow.schedule
    try:
        flow.schedule = scheduled.hourly_catchup.schedule
        beat.register(flow, project)
    finally:
        flow.schedule = original
    # Then beat fires the new schedule from when it saw it, and the old one no longer
    hour = next_hour(clock.now)
    while clock.now < hour + timedelta(minutes=2):
        clock.advance(seconds=30)
        tick(s)
    assert starts(beat.runs(project, "every-minute")) == [slot, hour]
    # and a restarted beat goes on with the new schedule, without backfilling
    s.close()
    later = Clock(hour + timedelta(minutes=30))
    assert tick(beat.scheduler(later)).created == []


# --- missed slots -------------------------------------------------------------------------


def test_after_downtime_the_latest_missed_slot_runs_late_and_the_rest_are_skipped(
    beat: Beat, project: str
) -> None:
    # Given a minutely flow, and an hourly flow with catch-up, both fired by beat
    beat.register(scheduled.every_minute, project)
    hourly_since = registered(beat.register(scheduled.hourly_catchup, project))
    first = next_minute(hourly_since)
    clock = Clock(first + timedelta(seconds=1))
    tick(beat.scheduler(clock)).created  # noqa: B018
    for s in beat.schedulers:
        s.close()
    # When beat comes back 4 hours and 30 seconds later
    back = first + timedelta(hours=4, seconds=30)
    report = tick(beat.scheduler(Clock(back)))
    # Then for the minutely flow only the latest missed slot runs, late, with its
    # nominal time; the other missed slots are recorded as Skipped (100 at most)
    runs = beat.runs(project, "every-minute")
    latest = runs[-1]
    assert aware(latest.scheduled_start_time) == first + timedelta(hours=4)
    assert latest.state == State.SUBMITTED.value and latest.id in report.dispatched
    skipped = [r for r in runs if r.state == State.SKIPPED.value]
    assert len(skipped) == 100 and "missed" in (skipped[0].message or "")
    assert starts(skipped) == [first + timedelta(hours=4, minutes=-100 + i) for i in range(100)]
    # and the catch-up flow runs every missed hour
    hourly = beat.runs(project, "hourly-catchup")
    hours = [next_hour(hourly_since) + timedelta(hours=i) for i in range(6)]
    assert starts(hourly) == [h for h in hours if h <= back]
    assert {r.state for r in hourly} == {State.SUBMITTED.value}


def test_a_paused_schedule_fires_nothing_and_resumes_without_backfill(
    beat: Beat, project: str
) -> None:
    # Given a minutely flow, paused
    version = beat.register(scheduled.every_minute, project)
    beat.b.store.schedules.pause(project, "every-minute", "testing", "tests")
    clock = Clock(next_minute(registered(version)))
    s = beat.scheduler(clock)
    # When beat ticks through five minutes
    for _ in range(10):
        clock.advance(seconds=30)
        tick(s)
    # Then nothing fired
    assert beat.runs(project) == []
    # When it is resumed, and beat ticks on
    beat.b.store.schedules.resume(project, "every-minute", now=clock.now)
    resumed = clock.now
    for _ in range(5):
        clock.advance(seconds=30)
        tick(s)
    # Then only the slots after the resume fire; none missed while paused is recorded
    runs = beat.runs(project)
    assert runs and all(t > resumed for t in starts(runs))
    assert {r.state for r in runs} == {State.SUBMITTED.value}


def test_a_required_parameter_without_value_records_a_failed_run_per_slot(
    beat: Beat, project: str
) -> None:
    hour = next_hour(registered(beat.register(scheduled.needs_a_value, project)))
    clock = Clock(hour + timedelta(seconds=1))
    s = beat.scheduler(clock)
    tick(s)
    clock.advance(seconds=1)
    tick(s)
    runs = beat.runs(project)
    assert len(runs) == 1 and runs[0].state == State.FAILED.value
    assert "greeting" in (runs[0].message or "")


# --- runs scheduled for later -------------------------------------------------------------


def test_a_run_created_for_later_waits_in_scheduled_and_beat_dispatches_it_when_due(
    beat: Beat, project: str
) -> None:
    # Given a client created a run for 30 seconds from now
    beat.register(scheduled.later, project)
    due = utcnow() + timedelta(seconds=30)
    run_id = beat.fleet.client.create_flow_run("later", project, scheduled_start_time=due)
    assert beat.b.store.flow_runs.get(run_id).state == State.SCHEDULED.value
    clock = Clock(due - timedelta(seconds=10))
    s = beat.scheduler(clock)
    # When beat ticks before it is due, then after
    assert tick(s).dispatched == []
    assert beat.b.store.flow_runs.get(run_id).state == State.SCHEDULED.value
    clock.now = due + timedelta(seconds=1)
    report = tick(s)
    # Then it was sent once, when due
    assert report.dispatched == [run_id]
    assert beat.b.store.flow_runs.get(run_id).state == State.SUBMITTED.value
    assert tick(s).dispatched == []


# --- the command line ---------------------------------------------------------------------


def _env(fleet: Fleet) -> dict[str, str]:
    return {
        k: fleet.env[k]
        for k in (
            "ORCHESTRATOR_HOME",
            "ORCHESTRATOR_REDIS_URL",
            "ORCHESTRATOR_DATABASE_URL",
            "ORCHESTRATOR_QUEUE",
        )
    }


def test_schedules_command_lists_next_fire_times_and_pauses(beat: Beat, project: str) -> None:
    from orchestrator.cli import main

    beat.register(scheduled.parent_flow, project)
    beat.register(scheduled.later, project)
    runner = CliRunner()
    env = {**_env(beat.fleet), "COLUMNS": "250"}
    # When listing the project's schedules
    result = runner.invoke(main, ["schedules", "--project", project], env=env)
    assert result.exit_code == 0, result.output
    # Then the parent flow shows its five next fire times: weekdays 09:30 New York
    lines = [ln for ln in result.output.splitlines() if "09:30 E" in ln]
    assert len(lines) == 5, result.output
    assert all(any(day in ln for day in ("Mon", "Tue", "Wed", "Thu", "Fri")) for ln in lines)
    assert all("14:30 UTC" in ln or "13:30 UTC" in ln for ln in lines)
    assert "cron 30 9 * * 1-5" in result.output and "US/Eastern" in result.output
    assert "later" not in result.output  # no schedule, not listed
    # When pausing it, then resuming it
    result = runner.invoke(main, ["schedules", "pause", "parent-flow", "-p", project], env=env)
    assert result.exit_code == 0 and "paused" in result.output
    paused = beat.b.store.flows.newest(project, "parent-flow")
    assert (paused.project_id, "parent-flow") in beat.b.store.schedules.pauses()
    assert beat.b.store.schedules.flows() == []
    result = runner.invoke(main, ["schedules", "resume", "parent-flow", "-p", project], env=env)
    assert result.exit_code == 0 and "resumed" in result.output
    assert beat.b.store.schedules.pauses() == {}
    # And a flow without schedule is a one-line error
    result = runner.invoke(main, ["schedules", "pause", "later", "-p", project], env=env)
    assert result.exit_code == 1 and "has no schedule" in result.output


class BeatProcess:
    """``orchestrator beat`` in a process of its own, its output in a file."""

    def __init__(self, env: dict[str, str], folder: Path, name: str) -> None:
        self.log_path = folder / f"beat-{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "beat", "--schedule",
                 str(folder / f"beat-{name}-schedule"), "--pidfile", str(folder / f"beat-{name}.pid")],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def leads(self) -> bool:
        return "took the leader lock" in self.output

    def check_alive(self) -> None:
        assert self.proc.poll() is None, f"beat exited with {self.proc.returncode}:\n{self.output}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def wait_until(
    what: str, condition: Callable[[], bool], timeout: float, alive: list[BeatProcess]
) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        for p in alive:
            p.check_alive()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_orchestrator_beat_fires_a_schedule_for_real_and_the_runs_execute(
    beat: Beat, project: str, tmp_path: Path
) -> None:
    # Given a worker, and a flow registered with a schedule every two seconds
    fleet = beat.fleet
    fleet.start_worker()
    beat.register(scheduled.every_two_seconds, project)
    # When `orchestrator beat` runs
    proc = BeatProcess(fleet.env, tmp_path, "only")
    try:
        wait_until(
            "two scheduled runs to succeed",
            lambda: len([r for r in beat.runs(project) if r.state == State.SUCCESS.value]) >= 2,
            90, [proc],
        )  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{proc.output}\n{fleet.logs()}") from None
    finally:
        proc.stop()
    output = proc.output
    # Then beat created runs on its own, and the worker ran them to Success
    assert "beat firing schedules for Redis" in output and proc.leads
    runs = beat.runs(project)
    done = [r for r in runs if r.state == State.SUCCESS.value]
    times = starts(runs)
    assert len(set(times)) == len(times), "a slot got two runs"
    assert all(t.second % 2 == 0 and t.microsecond == 0 for t in times)
    info = fleet.client.get_flow_run(done[0].id)
    assert info.parameters == {"greeting": "hello"}
    assert info.task_run("greet").result == "hello, world"
    # and it let go of the leader lock when stopped
    assert not beat.b.redis.exists(lock_name_for(fleet.settings.resolved_database_url()))
    assert datetime.now(UTC) - max(times) < timedelta(minutes=2)


def test_killing_the_leading_beat_neither_loses_nor_duplicates_a_slot(
    beat: Beat, project: str, tmp_path: Path
) -> None:
    # Given two beats with a 3 s lease, and a flow scheduled every two seconds
    lease = 3
    version = beat.register(scheduled.every_two_seconds, project)
    env = {**beat.fleet.env, ENV_LEASE_SECONDS: str(lease)}
    beats = [BeatProcess(env, tmp_path, "one"), BeatProcess(env, tmp_path, "two")]
    try:
        wait_until("three scheduled runs", lambda: len(beat.runs(project)) >= 3, 60, beats)
        # Then one leads and the other stands by
        leaders = [p for p in beats if p.leads]
        assert len(leaders) == 1, [p.output for p in beats]
        leader, standby = leaders[0], next(p for p in beats if p is not leaders[0])
        # When the leader is killed
        leader.stop(signal.SIGKILL)
        killed = utcnow()
        # Then the standby takes over, and creates the runs of the next slots
        wait_until("the standby to take over", lambda: standby.leads, 60, [standby])
        wait_until(
            "runs after the takeover",
            lambda: len([t for t in starts(beat.runs(project)) if t > killed]) >= 3, 60, [standby],
        )  # fmt: skip
    finally:
        for p in beats:
            p.stop()
    # Then every slot since the registration has exactly one run: none lost, none twice
    runs = beat.runs(project)
    times = starts(runs)
    first = registered(version).replace(microsecond=0) + timedelta(seconds=1)
    first += timedelta(seconds=first.second % 2)
    assert times == [first + timedelta(seconds=2 * i) for i in range(len(times))]
    # (the slots that passed while no beat led ran late or were recorded as skipped)
    assert all("missed" in (r.message or "") for r in runs if r.state == State.SKIPPED.value)
