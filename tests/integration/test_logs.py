"""Task-run logs: what a task's code prints and logs on the fleet is stored with its
task run, shown by ``orchestrator logs`` (children too) and, for failed task runs,
by ``orchestrator show``."""

from __future__ import annotations

import logging
import re
import threading

import pytest
from sqlalchemy import event

from orchestrator import State, logcapture
from orchestrator.db import Store
from orchestrator.ids import task_run_id
from tests.conftest import Fleet
from tests.flows import deploy
from tests.integration.helpers import run_and_wait
from tests.integration.test_cli import cli

LINE = r"\d\d:\d\d:\d\d\.\d{3}  "


def line_of(output: str, text: str) -> str:
    """The output line containing ``text``."""
    for line in output.splitlines():
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r} in:\n{output}")


@pytest.fixture()
def chatty_run(fleet: Fleet, project: str) -> str:
    """A finished run of the chatty flow: task ``first`` prints and logs, ``second`` fails."""
    fleet.client.register(deploy.chatty_flow, project)
    info = run_and_wait(fleet, "chatty", project, parameters={"who": "fleet"})
    assert info.state is State.FAILED, info.message
    assert info.task_run("first").state is State.SUCCESS
    assert info.task_run("second").state is State.FAILED
    return info.id


def test_logs_prints_each_task_runs_printed_and_logged_lines(fleet: Fleet, chatty_run: str) -> None:
    # When the logs of a finished run are asked for
    out = cli(fleet.env, "logs", chatty_run)
    # Then every line the tasks printed or logged is there, with time, level and logger
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert re.search(LINE + r"STDOUT\s+hello from fleet$", line_of(text, "hello from fleet"))
    for i in range(3):
        line = line_of(text, f"warning {i} from fleet")
        assert re.search(LINE + r"WARNING\s+tests\.flows\.deploy: warning", line), line
    assert "INFO" in line_of(text, "info line from fleet")
    assert "STDERR" in line_of(text, "to stderr from fleet")
    assert "STDOUT" in line_of(text, "partial line joined")  # print(end="") joined
    assert "ERROR" in line_of(text, "something is wrong in second")
    # in the order they were emitted, under their task runs' headers
    order = [
        "first",
        "hello from fleet",
        "warning 0",
        "warning 2",
        "info line",
        "to stderr",
        "partial line joined",
        "second",
        "about to fail",
        "something is wrong",
    ]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions), text
    # and each line once
    assert text.count("warning 1 from fleet") == 1


def test_logs_task_option_and_tail(fleet: Fleet, chatty_run: str) -> None:
    out = cli(fleet.env, "logs", chatty_run, "--task", "second")
    assert out.returncode == 0, out.stderr
    assert "something is wrong in second" in out.stdout
    assert "hello from fleet" not in out.stdout
    out = cli(fleet.env, "logs", chatty_run, "--tail", "1")
    assert "partial line joined" in out.stdout and "hello from fleet" not in out.stdout


def test_show_prints_the_last_lines_of_failed_task_runs(fleet: Fleet, chatty_run: str) -> None:
    # When a failed run is shown
    out = cli(fleet.env, "show", chatty_run)
    # Then the tree is followed by the failed task's last lines, not the successful one's
    assert out.returncode == 0, out.stderr
    tail = out.stdout.split("last log lines of failed task runs", 1)[1]
    assert "chatty/second" in tail
    assert "about to fail: second" in tail
    assert "something is wrong in second" in tail
    # with the traceback of the error, pointing into the task's code
    assert "Traceback (most recent call last)" in tail
    assert "deploy.py" in tail and "ValueError: second failed on purpose" in tail
    assert "hello from fleet" not in out.stdout


def test_lines_are_stored_in_one_batch_with_the_task_run(fleet: Fleet, chatty_run: str) -> None:
    store = fleet.store
    first = task_run_id(chatty_run, "first")
    rows = store.logs.of_flow_run(chatty_run, [first])
    assert [r.line for r in rows] == list(range(len(rows)))
    assert {r.attempt for r in rows} == {1}
    assert {r.level for r in rows} == {"STDOUT", "STDERR", "WARNING", "INFO"}
    # printed lines once: not again through Celery's stdout redirection logger
    assert not [r for r in rows if r.logger == "celery.redirected"]
    second = store.logs.of_flow_run(chatty_run, [task_run_id(chatty_run, "second")])
    assert [r.level for r in second] == ["STDOUT", "ERROR", "ERROR"]
    assert second[-1].logger == "orchestrator.task"
    assert second[-1].message.startswith("Traceback")
    assert [r.message for r in rows if r.level == "STDOUT"] == [
        "hello from fleet",
        "partial line joined",
    ]


