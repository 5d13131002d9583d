"""The server's commands: ``orchestrator runs --roots`` (the same rolled-up summary as
the API), ``orchestrator demo --serve`` (the demo's run left served until Ctrl-C, then
nothing left running) and ``orchestrator server`` on a port in use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from orchestrator.states import State
from tests.integration.server.conftest import Served
from tests.integration.test_cli import cli, table_row
from tests.integration.test_demo import _leftovers


def test_runs_roots_lists_the_parent_with_its_children_rolled_up(server: Served) -> None:
    # Given a finished seed Flow-of-Flows
    client = server.fleet.client
    run_id = client.create_flow_run("parent-flow", "examples")
    info = client.wait_for_flow_run(run_id, timeout=120)
    assert info.state is State.SUCCESS
    # When the root runs of the seed's project are listed
    done = cli(server.env, "runs", "--roots", "--project", "examples", "-n", "500")
    # Then the parent is there with "4 Success" under it, and none of its children
    assert done.returncode == 0, done.stderr
    row = table_row(done.stdout, run_id)
    assert row[1:4] == ["parent-flow", "examples v1", "Success"]
    assert row[-1] == "4 Success"
    for child in info.children:
        assert child not in done.stdout
    # while `runs` without --roots lists the children, naming their parent
    mixed = cli(server.env, "runs", "-n", "500")
    assert table_row(mixed.stdout, info.children[0])[-1] == run_id[:8] + "…"


def test_server_on_a_port_in_use_is_one_error_line(server: Served) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    done = cli(server.env, "server", "--port", str(port))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot listen on 127.0.0.1"), done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_serve_leaves_the_server_on_the_run_until_stopped(tmp_path: Path) -> None:
    # Given a fresh home and no Redis or database settings
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ORCHESTRATOR_") or k.startswith("ORCHESTRATOR_TEST_")}  # fmt: skip
    env.update(ORCHESTRATOR_HOME=str(home), PYTHONUNBUFFERED="1", COLUMNS="200")
    port = _free_port()
    # When the demo runs with --serve
    demo = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "demo", "--serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        url = ""
        deadline = time.monotonic() + 240
        assert demo.stdout is not None
        while time.monotonic() < deadline and not url:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving the run at "):
                url = line.split()[4]
        # Then it prints the URL of its run on the server, which shows A, B, C, D done
        assert url.startswith(f"http://127.0.0.1:{port}/runs/"), "".join(lines)
        run_id = url.rsplit("/", 1)[1]
        tree = httpx.get(f"http://127.0.0.1:{port}/api/flow-runs/{run_id}/tree", timeout=30).json()
        assert tree["state"] == "Success"
        assert sorted((c["flow_name"], c["state"]) for c in tree["children"]) == [
            (n, "Success") for n in "ABCD"
        ]
        assert httpx.get(url, timeout=30).status_code == 200
    finally:
        # And when it is stopped (SIGTERM, as Ctrl-C would), it stops everything it started
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=90)
        lines.append(rest)
    assert demo.returncode == 0, "".join(lines)
    try:
        httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5)
        raise AssertionError("the server still answers")
    except httpx.TransportError:
        pass
    hostnames = [p.stem for p in (home / "logs").glob("demo*.log")]
    assert hostnames and _leftovers(home, hostnames) == []
