"""Claims the README makes that no test proved (issue 25), each on real workers over
a real Redis, on SQLite and PostgreSQL: a waiting parent counts a child's TimedOut
and TriggerFailed tasks as Failed; the task forms ``create_flow_run``,
``wait_for_flow_run`` and ``get_task_run_result`` work end to end; bad input (an
unknown flow, invalid labels, a bad cron given to ``register``) leaves no row
behind; and the sweeper gives up on a run whose messages keep getting lost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestrator import ConcurrencyLimitError, FlowNotFound, State
from orchestrator.backends import backends
from orchestrator.db.models import FlowRun, FlowVersion, Project, StateEvent, TaskRun
from orchestrator.infos import FlowRunInfo
from tests.conftest import Fleet, fresh_database
from tests.flows import claims
from tests.integration.helpers import finished_counts, run_and_wait
from tests.integration.test_beat import BeatProcess
from tests.integration.test_cli import cli, write_flows

pytestmark = pytest.mark.timeout(300)


@pytest.fixture()
def fleet_claims(fleet: Fleet) -> Fleet:
    for flow in claims.ALL:
        fleet.client.register(flow, claims.PROJECT)
    return fleet


def _rows(fleet: Fleet) -> dict[str, int]:
    """How many flow runs, task runs, state events, projects and flow versions there are."""
    with fleet.store.reading() as s:
        return {
            model.__name__: int(s.scalar(select(func.count()).select_from(model)) or 0)
            for model in (FlowRun, TaskRun, StateEvent, Project, FlowVersion)
        }


def _child(fleet: Fleet, parent: FlowRunInfo) -> FlowRunInfo:
    [child_id] = parent.children
    return fleet.client.get_flow_run(child_id)


# --- wait=True: TimedOut and TriggerFailed children count as Failed -----------------------


def test_a_child_whose_task_timed_out_counts_as_failed_in_the_waiting_parent(
    fleet_claims: Fleet,
) -> None:
    # Given a parent waiting (wait=True) for a child whose one task has timeout=1
    # and would sleep 60 s
    parent = run_and_wait(fleet_claims, "mirrors-timeout", claims.PROJECT, timeout=120)
    child = _child(fleet_claims, parent)
    # Then the child's task timed out on its worker, its code stopped before the end
    hangs = child.task_run("hangs")
    assert hangs.state is State.TIMED_OUT, (hangs.message, fleet_claims.logs())
    assert hangs.message == f"timed out after {claims.TIMEOUT}s"
    assert finished_counts(fleet_claims, child.id) == {}
    assert child.state is State.FAILED and "hangs" in (child.message or "")
    # and the waiting task took it as Failed (not TimedOut), naming the child run
    waited = parent.task_run("flow_times_out")
    assert waited.state is State.FAILED, waited.message
    assert (waited.message or "").startswith(f"child flow run {child.id} ended Failed")
    assert waited.child_flow_run_id == child.id
    # so a task triggered by a failed upstream (any_failed) ran, and ended the parent
    assert parent.task_run("noticed").state is State.SUCCESS
    assert parent.state is State.SUCCESS  # its terminal task succeeded


@pytest.mark.parametrize(
    ("parent_flow", "waiting_slug"),
    [("mirrors-trigger-failed", "flow_trigger_fails"),
     ("waits-for-trigger-failed", "wait_for_flow_run")],
)  # fmt: skip
def test_a_child_ending_trigger_failed_counts_as_failed_in_the_waiting_parent(
    fleet_claims: Fleet, parent_flow: str, waiting_slug: str
) -> None:
    # Given a parent waiting (StartFlowRun(wait=True), or wait_for_flow_run) for a
    # child whose last task is TriggerFailed after its upstream failed
    parent = run_and_wait(fleet_claims, parent_flow, claims.PROJECT, timeout=120)
    child = _child(fleet_claims, parent)
    assert child.task_run("boom").state is State.FAILED
    assert child.task_run("after_boom").state is State.TRIGGER_FAILED
    assert finished_counts(fleet_claims, child.id) == {"boom": 1}
    assert child.state is State.FAILED
    # Then the waiting task is Failed, naming the child, so the task triggered by a
    # failed upstream (any_failed) ran
    waited = parent.task_run(waiting_slug)
    assert waited.state is State.FAILED, waited.message
    assert (waited.message or "").startswith(f"child flow run {child.id} ended Failed")
    assert parent.task_run("noticed").state is State.SUCCESS


# --- the task forms on workers ------------------------------------------------------------


def test_create_wait_for_and_get_task_run_result_as_tasks_on_workers(
    fleet_claims: Fleet,
) -> None:
    # Given a parent that creates a child run (create_flow_run), waits for it
    # (wait_for_flow_run) and reads one of its task runs' results (get_task_run_result)
    parent = run_and_wait(
        fleet_claims, "task-forms", claims.PROJECT, timeout=120, parameters={"n": 3}
    )
    assert parent.state is State.SUCCESS, (parent.message, fleet_claims.describe(parent.id))
    # Then create_flow_run returned the id of one child run, linked to it
    child = _child(fleet_claims, parent)
    created = parent.task_run("create_flow_run")
    assert created.result == child.id
    assert (child.parent_flow_run_id, child.parent_task_run_id) == (parent.id, created.id)
    assert child.flow_name == "doubles" and child.parameters == {"n": 3}
    assert child.state is State.SUCCESS
    # wait_for_flow_run started before the child ended, and took its state and results
    waited = parent.task_run("wait_for_flow_run")
    assert waited.start_time is not None and child.end_time is not None
    assert waited.start_time < child.end_time
    assert waited.state is State.SUCCESS
    assert waited.result == {
        "flow_run_id": child.id,
        "state": "Success",
        "task_results": {"n": 3, "double": 6, "twice": 12},
    }
    # get_task_run_result took the result of the child's task run "twice"
    assert parent.task_run("get_task_run_result").result == 12
    assert parent.task_run("summary").result == {
        "created": child.id,
        "waited": waited.result,
        "taken": 12,
    }
    # and every task's code ran once: the child was not started twice
    assert finished_counts(fleet_claims, child.id) == {"double": 1, "twice": 1}
    assert finished_counts(fleet_claims, parent.id) == {"summary": 1}


# --- no row left behind -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flow", "labels", "error", "words"),
    [("no-such-flow", None, FlowNotFound, ["no-such-flow", "doubles"]),
     ("doubles", ["has space"], ConcurrencyLimitError, ["invalid label", "has space"]),
     ("doubles", ["x" * 101], ConcurrencyLimitError, ["invalid label"])],
)  # fmt: skip
def test_an_unknown_flow_or_an_invalid_label_leaves_no_row_behind(
    fleet_claims: Fleet,
    flow: str,
    labels: list[str] | None,
    error: type[Exception],
    words: list[str],
) -> None:
    before = _rows(fleet_claims)
    # When the client asks for the run
    with pytest.raises(error) as info:
        fleet_claims.client.create_flow_run(flow, claims.PROJECT, labels=labels)
    # Then one line names what was wrong
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    # and so does the command line, exiting 1
    args = ["run", flow, "--project", claims.PROJECT, "--wait"]
    args += [a for label in labels or [] for a in ("--label", label)]
    result = cli(fleet_claims.env, *args)
    assert result.returncode == 1, result
    assert result.stderr.strip() == f"error: {message}", result.stderr
    # and neither created a flow run, a task run or a state event
    assert _rows(fleet_claims) == before


@pytest.mark.parametrize(
    ("cron", "words"),
    [("61 * * * *", ["invalid cron string '61 * * * *'", "out of range"]),
     ("0 0 30 2 *", ["cron string '0 0 30 2 *' never fires"])],
)  # fmt: skip
def test_register_with_a_bad_cron_is_one_error_and_registers_nothing(
    fleet_claims: Fleet, tmp_path: Path, project: str, cron: str, words: list[str]
) -> None:
    # Given a file with a good flow, then a flow whose schedule has a bad cron
    path = write_flows(
        tmp_path / "with_bad_cron.py",
        f"""
        from orchestrator import Flow, task
        from orchestrator.schedules import CronSchedule

        @task
        def hello():
            return "hi"

        with Flow("fine") as fine:
            hello()

        with Flow("badly-scheduled", schedule=CronSchedule({cron!r})) as badly:
            hello()
        """,
    )
    before = _rows(fleet_claims)
    # When it is registered from the command line
    result = cli(fleet_claims.env, "register", str(path), "--project", project)
    # Then one line says which file and which cron, and the command exits 1
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "with_bad_cron.py" in lines[0] and all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    # and nothing was registered: no project, no flow version, neither flow found
    assert _rows(fleet_claims) == before
    for name in ("fine", "badly-scheduled"):
        with pytest.raises(FlowNotFound):
            fleet_claims.store.flows.newest(project, name)


# --- the sweeper gives up ------------------------------------------------------------------

#: The sweeper's settings for the give-up test: sweep every second, a run is stale
#: after 3 s without progress, and is given up after 2 resubmissions.
MAX_RESUBMITS = 2
SWEEPER_ENV = {
    "ORCHESTRATOR_SWEEP_SECONDS": "1",
    "ORCHESTRATOR_STALE_SECONDS": "3",
    "ORCHESTRATOR_MAX_RESUBMITS": str(MAX_RESUBMITS),
}


@pytest.fixture(params=["sqlite", "postgres"])
def lonely_fleet(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    """A fleet with a database of its own (so its beat sweeps only this test's runs)."""
    for url in fresh_database(request.param, tmp_path):
        (tmp_path / "home").mkdir()
        (tmp_path / "logs").mkdir()
        fleet = Fleet(tmp_path / "home", redis_url, url, tmp_path / "logs")
        fleet.env.update(SWEEPER_ENV)
        try:
            yield fleet
        finally:
            fleet.stop()
            backends(fleet.settings).store.close()


def _lose_messages(fleet: Fleet) -> int:
    """Drop every message waiting in the fleet's queue (as a Redis that lost them
    would); how many there were."""
    r = backends(fleet.settings).redis
    lost = 0
    for key in list(r.scan_iter(match=f"{fleet.queue}*")):
        pipe = r.pipeline(transaction=True)
        pipe.llen(key)
        pipe.delete(key)
        lost += int(pipe.execute()[0])
    return lost


def _wait_running(fleet: Fleet, run_id: str, slug: str) -> None:
    """Wait until the task run ``slug`` of a flow run is recorded Running."""
    deadline = time.monotonic() + 60
    while {t.slug: t.state for t in fleet.client.get_flow_run(run_id).task_runs}.get(
        slug
    ) is not State.RUNNING:
        assert time.monotonic() < deadline, fleet.describe(run_id)
        time.sleep(0.05)


def test_the_sweeper_gives_up_on_a_run_whose_messages_keep_getting_lost(
    lonely_fleet: Fleet,
) -> None:
    # Given a run whose first task is running on the only worker
    fleet = lonely_fleet
    fleet.client.register(claims.stalls, claims.PROJECT)
    worker = fleet.start_worker(concurrency=1)
    run_id = fleet.client.create_flow_run("stalls", claims.PROJECT)
    _wait_running(fleet, run_id, "first")
    # When the worker is killed with its pool, its messages are lost, and every
    # message the sweeper sends for the run is lost too
    os.killpg(worker.pid, signal.SIGKILL)
    worker.proc.wait(10)
    lost = _lose_messages(fleet)
    beat = BeatProcess(dict(fleet.env), fleet.log_dir, "sweeper")
    try:
        deadline = time.monotonic() + 120
        while not (run := fleet.client.get_flow_run(run_id)).state.is_final:
            beat.check_alive()
            assert time.monotonic() < deadline, f"{fleet.describe(run_id)}\n{beat.output}"
            lost += _lose_messages(fleet)
            time.sleep(0.1)
        lost += _lose_messages(fleet)
    finally:
        beat.stop()
    # Then the sweeper sent the run again MAX_RESUBMITS times, and then gave up:
    # the run is Failed, saying so, and none of its task runs is left unfinished
    tries = [f"flow run {run_id} made no progress for 3s: sending it again (try {n})"
             for n in range(1, MAX_RESUBMITS + 2)]  # fmt: skip
    assert [t in beat.output for t in tries] == [True] * MAX_RESUBMITS + [False], beat.output
    print(f"\nsweeper give-up: {lost} messages lost; the run ended {run.state}: {run.message}")
    assert lost >= MAX_RESUBMITS
    assert run.state is State.FAILED, run.message
    assert f"after {MAX_RESUBMITS} resubmissions" in (run.message or ""), run.message
    assert {(t.slug, t.state) for t in run.task_runs} == {
        ("first", State.CANCELLED),
        ("second", State.CANCELLED),
    }
    assert finished_counts(fleet, run_id) == {}