def test_a_printed_line_is_one_info_line_of_the_worker_log_naming_run_and_task(
    fleet: Fleet, chatty_run: str
) -> None:
    # Given the run whose task `first` printed "hello from fleet" and a line in two parts
    logged = fleet.log_text().splitlines()
    # Then the worker log has one line for each, at INFO, naming the run and the task
    for text in ("hello from fleet", "partial line joined"):
        mine = [line for line in logged if text in line and chatty_run in line]
        assert len(mine) == 1, "\n".join(line for line in logged if text in line)
        assert "INFO" in mine[0] and f"flow run {chatty_run} task first: {text}" in mine[0]
    # And nothing printed by a task became a WARNING line of Celery's redirection
    assert not [line for line in logged if "hello from fleet" in line and "WARNING" in line]
    # And a line printed to stderr is one WARNING line naming them
    err = [line for line in logged if "to stderr from fleet" in line and chatty_run in line]
    assert len(err) == 1 and "WARNING" in err[0], err


def test_logs_children_shows_child_runs_lines(fleet: Fleet) -> None:
    # Given a parent whose task prints and which waits for a child that prints too
    fleet.client.register(deploy.chatty_child, deploy.LOGS_PROJECT)
    fleet.client.register(deploy.chatty_parent, deploy.LOGS_PROJECT)
    info = run_and_wait(fleet, "chatty-parent", deploy.LOGS_PROJECT)
    assert info.state is State.SUCCESS, info.message
    # Then `logs` shows the parent's lines, and the child's only with --children
    out = cli(fleet.env, "logs", info.id)
    assert "hello from parent" in out.stdout and "hello from kid" not in out.stdout
    out = cli(fleet.env, "logs", info.id, "--children")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "hello from parent" in text and "hello from kid" in text
    assert (
        text.index("hello from parent") < text.index("chatty-child") < text.index("hello from kid")
    )
    # the child's lines are indented under the task that started it
    assert line_of(text, "hello from kid").startswith(" " * 8)


def test_only_the_last_lines_of_a_flood_are_kept(fleet: Fleet, project: str) -> None:
    fleet.client.register(deploy.floods_flow, project)
    info = run_and_wait(fleet, "floods", project, parameters={"n": 1500})
    assert info.state is State.SUCCESS, info.message
    rows = fleet.store.logs.of_flow_run(info.id)
    assert len(rows) == logcapture.MAX_LINES + 1
    assert "500 earlier lines were dropped" in rows[0].message
    assert rows[1].message == "flood line 500" and rows[-1].message == "flood line 1499"
    out = cli(fleet.env, "logs", info.id, "--tail", "2")
    assert "flood line 1498" in out.stdout and "flood line 1499" in out.stdout
    assert "flood line 1497" not in out.stdout


def test_capture_writes_one_insert_for_many_lines(database_url: str) -> None:
    # Given a store whose statements are counted
    store = Store(database_url)
    statements: list[str] = []
    event.listen(
        store.engine, "before_cursor_execute", lambda *a: statements.append(str(a[2]).split()[0])
    )
    try:
        # When a task run attempt prints and logs 300 lines
        with logcapture.task_run_logs(store, "run-1", "task-1", 1):
            for i in range(150):
                print(f"line {i}")
                logging.getLogger("tests.capture").warning("warned %d", i)
        # Then they are written with one INSERT, in order
        assert statements.count("INSERT") == 1, statements
        rows = store.logs.of_flow_run("run-1")
        assert len(rows) == 300
        assert rows[0].message == "line 0" and rows[1].message == "warned 0"
        assert rows[-1].message == "warned 149"
    finally:
        store.close()


def test_captures_in_two_threads_stay_apart(database_url: str) -> None:
    # Given two task runs capturing at the same time in two threads of one process
    store = Store(database_url)
    barrier = threading.Barrier(2)

    def task(name: str) -> None:
        with logcapture.task_run_logs(store, f"run-{name}", f"task-{name}", 1):
            for i in range(50):
                barrier.wait(timeout=10) if i % 10 == 0 else None
                print(f"{name} {i}")
                logging.getLogger("tests.capture").warning("%s warned %d", name, i)

    threads = [threading.Thread(target=task, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        # Then each task run has its own lines and only those
        for name, other in (("a", "b"), ("b", "a")):
            rows = store.logs.of_flow_run(f"run-{name}")
            assert len(rows) == 100
            assert all(r.message.startswith(name) for r in rows)
            assert not [r for r in rows if r.message.startswith(other)]
        # and the streams are restored afterwards
        import sys

        assert type(sys.stdout).__name__ != "_Tee" and type(sys.stderr).__name__ != "_Tee"
    finally:
        store.close()
