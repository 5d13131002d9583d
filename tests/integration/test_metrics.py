"""Prometheus figures on real processes: the server's ``/metrics`` counts the seed
Flow-of-Flows' successful runs by flow (read from the database), and ``orchestrator
worker --metrics-port`` serves its prefork pool's attempts, durations and queue
delays summed over the pool's processes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import State
from orchestrator.loader import flows_in
from orchestrator.processes import ServerProcess
from tests.conftest import ROOT, Fleet
from tests.flows import observed
from tests.integration.helpers import run_and_wait

SEED = ("parent-flow", "A", "B", "C", "D")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        return str(answer.read().decode())


def _value(text: str, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly these labels (0 when absent)."""
    for line in text.splitlines():
        found = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if found and dict(re.findall(r'(\w+)="([^"]*)"', found.group(1))) == labels:
            return float(found.group(2))
    return 0.0


@pytest.fixture()
def server(fleet: Fleet, tmp_path: Path) -> Iterator[str]:
    process = ServerProcess({**fleet.env, "PYTHONUNBUFFERED": "1"}, log_path=tmp_path / "s.log")
    try:
        yield process.wait_ready(timeout=60)
    finally:
        process.stop()


def test_server_metrics_count_the_seed_runs_by_flow(fleet: Fleet, server: str) -> None:
    # Given the seed's flows and the server's figures before a run
    for listing in ("seed_flows.py", "flow_of_flows.py"):
        for flow in flows_in(str(ROOT / "examples" / listing)):
            fleet.client.register(flow, "examples")
    before = _get(server + "/metrics")
    # When the Flow-of-Flows runs on the workers
    parent = run_and_wait(fleet, "parent-flow", "examples")
    assert parent.state is State.SUCCESS, parent.message
    # Then /metrics counts one more successful run of the parent and of each child
    after = _get(server + "/metrics")
    for flow in SEED:
        labels = {"flow": flow, "project": "examples", "state": "Success"}
        grew = _value(after, "orchestrator_flow_runs_total", **labels) - _value(
            before, "orchestrator_flow_runs_total", **labels
        )
        assert grew == 1, (flow, after)
    assert _value(after, "orchestrator_task_runs_total", **labels) >= 1
    assert "# TYPE orchestrator_flow_runs_running gauge" in after
    assert "# TYPE orchestrator_slots_held gauge" in after


def test_server_metrics_need_a_token_when_the_server_has_tokens(
    fleet: Fleet, tmp_path: Path
) -> None:
    # Given a server with a token and a read token
    env = {
        **fleet.env,
        "ORCHESTRATOR_SERVER_TOKEN": "t-" + uuid.uuid4().hex,
        "ORCHESTRATOR_SERVER_READ_TOKEN": "r-" + uuid.uuid4().hex,
    }
    process = ServerProcess(env, log_path=tmp_path / "s.log")
    try:
        url = process.wait_ready(timeout=60) + "/metrics"
        # Then /metrics without a token is refused, and the read token may scrape it
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(url)
        refused.value.close()
        assert refused.value.code == 401
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {env['ORCHESTRATOR_SERVER_READ_TOKEN']}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert b"# TYPE orchestrator_flow_runs_total counter" in answer.read()
    finally:
        process.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_metrics_port_sums_its_pool(fresh_fleet: Fleet, project: str) -> None:
    # Given `orchestrator worker --metrics-port` with a prefork pool of two processes
    fresh_fleet.client.register(observed.retried_once, project)
    port = _free_port()
    log = fresh_fleet.log_dir / "metrics-worker.log"
    name = f"m-{uuid.uuid4().hex[:6]}@%h"
    cmd = [sys.executable, "-m", "orchestrator.cli", "worker", "--metrics-port", str(port)]
    cmd += ["-Q", fresh_fleet.queue, "-c", "2", "-n", name, "--without-mingle", "--without-gossip"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=fresh_fleet.env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(url)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        # When a flow whose task fails once, then succeeds, runs on it
        run = run_and_wait(fresh_fleet, "retried-once", project)
        assert run.state is State.SUCCESS, run.message
        # Then its /metrics show both attempts, their durations and queue delays
        text = _get(url)
        flow = {"flow": "retried-once"}
        assert _value(text, "orchestrator_worker_task_runs_total", **flow, state="Retrying") == 1
        assert _value(text, "orchestrator_worker_task_runs_total", **flow, state="Success") == 1
        assert _value(text, "orchestrator_task_run_duration_seconds_count", **flow) == 2
        assert _value(text, "orchestrator_task_queue_delay_seconds_count", **flow) >= 1
    finally:
        proc.terminate()
        proc.wait(30)
