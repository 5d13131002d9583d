"""Command-line input taken as a user means it (issue 24 item 11), against a real
Redis and database with no worker: limits, `--task`, `--param` with
`--params-json`, `@file` parameters and id prefixes for `show`, `cancel`, `logs`."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.client import Client
from orchestrator.config import Settings
from orchestrator.states import State
from tests.integration.test_cli import ONE_TASK, cli, write_flows


@pytest.fixture()
def env(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a command line on the test Redis and database, on a queue
    of its own that no worker consumes."""

    home = tmp_path / "home"
    yield {
        **os.environ,
        "ORCHESTRATOR_HOME": str(home),
        "ORCHESTRATOR_REDIS_URL": redis_url,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
    }


def _client(env: dict[str, str]) -> Client:
    return Client(
        Settings(
            home=Path(env["ORCHESTRATOR_HOME"]),
            redis_url=env["ORCHESTRATOR_REDIS_URL"],
            database_url=env["ORCHESTRATOR_DATABASE_URL"],
            queue=env["ORCHESTRATOR_QUEUE"],
        )
    )


def _registered(env: dict[str, str], project: str, tmp_path: Path, name: str) -> None:
    path = write_flows(tmp_path / f"{name}.py", ONE_TASK.format(name=name))
    done = cli(env, "register", str(path), "--project", project)
    assert done.returncode == 0, done.stderr


def _one_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    rc, stderr = done.returncode, done.stderr
    assert rc != 0, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    for w in words:
        assert w in lines[0], lines[0]
    return str(lines[0])


def test_a_negative_limit_says_it_must_be_at_least_0(env: dict[str, str]) -> None:
    # When a limit of -1 is set
    done = cli(env, "limits", "set", "gpu", "-1")
    # Then the one error line says what a limit must be, not "No such option"
    line = _one_error(done, ">= 0")
    assert "No such option" not in line


def test_both_param_and_params_json_are_refused(
    env: dict[str, str], project: str, tmp_path: Path
) -> None:
    # Given a registered flow taking n
    _registered(env, project, tmp_path, "both")
    # When it is run with --param and --params-json
    done = cli(env, "run", "both", "-p", project, "--param", "n=1", "--params-json", '{"n": 2}')
    # Then one error names both options and no run is created
    _one_error(done, "--param", "--params-json")
    assert _client(env).flow_runs_page(10, None, False, None, "both", project).runs == []


def test_timeout_without_wait_is_an_error(
    env: dict[str, str], project: str, tmp_path: Path
) -> None:
    _registered(env, project, tmp_path, "tmo")
    done = cli(env, "run", "tmo", "-p", project, "--timeout", "5")
    _one_error(done, "--timeout", "--wait")
    assert _client(env).flow_runs_page(10, None, False, None, "tmo", project).runs == []


def test_params_json_reads_a_file_after_an_at_sign(
    env: dict[str, str], project: str, tmp_path: Path
) -> None:
    # Given a registered flow and a JSON file of its parameters
    _registered(env, project, tmp_path, "fromfile")
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"n": 41}))
    # When it is run with --params-json @file
    done = cli(env, "run", "fromfile", "-p", project, "--params-json", f"@{params}")
    # Then the run takes the file's parameters
    assert done.returncode == 0, done.stderr
    assert _client(env).get_flow_run(done.stdout.strip()).parameters == {"n": 41}
    # And a file that does not exist is one error naming it
    missing = cli(env, "run", "fromfile", "-p", project, "--params-json", "@nope.json")
    _one_error(missing, "nope.json")


def test_show_logs_and_cancel_take_a_unique_id_prefix(
    env: dict[str, str], project: str, tmp_path: Path
) -> None:
    # Given a run that no worker starts
    _registered(env, project, tmp_path, "prefixed")
    done = cli(env, "run", "prefixed", "-p", project)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    prefix = run_id[:13]
    # When show, logs and cancel get the first characters of its id
    shown = cli(env, "show", prefix)
    logged = cli(env, "logs", prefix)
    cancelled = cli(env, "cancel", prefix)
    # Then each finds the run
    assert shown.returncode == 0 and run_id in shown.stdout, shown.stderr
    assert logged.returncode == 0 and run_id in logged.stdout, logged.stderr
    assert cancelled.returncode == 0 and f"cancelled flow run {run_id}" in cancelled.stdout
    assert _client(env).get_flow_run(run_id).state is State.CANCELLED
    # And a prefix no run has is one error naming it
    _one_error(cli(env, "show", "ffffffff-ffff-f"), "ffffffff-ffff-f")


def test_logs_of_an_unknown_task_exits_1_naming_it(
    env: dict[str, str], project: str, tmp_path: Path
) -> None:
    # Given a run
    _registered(env, project, tmp_path, "logged")
    run_id = cli(env, "run", "logged", "-p", project).stdout.strip()
    # When its logs are asked for a task it does not have
    done = cli(env, "logs", run_id, "--task", "nosuch")
    # Then it exits 1 naming the task and the tasks there are
    _one_error(done, "nosuch", "add_one")
