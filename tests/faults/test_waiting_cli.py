"""`orchestrator run --wait` with no worker on the run's queue (issue 24 item 4):
after a few seconds it says that no worker consumes that queue (asked of the
workers with a Celery inspect, while a worker on another queue answers) and keeps
waiting; a worker started then runs it to the end. Real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from orchestrator.processes import WorkerProcess
from tests.conftest import Fleet
from tests.integration.test_cli import ONE_TASK, cli, write_flows


def _lines_of(stream: object, into: list[str]) -> threading.Thread:
    def read() -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_run_wait_says_no_worker_consumes_the_queue_and_keeps_waiting(
    fresh_fleet: Fleet, project: str, tmp_path: Path
) -> None:
    # Given a registered flow and one worker, consuming another queue only
    path = write_flows(tmp_path / "lonely.py", ONE_TASK.format(name="lonely"))
    assert cli(fresh_fleet.env, "register", str(path), "--project", project).returncode == 0
    elsewhere = WorkerProcess(
        f"elsewhere-{fresh_fleet.queue}@{os.uname().nodename}",
        fresh_fleet.env,
        concurrency=1,
        queues=f"{fresh_fleet.queue}-elsewhere",
        log_path=tmp_path / "elsewhere.log",
    )
    fresh_fleet.workers.append(elsewhere)
    elsewhere.wait_ready(fresh_fleet.client.backends.app)
    # When the flow is run with --wait
    env = {**fresh_fleet.env, "COLUMNS": "250"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "run", "lonely", "-p", project, "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err: list[str] = []
    reader = _lines_of(proc.stderr, err)
    try:
        # Then it soon says that no worker consumes the run's queue
        wanted = f"no worker consumes queue {fresh_fleet.queue!r}"
        deadline = time.monotonic() + 60
        while not any(wanted in line for line in err):
            assert proc.poll() is None, "".join(err)
            assert time.monotonic() < deadline, "".join(err)
            time.sleep(0.2)
        # And keeps waiting: a worker started now runs the flow, and it exits 0
        fresh_fleet.start_worker()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    assert proc.returncode == 0, out + "".join(err) + fresh_fleet.logs()
    assert "lonely v1 run" in out and "Success" in out
