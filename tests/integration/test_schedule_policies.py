"""Overlap policies, catch-up windows, backfills and pauses with a note, on a real
Redis, a real database (SQLite, and PostgreSQL when configured) and a real Celery
worker: the real :class:`FlowScheduler` driven by a hand-moved clock where slot
logic is under test, and ``orchestrator beat`` run for real for the issue's
"5 s flow on a 2 s interval with skip".

Runs that must stay open are *gated* (``tests/flows/policies.py``): they finish when
the test opens their gate, so every assertion waits on a recorded state, never on
timing. The module shares one database and one worker per database kind; each test
works in its own project and, when done, pauses its schedules and cancels its
unfinished runs, so beat in a later test sees none of them."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from orchestrator import Flow, Parameter
from orchestrator.backends import backends
from orchestrator.cli import main
from orchestrator.clock import aware
from orchestrator.db.models import FlowRun, FlowVersion, Project
from orchestrator.errors import ParameterError
from orchestrator.schedules import CronSchedule
from orchestrator.schedules.backfill import Outcome
from orchestrator.schedules.slots import slot_key
from orchestrator.states import State
from tests.conftest import Fleet, fresh_database
from tests.flows import policies as flows
from tests.flows import scheduled
from tests.integration.test_beat import (
    BeatProcess,
    Clock,
    next_minute,
    registered,
    starts,
    tick,
)
from workers.scheduler import FlowScheduler

pytestmark = pytest.mark.integration

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def policy_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database for this module."""
    yield from fresh_database(request.param, tmp_path_factory.mktemp("policy-db"))


class Policies:
    """One worker on this module's database, and what a test needs around it."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.b = backends(fleet.settings)
        self.schedulers: list[FlowScheduler] = []

    def scheduler(self, clock: Callable[[], datetime]) -> FlowScheduler:
        """The real beat scheduler on these backends, ticking at ``clock()``."""
        s = FlowScheduler(app=self.b.app, backends=self.b, clock=clock)
        self.schedulers.append(s)
        return s

    def register(self, flow: Flow, project: str) -> FlowVersion:
        self.fleet.client.register(flow, project)
        return self.b.store.flows.newest(project, flow.name)

    def runs(self, project: str, flow: str) -> list[FlowRun]:
        """A flow's runs in a project, by slot."""
        with self.b.store.reading() as s:
            q = (
                select(FlowRun)
                .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
                .join(Project, Project.id == FlowVersion.project_id)
                .where(Project.name == project, FlowVersion.name == flow)
                .order_by(FlowRun.scheduled_start_time, FlowRun.created)
            )
            return list(s.scalars(q))

    def state(self, run_id: str) -> State:
        return State(self.b.store.flow_runs.get(run_id).state)

    def open_gate(self, run_id: str) -> None:
        self.b.redis.set(flows.gate_key(run_id, self.fleet.queue), 1)

    def wait(self, what: str, condition: Callable[[], bool], timeout: float = 90) -> None:
        """Poll a recorded condition until it holds (the worker's log on failure)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.fleet.logs()}")
            time.sleep(0.1)

    def wait_final(self, *run_ids: str) -> None:
        self.wait(f"runs {run_ids} to finish", lambda: all(self.state(r).is_final for r in run_ids))

    def tidy(self, project: str) -> None:
        """Close the test's schedulers, pause its schedules, cancel its unfinished runs."""
        for s in self.schedulers:
            s.close()
        self.schedulers.clear()
        for name, flow in self.b.store.schedules.flows():
            if name == project:
                self.b.store.schedules.pause(project, flow.name, "test over", "tests")
        with self.b.store.reading() as s:
            q = (
                select(FlowRun.id)
                .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
                .join(Project, Project.id == FlowVersion.project_id)
                .where(Project.name == project, FlowRun.state.in_(_UNFINISHED))
            )
            unfinished = list(s.scalars(q))
        for run_id in unfinished:
            self.b.cancel_flow_run(run_id, "test over")


_UNFINISHED = [s.value for s in State if not s.is_final]


@pytest.fixture(scope="module")
def policies(
    policy_db: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Policies]:
    fleet = Fleet(
        tmp_path_factory.mktemp("policy-home"),
        redis_url,
        policy_db,
        tmp_path_factory.mktemp("policy-logs"),
    )
    try:
        fleet.start_worker(concurrency=4)
        yield Policies(fleet)
    finally:
        fleet.stop()


@pytest.fixture()
def proj(policies: Policies) -> Iterator[str]:
    """A project of this test's own, tidied up afterwards."""
    name = f"proj-{uuid.uuid4().hex[:8]}"
    yield name
    policies.tidy(name)


