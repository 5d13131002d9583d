"""A flow's version follows its code (issue 24 item 3): editing a task's body and
registering again stores a new version, and a worker process that ran the old
version runs the new code for the new version's runs; real worker, both databases."""

from __future__ import annotations

import textwrap
from pathlib import Path

from orchestrator.loader import flows_in
from orchestrator.states import State
from tests.conftest import Fleet

BODY = """
    from orchestrator import Flow, task

    @task
    def answer():
        return "{word}"

    with Flow("edited") as flow:
        answer()
"""


def _register(fleet: Fleet, path: Path, word: str, project: str) -> int:
    path.write_text(textwrap.dedent(BODY.format(word=word)))
    (flow,) = flows_in(str(path))
    return fleet.client.register(flow, project)


def _run(fleet: Fleet, project: str) -> object:
    run_id = fleet.client.create_flow_run("edited", project)
    info = fleet.client.wait_for_flow_run(run_id, timeout=60)
    assert info.state is State.SUCCESS, (info.message, fleet.logs())
    return fleet.client.get_task_run_result(run_id, "answer")


def test_editing_a_task_body_makes_a_new_version_the_worker_runs(
    fresh_fleet: Fleet, project: str, tmp_path: Path
) -> None:
    # Given a flow registered and run once on a worker of one pool process
    path = tmp_path / "edited_flow.py"
    assert _register(fresh_fleet, path, "old", project) == 1
    fresh_fleet.start_worker(concurrency=1)
    assert _run(fresh_fleet, project) == "old"
    # And registering the same file again changes nothing
    assert _register(fresh_fleet, path, "old", project) == 1
    # When only its task's body is edited and it is registered again
    version = _register(fresh_fleet, path, "new", project)
    # Then it is a new version, and the same worker process runs the new code
    assert version == 2
    assert _run(fresh_fleet, project) == "new"
