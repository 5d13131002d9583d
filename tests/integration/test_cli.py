"""The ``orchestrator`` command line, run for real in subprocesses against the
fleet's Redis, database and worker processes."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import Fleet

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def cli(
    env: Mapping[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``orchestrator ARGS`` in a subprocess and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_row(output: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is ``first_cell``."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{output}")


def write_flows(path: Path, body: str) -> Path:
    """Write a flow file (dedented) and return its path."""
    path.write_text(textwrap.dedent(body))
    return path


ONE_TASK = """
    from orchestrator import Flow, Parameter, task

    @task
    def add_one(n):
        return n + 1

    with Flow("{name}") as flow:
        add_one(Parameter("n", default=1))
"""

TWO_TASKS = """
    from orchestrator import Flow, Parameter, task

    @task
    def add_one(n):
        return n + 1

    @task
    def double(n):
        return 2 * n

    with Flow("{name}") as flow:
        double(add_one(Parameter("n", default=1)))
"""

PARENT_AND_CHILD = """
    from orchestrator import Flow, Parameter, task
    from orchestrator.tasks import StartFlowRun

    @task
    def shout(word):
        return word.upper()

    with Flow("cli-child") as child:
        shout(Parameter("word", default="hi"))

    start_child = StartFlowRun(flow_name="cli-child", project_name="{project}", wait=True)

    with Flow("cli-parent") as parent:
        start_child(parameters={{"word": "hello"}})
"""


def test_register_twice_gives_version_1_then_unchanged(
    fleet: Fleet, project: str, tmp_path: Path
) -> None:
    # Given a file defining one flow
    path = write_flows(tmp_path / "once.py", ONE_TASK.format(name="once"))
    # When it is registered twice
    first = cli(fleet.env, "register", str(path), "--project", project)
    second = cli(fleet.env, "register", str(path), "--project", project)
    # Then the first registration stores version 1 and the second changes nothing
    assert first.returncode == 0, first.stderr
    assert table_row(first.stdout, "once")[1:3] == ["1", "new"]
    assert second.returncode == 0, second.stderr
    assert table_row(second.stdout, "once")[1:3] == ["1", "unchanged"]


def test_structural_change_gives_version_2_and_archives_version_1(
    fleet: Fleet, project: str, tmp_path: Path
) -> None:
    # Given a registered flow
    path = write_flows(tmp_path / "grows.py", ONE_TASK.format(name="grows"))
    assert cli(fleet.env, "register", str(path), "--project", project).returncode == 0
    # When its file gains a task and is registered again
    write_flows(path, TWO_TASKS.format(name="grows"))
    again = cli(fleet.env, "register", str(path), "--project", project)
    # Then version 2 is stored and version 1 is archived
    assert again.returncode == 0, again.stderr
    assert table_row(again.stdout, "grows")[1:4] == ["2", "new", "v1"]
    versions = {
        f.version: f.archived
        for p, f in fleet.store.flows.list(include_archived=True)
        if p == project and f.name == "grows"
    }
    assert versions == {1: True, 2: False}


def test_run_wait_runs_on_the_fleet_and_exits_0(fleet: Fleet, project: str, tmp_path: Path) -> None:
    # Given a registered flow taking a parameter n
    path = write_flows(tmp_path / "adder.py", ONE_TASK.format(name="adder"))
    assert cli(fleet.env, "register", str(path), "--project", project).returncode == 0
    # When it is run with --wait and n=41 (parsed as JSON, so an int)
    done = cli(fleet.env, "run", "adder", "--project", project, "--param", "n=41", "--wait")
    # Then it exits 0, says Success and shows the task's result
    assert done.returncode == 0, done.stdout + done.stderr + fleet.logs()
    assert re.search(rf"adder v1 run {UUID}: Success", done.stdout), done.stdout
    assert table_row(done.stdout, "add_one")[1] == "Success"
    assert table_row(done.stdout, "add_one")[-1] == "42"


def test_show_prints_the_tree_with_child_runs_and_runs_lists_them(
    fleet: Fleet, project: str, tmp_path: Path
) -> None:
    # Given a parent flow that starts a child flow and waits for it, run to the end
    path = write_flows(tmp_path / "family.py", PARENT_AND_CHILD.format(project=project))
    assert cli(fleet.env, "register", str(path), "--project", project).returncode == 0
    done = cli(fleet.env, "run", "cli-parent", "--project", project, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr + fleet.logs()
    match = re.search(rf"run ({UUID}): Success", done.stdout)
    assert match, done.stdout
    parent_id = match.group(1)
    (child_id,) = fleet.client.get_flow_run(parent_id).children
    # When the run is shown
    shown = cli(fleet.env, "show", parent_id)
    # Then the tree holds the parent, its task run, and under it the child run and its task
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("cli-parent v1") and parent_id in lines[0] and "Success" in lines[0]
    child_line = next(line for line in lines if child_id in line)
    assert "cli-child v1" in child_line and "Success" in child_line
    task_line = next(line for line in lines if "shout" in line)
    assert lines.index(task_line) > lines.index(child_line)
    assert any("flow_cli_child" in line and "Success" in line for line in lines)
    # And `runs` lists both runs, the child naming its parent
    listed = cli(fleet.env, "runs", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    assert table_row(listed.stdout, parent_id)[1:4] == ["cli-parent", f"{project} v1", "Success"]
    assert table_row(listed.stdout, child_id)[-1] == parent_id[:8] + "…"


def test_unknown_flow_is_one_error_line_and_exit_1(fleet: Fleet, project: str) -> None:
    # When a flow that does not exist is run
    done = cli(fleet.env, "run", "nope", "--project", project)
    # Then stderr holds exactly one line, an error naming it, and the exit code is 1
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:") and "nope" in lines[0]
    assert "Traceback" not in done.stderr


def test_unreachable_database_hides_its_password(fleet: Fleet) -> None:
    # Given a database URL with a password, where nothing listens
    env = {
        **fleet.env,
        "ORCHESTRATOR_DATABASE_URL": "postgresql+psycopg://root:s3cret-pw@127.0.0.1:1/x",
    }
    # When a command needs the database
    done = cli(env, "runs")
    # Then it fails with one line that shows the URL with *** for the password
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:")
    assert "root:***@127.0.0.1:1" in lines[0]
    assert "s3cret-pw" not in done.stderr + done.stdout


def test_unreachable_redis_hides_its_password(fleet: Fleet) -> None:
    # Given a Redis URL with a password, where nothing listens
    env = {**fleet.env, "ORCHESTRATOR_REDIS_URL": "redis://:s3cret-pw@127.0.0.1:1/0"}
    # When a command needs Redis
    done = cli(env, "run", "some-flow", "--project", "p")
    # Then it fails with one line, password hidden
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert "***" in lines[0] and "s3cret-pw" not in done.stderr