def _cli(policies: Policies, *args: str) -> str:
    env = {
        k: policies.fleet.env[k]
        for k in (
            "ORCHESTRATOR_HOME",
            "ORCHESTRATOR_REDIS_URL",
            "ORCHESTRATOR_DATABASE_URL",
            "ORCHESTRATOR_QUEUE",
        )
    }
    result = CliRunner().invoke(main, list(args), env={**env, "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def _no_overlap(runs: list[FlowRun]) -> None:
    """Each run started only once the one before it had ended."""
    for before, after in itertools.pairwise(runs):
        ended, started = aware(before.end_time), aware(after.start_time)
        assert ended is not None, f"{before.id} is still {before.state}"
        assert started is None or ended <= started, f"{after.id} started before {before.id} ended"


# --- buffer_one, buffer_all, skip -------------------------------------------------------------


def test_buffer_one_and_buffer_all_keep_their_order_and_counts_and_skip_skips(
    policies: Policies, proj: str
) -> None:
    # Given three minutely flows whose runs stay open until their gate opens
    names = ("buffer-one", "buffer-all", "skip-minutely")
    for flow in (flows.buffer_one, flows.buffer_all, flows.skip_minutely):
        version = policies.register(flow, proj)
    first = next_minute(registered(version))
    clock = Clock(first + SECOND)
    s = policies.scheduler(clock)
    # When the first slot fires and its runs are running
    tick(s)
    zero = {n: policies.runs(proj, n)[0].id for n in names}
    policies.wait(
        "the first runs to run",
        lambda: all(policies.state(r) is State.RUNNING for r in zero.values()),
    )
    # and three more slots fire while they are still running
    for k in (1, 2, 3):
        clock.now = first + k * MINUTE + SECOND
        tick(s)
    runs = {n: policies.runs(proj, n) for n in names}
    assert all(starts(rs) == [first + k * MINUTE for k in range(4)] for rs in runs.values())
    # Then buffer_one keeps one run waiting and skips the rest
    states = {n: [(r.state, r.buffered) for r in rs] for n, rs in runs.items()}
    running, held, skipped = ("Running", False), ("Scheduled", True), ("Skipped", False)
    assert states["buffer-one"] == [running, held, skipped, skipped]
    # buffer_all keeps every slot waiting
    assert states["buffer-all"] == [running, held, held, held]
    # skip records every slot as skipped, naming the run still going, in its history too
    assert states["skip-minutely"] == [running, skipped, skipped, skipped]
    for r in runs["skip-minutely"][1:]:
        assert (
            r.message
            == f"skipped: overlap policy skip: run {zero['skip-minutely']} has not finished"
        )
        history = policies.b.store.flow_runs.history(r.id)
        assert [(e.state, e.message) for e in history] == [("Skipped", r.message)]

    # When the first runs finish, beat sends exactly one waiting run per schedule
    for run_id in zero.values():
        policies.open_gate(run_id)
    policies.wait_final(*zero.values())
    clock.now += 10 * SECOND
    report = tick(s)
    second = {n: runs[n][1].id for n in ("buffer-one", "buffer-all")}
    assert sorted(report.released) == sorted(second.values())
    assert [policies.state(r.id) for r in runs["buffer-all"][2:]] == [State.SCHEDULED] * 2
    # and each next one once the one before has finished, in slot order
    for _ in range(3):
        for run_id in _active(policies, proj, names[:2]):
            policies.open_gate(run_id)
            policies.wait_final(run_id)
        clock.now += SECOND
        tick(s)
    final = {n: policies.runs(proj, n) for n in names}
    assert [r.state for r in final["buffer-one"]] == ["Success", "Success", "Skipped", "Skipped"]
    assert [r.state for r in final["buffer-all"]] == ["Success"] * 4
    _no_overlap(final["buffer-all"])
    _no_overlap([r for r in final["buffer-one"] if r.state == "Success"])


def _active(policies: Policies, project: str, names: tuple[str, ...]) -> list[str]:
    """The runs of these flows that were sent and have not finished."""
    sent = (State.SUBMITTED.value, State.RUNNING.value, State.QUEUED.value)
    return [r.id for n in names for r in policies.runs(project, n) if r.state in sent]


# --- cancel_other -----------------------------------------------------------------------------


def test_cancel_other_cancels_the_running_run_and_its_child_then_starts(
    policies: Policies,
) -> None:
    # Given a parent whose child stays open, scheduled every minute with cancel_other
    project = flows.CANCEL_PROJECT
    policies.register(flows.gated_child, project)
    version = policies.register(flows.cancel_parent, project)
    try:
        first = next_minute(registered(version))
        clock = Clock(first + SECOND)
        s = policies.scheduler(clock)
        [parent] = tick(s).created
        child = _running_child(policies, parent)
        # When the next slot fires while they run
        clock.now = first + MINUTE + SECOND
        report = tick(s)
        # Then the running parent and its child are cancelled, saying why, and the
        # new slot's run starts
        assert report.cancelled == [parent] and len(report.created) == 1
        assert policies.state(parent) is State.CANCELLED
        slot = (first + MINUTE).isoformat()
        assert policies.b.store.flow_runs.get(parent).message == (
            f"cancelled by the schedule (overlap policy cancel_other): slot {slot} starts instead"
        )
        assert policies.state(child) is State.CANCELLED
        assert f"parent {parent} cancelled" in (policies.b.store.flow_runs.get(child).message or "")
        # and runs to the end once its child may finish
        [new] = report.created
        policies.open_gate(_running_child(policies, new))
        policies.wait_final(new)
        assert policies.state(new) is State.SUCCESS
        assert [r.state for r in policies.runs(project, "cancel-parent")] == [
            "Cancelled",
            "Success",
        ]
    finally:
        policies.tidy(project)


def _running_child(policies: Policies, parent: str) -> str:
    """Wait until a parent's child run is running; its id."""

    def child() -> str | None:
        kids = policies.b.store.flow_runs.children(parent)
        return kids[0].id if kids and kids[0].state == State.RUNNING.value else None

    policies.wait(f"the child of {parent} to run", lambda: child() is not None)
    found = child()
    assert found is not None
    return found


# --- catch-up window --------------------------------------------------------------------------


def test_beat_down_across_ten_slots_runs_exactly_the_four_inside_the_window(
    policies: Policies, proj: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a minutely flow with a 4 minute catch-up window, fired once by beat
    version = policies.register(flows.catch_up_window, proj)
    first = next_minute(registered(version))
    before = policies.scheduler(Clock(first + SECOND))
    [on_time] = tick(before).created
    before.close()
    # When beat was down across the next ten slots and comes back 30 s after the tenth
    caplog.set_level("WARNING", logger="workers.schedule_runner")
    report = tick(policies.scheduler(Clock(first + 10 * MINUTE + 30 * SECOND)))
    # Then exactly the four slots younger than the window run, oldest first
    runs = policies.runs(proj, "catch-up-window")
    ran = [r for r in runs if r.state != State.SKIPPED.value]
    assert starts(ran) == [first] + [first + k * MINUTE for k in (7, 8, 9, 10)]
    assert sorted(report.created) == sorted(r.id for r in ran[1:])
    # the six older ones are recorded as missed, saying why, and logged with their times
    missed = [r for r in runs if r.state == State.SKIPPED.value]
    assert starts(missed) == [first + k * MINUTE for k in range(1, 7)]
    assert sorted(report.missed) == sorted(r.id for r in missed)
    assert all("catch-up window (4m)" in (r.message or "") for r in missed)
    assert all((r.message or "").startswith("missed: ") for r in missed)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert all((first + k * MINUTE).isoformat() in logged for k in range(1, 7)), logged
    # and the workers run each of the five once, with the schedule's parameters
    policies.wait_final(*(r.id for r in ran))
    for r in ran:
        info = policies.fleet.client.get_flow_run(r.id)
        assert info.state is State.SUCCESS and info.task_run("greet").result == "late, world"
    assert on_time in {r.id for r in ran}


# --- skip, with `orchestrator beat` for real --------------------------------------------------


def _policy_skip(run: Any) -> bool:
    """A slot the overlap policy skipped (not one missed while beat was late)."""
    return run.state == State.SKIPPED.value and not (run.message or "").startswith("missed:")


def test_a_5s_flow_every_2s_with_skip_never_has_two_runs_at_once(
    policies: Policies, proj: str, tmp_path: Path
) -> None:
    # Given a flow that takes 5 s, scheduled every 2 s with overlap="skip"
    name = "five-seconds-every-two"
    policies.register(flows.five_seconds_every_two, proj)
    # When `orchestrator beat` runs until two runs succeeded and three slots were skipped
    proc = BeatProcess(policies.fleet.env, tmp_path, "skip")
    try:

        def enough() -> bool:
            proc.check_alive()
            rs = policies.runs(proj, name)
            return (
                len([r for r in rs if r.state == State.SUCCESS.value]) >= 2
                and len([r for r in rs if _policy_skip(r)]) >= 3
            )

        policies.wait("two runs and three skipped slots", enough, timeout=120)
    finally:
        proc.stop()
    runs = policies.runs(proj, name)
    real = [r for r in runs if r.state != State.SKIPPED.value]
    # (a slot that passed while beat's tick was late on a loaded machine is recorded
    # as missed, not as skipped by the policy)
    skipped = [r for r in runs if _policy_skip(r)]
    # Then no run was created, or started, before the one before it had ended
    for before, after in itertools.pairwise(real):
        assert before.end_time is not None
        assert aware(before.end_time) <= aware(after.created)  # type: ignore[operator]
    _no_overlap(real)
    # and each skipped slot names the run still going when it fired
    by_id = {r.id: r for r in real}
    for r in skipped:
        assert r.message is not None and r.message.startswith("skipped: overlap policy skip: run ")
        blocker = by_id[r.message.split("run ")[1].split()[0]]
        assert aware(blocker.created) <= aware(r.created)  # type: ignore[operator]
        assert blocker.end_time is None or aware(r.created) <= aware(blocker.end_time)  # type: ignore[operator]
    # and `orchestrator schedules` lists them with the runs, `schedules slots` in full
    listing = _cli(policies, "schedules", "--project", proj, "-n", "10")
    assert "overlap skip" in listing and "skipped" in listing and "Success" in listing
    detail = _cli(policies, "schedules", "slots", name, "--project", proj, "-n", "50")
    for r in skipped:
        line = next(ln for ln in detail.splitlines() if r.id in ln)
        assert "skipped" in line and "overlap policy skip" in line


# --- backfill ---------------------------------------------------------------------------------


def test_backfill_of_the_seed_weekday_schedule_lists_10_slots_and_twice_creates_10_runs(
    policies: Policies, proj: str
) -> None:
    # Given the seed's Flow-of-Flows on weekdays at 09:30 New York time
    policies.register(scheduled.parent_flow, proj)
    args = ["schedules", "backfill", "parent-flow", "-p", proj]
    args += ["--start", "2026-03-02", "--end", "2026-03-13"]
    # When a dry run lists March 2 to 13, 2026
    dry = _cli(policies, *args, "--dry-run")
    # Then it shows ten weekday slots: 14:30 UTC before 2026-03-08, 13:30 UTC after
    before = [ln for ln in dry.splitlines() if "09:30 EST" in ln]
    after = [ln for ln in dry.splitlines() if "09:30 EDT" in ln]
    assert [ln.split("│")[2].strip() for ln in before] == [
        f"{d} 2026-03-0{n} 09:30 EST"
        for d, n in zip(["Mon", "Tue", "Wed", "Thu", "Fri"], range(2, 7), strict=True)
    ]
    assert all("14:30 UTC" in ln for ln in before) and len(after) == 5
    assert all(
        "13:30 UTC" in ln and ln.split("│")[2].strip()[:3] in "MonTueWedThuFri" for ln in after
    )
    assert "10 slot(s): 10 new, 0 already there" in dry and "dry run, nothing created" in dry
    assert policies.runs(proj, "parent-flow") == []
    # When it is backfilled for real, twice (the API, then the command line)
    report = policies.fleet.client.backfill("parent-flow", proj, "2026-03-02", "2026-03-13")
    again = _cli(policies, *args)
    # Then ten runs exist in all, one per slot, keyed as beat keys them
    runs = policies.runs(proj, "parent-flow")
    assert len(runs) == 10 and sorted(report.created) == sorted(r.id for r in runs)
    assert [aware(r.scheduled_start_time) for r in runs] == [s.slot for s in report.slots]
    assert [r.idempotency_key for r in runs] == [
        slot_key(proj, "parent-flow", s.slot) for s in report.slots
    ]
    # one at a time (buffer_all): the first to start, nine waiting their turn
    assert [s.outcome for s in report.slots] == [Outcome.CREATED] + [Outcome.BUFFERED] * 9
    assert "created 0 run(s), 10 already there" in again
    # and a flow whose runs could not start is one clear error, with nothing created
    policies.register(scheduled.needs_a_value, proj)
    with pytest.raises(ParameterError, match="greeting"):
        policies.fleet.client.backfill("needs-a-value", proj, "2026-03-02", "2026-03-03")
    assert policies.runs(proj, "needs-a-value") == []


def test_a_backfill_runs_one_at_a_time_in_order_and_shares_beats_slots(
    policies: Policies, proj: str
) -> None:
    # Given a minutely flow whose slot beat just fired
    version = policies.register(flows.minutely_greeting, proj)
    first = next_minute(registered(version))
    clock = Clock(first + 2 * SECOND)
    s = policies.scheduler(clock)
    [fired] = tick(s).created
    # When the four minutes before it and that slot are backfilled
    report = policies.fleet.client.backfill(
        "minutely-greeting", proj, (first - 4 * MINUTE).isoformat(), first.isoformat()
    )
    # Then beat's slot is there already, the four others get a run each
    assert [s.outcome for s in report.slots][-1] is Outcome.THERE
    assert report.slots[-1].run_id == fired and len(report.created) == 4

    # and beat sends them one at a time, oldest first, until all have run
    def done() -> bool:
        tick(s)
        return all(policies.state(r).is_final for r in report.created)

    policies.wait("the backfill to run", done)
    runs = [r for r in policies.runs(proj, "minutely-greeting") if r.id != fired]
    assert starts(runs) == [first - k * MINUTE for k in (4, 3, 2, 1)]
    assert [r.state for r in runs] == ["Success"] * 4
    assert all((r.name or "").startswith("backfill ") for r in runs)
    _no_overlap(runs)
    for r in runs:  # with the schedule's parameter defaults
        assert policies.fleet.client.get_task_run_result(r.id, "greet") == "backfilled, world"
    # and beat, going on, fires none of those slots again
    clock.now += 30 * SECOND
    assert tick(s).created == []
    assert len(policies.runs(proj, "minutely-greeting")) == 5


# --- pause with a note ------------------------------------------------------------------------


with Flow("paused-report", schedule=CronSchedule("* * * * *")) as paused_v1:
    flows.greet(Parameter("greeting", default="hi"))

with Flow("paused-report", schedule=CronSchedule("* * * * *")) as paused_v2:
    flows.greet(flows.greet(Parameter("greeting", default="hi")))


def test_a_pause_with_a_note_is_shown_and_kept_by_a_new_version(
    policies: Policies, proj: str
) -> None:
    # Given a minutely flow, paused with a note
    policies.register(paused_v1, proj)
    note = "quarter close: no reports"
    out = _cli(
        policies, "schedules", "pause", "paused-report", "-p", proj, "--note", note, "--by", "alice"
    )
    assert "paused by alice" in out and "quarter close: no reports" in out
    # When a new version is registered
    v2 = policies.register(paused_v2, proj)
    assert v2.version == 2
    # Then `orchestrator schedules` still shows the pause, who, when and why
    listing = _cli(policies, "schedules", "-p", proj)
    [pause] = [p for k, p in policies.b.store.schedules.pauses().items() if k[0] == v2.project_id]
    assert (pause.by, pause.note) == ("alice", note)
    when = pause.at.strftime("%Y-%m-%d %H:%M UTC")
    assert "paused by alice" in listing and note in listing and when in listing
    # and beat creates nothing for it
    clock = Clock(next_minute(registered(v2)) + SECOND)
    s = policies.scheduler(clock)
    tick(s)
    clock.now += MINUTE
    tick(s)
    assert policies.runs(proj, "paused-report") == []
    # and a backfill while paused: its first run goes, the buffered one waits
    slots = (
        (next_minute(registered(v2)) - 3 * MINUTE).isoformat(),
        (next_minute(registered(v2)) - 2 * MINUTE).isoformat(),
    )
    report = policies.fleet.client.backfill("paused-report", proj, *slots)
    started, held = report.slots[0].run_id, report.slots[1].run_id
    assert started and held and report.slots[1].outcome is Outcome.BUFFERED

    def first_done() -> bool:
        tick(s)
        return policies.state(started).is_final  # type: ignore[arg-type]

    policies.wait("the backfill's first run", first_done)
    tick(s)
    assert policies.state(held) is State.SCHEDULED  # type: ignore[arg-type]
    # When it is resumed, beat sends the buffered run and fires it again from then on
    out = _cli(policies, "schedules", "resume", "paused-report", "-p", proj)
    assert "resumed (it was paused by alice" in out
    clock.now += MINUTE
    assert len(tick(s).created) == 1
    released: list[str] = []

    def held_done() -> bool:
        released.extend(tick(s).released)
        return policies.state(held).is_final  # type: ignore[arg-type]

    policies.wait("the buffered run after the resume", held_done)
    assert released == [held] and policies.state(held) is State.SUCCESS  # type: ignore[arg-type]
    # The Python API pauses too, by this user at this host by default
    pause = policies.fleet.client.pause_schedule("paused-report", proj, note="again")
    assert pause.note == "again" and "@" in pause.by
    assert policies.fleet.client.resume_schedule("paused-report", proj) == pause
