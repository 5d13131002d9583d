"""Waiting and the flow-run tasks on one real worker process (issues 24 and 26):
``get_task_run_result`` waits for an unfinished child without holding the process,
a child waits for a concurrency slot far longer than Celery's 30 retries and starts
when one frees, a task retries 40 times, labels given as a string stay one label,
a task's result has a size limit, and a timedelta start time counts from when the
run is asked for. The fleet's one pool process proves that no wait holds it: a
waiting task that held it would leave nothing to run the child."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator import ParameterError, State
from orchestrator.errors import FlowRunTimeout
from orchestrator.tasks import StartFlowRun
from tests.conftest import Fleet
from tests.flows import waiting
from tests.integration.helpers import run_and_wait

#: How often a waiting task looks again on this fleet, in seconds.
RECHECK = 0.2


@pytest.fixture(scope="module")
def lone(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """One worker of one pool process that looks again every 0.2 s and keeps values
    under 100 kB, with the waiting flows registered."""
    f = Fleet(
        tmp_path_factory.mktemp("lone-home"),
        redis_url,
        database_url,
        tmp_path_factory.mktemp("lone-logs"),
    )
    f.env["ORCHESTRATOR_RECHECK_SECONDS"] = str(RECHECK)
    f.env["ORCHESTRATOR_MAX_VALUE_BYTES"] = str(waiting.MAX_VALUE_BYTES)
    try:
        f.start_worker(concurrency=1)
        for flow in waiting.ALL:
            f.client.register(flow, waiting.PROJECT)
        yield f
    finally:
        f.stop()


def _wait(fleet: Fleet, run_id: str, timeout: float = 60) -> object:
    try:
        return fleet.client.wait_for_flow_run(run_id, timeout=timeout)
    except FlowRunTimeout:
        raise AssertionError(fleet.describe(run_id)) from None


def test_get_task_run_result_waits_for_an_unfinished_child(lone: Fleet) -> None:
    # Given a parent that creates two children of two steps each and reads one task
    # run's result of each right after creating it
    parent = run_and_wait(lone, "reads-results", waiting.PROJECT)
    runs = {
        lone.client.get_flow_run(c).flow_name: lone.client.get_flow_run(c) for c in parent.children
    }
    ok, bad = runs["two-steps"], runs["fails-late"]
    read_ok, read_bad = parent.task_run("read_ok"), parent.task_run("read_bad")
    # Then the read started before its child ended, waited for it, and took the
    # result of the child's task run
    assert read_ok.start_time < ok.end_time  # type: ignore[operator]
    assert read_ok.state is State.SUCCESS, (read_ok.message, lone.logs())
    assert read_ok.result == "second"
    assert ok.state is State.SUCCESS
    # and the read of the failed child failed with the child's state, naming it
    assert read_bad.start_time < bad.end_time  # type: ignore[operator]
    assert read_bad.state is State.FAILED
    assert bad.id in (read_bad.message or "") and "Failed" in (read_bad.message or "")
    assert read_bad.result is None
    # A reader of one task (it runs inside its flow run's start, then hands over to
    # a node) waits for an unfinished child too
    child_id = lone.client.create_flow_run("two-steps", waiting.PROJECT)
    reader = run_and_wait(lone, "reads-a-run", waiting.PROJECT, parameters={"child": child_id})
    read, child = reader.task_run("read"), lone.client.get_flow_run(child_id)
    assert read.start_time < child.end_time  # type: ignore[operator]
    assert (read.state, read.result) == (State.SUCCESS, "second"), read.message


def test_get_task_run_result_in_flow_run_runs_the_child_in_process(
    lone: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a child run stored and not sent to any worker
    child_id = lone.client.create_flow_run("two-steps", waiting.PROJECT, dispatch=False)
    for name in ("ORCHESTRATOR_REDIS_URL", "ORCHESTRATOR_DATABASE_URL", "ORCHESTRATOR_QUEUE"):
        monkeypatch.setenv(name, lone.env[name])
    # When a flow reading its result runs in this process
    state = waiting.reads_a_run.run(parameters={"child": child_id})
    # Then the child ran here, and the read took its task run's result
    assert state.by_slug()["read"].result == "second", state.by_slug()["read"].message
    assert state.state is State.SUCCESS
    assert lone.client.get_flow_run(child_id).state is State.SUCCESS


def _retries_logged(fleet: Fleet, task_name: str) -> int:
    """How many times the worker logged a Celery retry of the task shown as ``task_name``."""
    pattern = re.compile(rf"Task {re.escape(task_name)}\[[^\]]+\] retry:")
    return len(pattern.findall(fleet.log_text()))


def test_child_waits_for_a_slot_longer_than_30_rechecks(lone: Fleet) -> None:
    # Given a child flow whose label has a limit of 0, and a parent waiting for it
    lone.client.set_concurrency_limit(waiting.SLOT_LABEL, 0)
    parent_id = lone.client.create_flow_run("slot-parent", waiting.PROJECT)
    # When the parent's task has looked for a slot more than 30 times (Celery's
    # default retry bound), or gave up
    deadline = time.monotonic() + 60
    while _retries_logged(lone, "slot-parent/flow_slot_child") <= 31:
        assert "MaxRetriesExceeded" not in lone.log_text(), lone.describe(parent_id)
        assert time.monotonic() < deadline, lone.describe(parent_id)
        time.sleep(RECHECK)
    [child_id] = lone.client.get_flow_run(parent_id).children
    assert lone.client.get_flow_run(child_id).state is State.QUEUED
    # and the slot frees
    lone.client.set_concurrency_limit(waiting.SLOT_LABEL, 1)
    # Then the child starts and the parent takes its state
    parent = _wait(lone, parent_id, timeout=30)
    assert parent.state is State.SUCCESS, parent.message  # type: ignore[attr-defined]
    assert lone.client.get_flow_run(child_id).state is State.SUCCESS


def test_a_task_retries_past_30_attempts(lone: Fleet) -> None:
    # Given a task with max_retries=40 and no delay, failing on its first 40 attempts
    run_id = lone.client.create_flow_run("forty-retries", waiting.PROJECT)
    # When it runs, Then it reaches attempt 41 and succeeds there
    run = _wait(lone, run_id)
    tr = run.task_run("fails_forty_times")  # type: ignore[attr-defined]
    assert (tr.state, tr.attempts, tr.result) == (State.SUCCESS, 41, 41), tr.message


def test_labels_given_as_a_string_are_one_label(lone: Fleet) -> None:
    # Given flows labelled with a string, in the flow and in a StartFlowRun
    flow = lone.store.flows.newest(waiting.PROJECT, "string-labelled")
    assert flow.labels == ["lbflow"]
    parent = run_and_wait(lone, "starts-string-labelled", waiting.PROJECT)
    [child_id] = parent.children
    assert lone.client.get_flow_run(child_id).labels == ["lbflow", "lbtask"]
    # When a client asks for a run with labels="lbclient", a label limited to 0
    lone.client.set_concurrency_limit(waiting.CLIENT_LABEL, 0)
    run_id = lone.client.create_flow_run(
        "string-labelled", waiting.PROJECT, labels=waiting.CLIENT_LABEL
    )
    # Then the run carries that one label and waits for its slot
    assert lone.client.get_flow_run(run_id).labels == ["lbclient", "lbflow"]
    deadline = time.monotonic() + 30
    while lone.client.get_flow_run(run_id).state is not State.QUEUED:
        assert time.monotonic() < deadline, lone.describe(run_id)
        time.sleep(0.1)
    # and runs once the limit allows it
    lone.client.set_concurrency_limit(waiting.CLIENT_LABEL, 1)
    assert _wait(lone, run_id).state is State.SUCCESS  # type: ignore[attr-defined]


def test_a_result_over_the_size_limit_fails_its_task(lone: Fleet) -> None:
    # Given a fleet keeping values under 100 kB, When a task returns more
    run = run_and_wait(lone, "big-result", waiting.PROJECT)
    # Then the task fails with the size and the limit, nothing of it is stored, and
    # its downstream task does not run
    tr = run.task_run("too_big")
    assert tr.state is State.FAILED
    assert "too_big" in (tr.message or "") and "100,000" in (tr.message or "")
    assert "ORCHESTRATOR_MAX_VALUE_BYTES" in (tr.message or "")
    assert lone.client.get_task_run_result(run.id, "too_big") is None
    assert run.task_run("not_called").state is State.TRIGGER_FAILED


def test_a_timedelta_start_time_counts_from_when_the_run_is_asked_for(lone: Fleet) -> None:
    # A client run scheduled an hour from now
    before = datetime.now(UTC)
    run_id = lone.client.create_flow_run(
        "two-steps", waiting.PROJECT, scheduled_start_time=timedelta(hours=1)
    )
    after = datetime.now(UTC)
    run = lone.client.get_flow_run(run_id)
    assert run.state is State.SCHEDULED
    assert before + timedelta(hours=1) <= run.scheduled_start_time <= after + timedelta(hours=1)  # type: ignore[operator]
    # Children of StartFlowRun and create_flow_run scheduled a day after their task runs
    parent = run_and_wait(lone, "schedules-children", waiting.PROJECT)
    assert parent.state is State.SUCCESS, parent.message
    for slug in ("start_later", "create_later"):
        tr = parent.task_run(slug)
        [child] = [
            lone.client.get_flow_run(c)
            for c in parent.children
            if lone.client.get_flow_run(c).parent_task_run_id == tr.id
        ]
        assert child.state is State.SCHEDULED
        start, end = tr.start_time, tr.end_time
        assert start + timedelta(days=1) <= child.scheduled_start_time <= end + timedelta(days=1)  # type: ignore[operator]
    # A naive datetime still names no instant: refused
    with pytest.raises(ParameterError, match="timezone-aware"):
        lone.client.create_flow_run(
            "two-steps", waiting.PROJECT, scheduled_start_time=datetime(2030, 1, 1)
        )
    with pytest.raises(ParameterError, match="timezone-aware"):
        StartFlowRun(
            flow_name="two-steps", project_name="p", scheduled_start_time=datetime(2030, 1, 1)
        )
