"""Flower, started for real by ``orchestrator flower`` next to the fleet's workers,
read through its HTTP API with basic auth."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator import State
from tests.conftest import Fleet
from tests.flows import deploy
from tests.integration.helpers import run_and_wait

USER, PASSWORD = "watcher", "s3cret-pw"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FlowerProcess:
    """A running Flower and how to ask it things."""

    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def get(self, path: str, auth: tuple[str, str] | None = (USER, PASSWORD)) -> Any:
        """GET ``path`` and decode the JSON answer (HTTPError on a non-2xx status)."""
        request = urllib.request.Request(self.base + path)
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body.decode()

    def status(self, path: str, auth: tuple[str, str] | None = None) -> int:
        """The HTTP status of GET ``path``."""
        try:
            self.get(path, auth)
        except urllib.error.HTTPError as exc:
            return exc.code
        return 200

    def log(self) -> str:
        """What Flower printed."""
        return self.log_path.read_text(errors="replace")[-4000:]


def start_flower(
    env: dict[str, str], log_path: Path, *args: str, answers_on: int | None = None
) -> FlowerProcess:
    """Start ``orchestrator flower`` with ``args`` and wait until it answers (on port
    ``answers_on`` when ``args`` move it)."""
    port = free_port()
    cmd = [sys.executable, "-m", "orchestrator.cli", "flower", "--port", str(port)]
    cmd += ["--address", "127.0.0.1", *args]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    flower = FlowerProcess(proc, f"http://127.0.0.1:{answers_on or port}", log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"flower exited with {proc.returncode}:\n{flower.log()}")
        try:
            if flower.get("/healthcheck") == "OK":
                return flower
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    stop_flower(flower)
    raise AssertionError(f"flower did not answer in 60 s:\n{flower.log()}")


def stop_flower(flower: FlowerProcess) -> None:
    """Stop Flower (SIGTERM, then SIGKILL of its process group)."""
    if flower.proc.poll() is None:
        flower.proc.send_signal(signal.SIGTERM)
        try:
            flower.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(flower.proc.pid, signal.SIGKILL)
            flower.proc.wait(5)


@pytest.fixture()
def flower(fleet: Fleet, tmp_path: Path) -> Iterator[FlowerProcess]:
    """Flower with basic auth on a free loopback port, watching the fleet."""
    env = {k: v for k, v in fleet.env.items() if not k.startswith("FLOWER_")}
    f = start_flower(env, tmp_path / "flower.log", "--basic-auth", f"{USER}:{PASSWORD}")
    try:
        # Flower answers before its event receiver has subscribed: a task whose
        # task-received event came earlier would be listed without a name. Heartbeats
        # of the fleet's workers show that the events reach it.
        hostnames = {w.hostname for w in fleet.workers}
        wait_for(
            "worker heartbeats in /api/workers?status=1",
            lambda: hostnames <= {n for n, up in f.get("/api/workers?status=1").items() if up},
            timeout=60,
            flower=f,
        )
        yield f
    finally:
        stop_flower(f)


def wait_for(
    what: str, probe: Any, timeout: float = 30, flower: FlowerProcess | None = None
) -> Any:
    """Call ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(
        f"{what} did not happen in {timeout:g}s" + (f"\n{flower.log()}" if flower else "")
    )


def test_flower_lists_workers_and_readable_node_tasks(
    fleet: Fleet, project: str, flower: FlowerProcess
) -> None:
    # Given Flower with basic auth, next to the fleet's two workers, whose event
    # stream it follows (the fixture waits for their heartbeats)
    hostnames = {w.hostname for w in fleet.workers}

    # Then it lists both workers by name when it asks them, each consuming the
    # fleet's queue with the orchestrator's tasks registered
    def listing() -> dict[str, Any]:
        answer: dict[str, Any] = flower.get("/api/workers?refresh=1")
        return answer if hostnames <= set(answer) else {}

    listed = wait_for("the workers in /api/workers", listing, flower=flower)
    assert len(hostnames) == 2
    for name in hostnames:
        assert [q["name"] for q in listed[name]["active_queues"]] == [fleet.queue], listed[name]
        assert "orchestrator.node" in listed[name]["registered"], listed[name]["registered"]
    # When a flow A -> (B, C) -> D runs on the fleet, a few times (the events of
    # sender and worker race; every node of every run must keep its readable name)
    fleet.client.register(deploy.watched, project)
    runs = [run_and_wait(fleet, "watched", project) for _ in range(3)]
    assert all(info.state is State.SUCCESS for info in runs), [i.message for i in runs]
    # (D, which ends the flow, records the flow run's state itself: no finalize task)
    wanted = {f"watched/{slug}" for slug in "ABCD"} | {"watched/start"}

    # Then Flower lists their node tasks by readable names (flow/slug), with the
    # flow run id in their arguments, in state SUCCESS, on the fleet's workers
    def node_tasks() -> dict[str, dict[str, dict[str, Any]]]:
        tasks = flower.get("/api/tasks").values()
        per_run = {
            info.id: {t["name"]: t for t in tasks if info.id in (t.get("args") or "")}
            for info in runs
        }
        done = all(
            wanted <= {n for n, t in mine.items() if t.get("state") == "SUCCESS"}
            for mine in per_run.values()
        )
        return per_run if done else {}

    try:
        per_run = wait_for("the node tasks in /api/tasks", node_tasks, flower=flower)
    except AssertionError:
        seen = sorted({str(t["name"]) for t in flower.get("/api/tasks").values()})
        raise AssertionError(f"Flower shows the task names {seen}") from None
    for info in runs:
        mine = per_run[info.id]
        assert set(mine) == wanted, sorted(mine)  # no node under Celery's internal name
        for slug in "ABCD":
            task = mine[f"watched/{slug}"]
            assert task["state"] == "SUCCESS"
            assert info.id in task["args"] and repr(slug) in task["args"]
            assert task["worker"] in hostnames
    # and Flower's task-name filter finds a node by its readable name
    by_name = flower.get("/api/tasks?taskname=watched/B")
    assert {info.id for info in runs} <= {
        info.id for info in runs for t in by_name.values() if info.id in t["args"]
    }


def test_a_flow_of_flows_in_flower(fleet: Fleet, flower: FlowerProcess) -> None:
    # Given the seed's Flow-of-Flows A -> (B, C) -> D, each child waited for (wait=True)
    from orchestrator.loader import flows_in
    from tests.conftest import ROOT

    for listing in ("seed_flows.py", "flow_of_flows.py"):
        for flow in flows_in(str(ROOT / "examples" / listing)):
            fleet.client.register(flow, "examples")
    # When it runs on the fleet
    parent = run_and_wait(fleet, "parent-flow", "examples", timeout=120)
    assert parent.state is State.SUCCESS, parent.message
    kids = {fleet.client.get_flow_run(c).flow_name: c for c in parent.children}
    assert set(kids) == set("ABCD")
    wanted = {f"parent-flow/flow_{x}" for x in "abcd"} | {"parent-flow/start"}

    def tree() -> dict[str, dict[str, Any]]:
        tasks = flower.get("/api/tasks").values()
        ids = {parent.id, *kids.values()}
        mine = {t["name"]: t for t in tasks if any(i in (t.get("args") or "") for i in ids)}
        done = {n for n, t in mine.items() if t.get("state") == "SUCCESS"}
        return mine if wanted <= done else {}

    try:
        mine = wait_for("the Flow-of-Flows in /api/tasks", tree, flower=flower)
    except AssertionError:
        seen = sorted({str(t["name"]) for t in flower.get("/api/tasks").values()})
        raise AssertionError(f"Flower shows the task names {seen}") from None
    # Then each StartFlowRun node is named parent-flow/<slug>, and, as each child is
    # a one-task flow, it ran inside that node, whose result names the child run;
    # every task of the tree shares the parent's root task
    assert set(mine) == wanted, sorted(mine)
    root = mine["parent-flow/start"]["uuid"]
    assert {t["root_id"] for t in mine.values()} == {root}
    for x in "ABCD":
        node = mine[f"parent-flow/flow_{x.lower()}"]
        assert parent.id in node["args"] and kids[x] in node["result"]
    # and Flower's search finds a run's tasks by its id, a child's by the child's
    found = flower.get(f"/api/tasks?search={parent.id}")
    assert {t["name"] for t in found.values()} >= {"parent-flow/start", "parent-flow/flow_a"}
    found = flower.get(f"/api/tasks?search={kids['B']}")
    assert {t["name"] for t in found.values()} >= {"parent-flow/flow_b"}


def test_flower_names_the_broker_by_its_url(fleet: Fleet, flower: FlowerProcess) -> None:
    # Given Flower on the fleet's Redis
    # Then its log names the broker by a URL of the Redis scheme the fleet uses (not
    # by the class path of the project's transport), with any password masked
    line = next(ln for ln in flower.log().splitlines() if "Broker:" in ln)
    scheme = fleet.settings.redis_url.split("://", 1)[0]
    assert f"Broker: {scheme}://" in line, line
    assert "Transport" not in line
    # and it reads the length of the fleet's queue from that broker
    lengths = wait_for(
        "the fleet's queue in /api/queues/length",
        lambda: {
            q["name"]: q["messages"] for q in flower.get("/api/queues/length")["active_queues"]
        },
        flower=flower,
    )
    assert lengths.get(fleet.queue) == 0, lengths


def test_flower_refuses_requests_without_credentials(flower: FlowerProcess) -> None:
    # Given Flower started with --basic-auth
    # Then the API and the pages answer 401 without credentials or with wrong ones
    assert flower.status("/api/workers") == 401
    assert flower.status("/api/tasks") == 401
    assert flower.status("/tasks") == 401
    assert flower.status("/api/tasks", auth=(USER, "wrong")) == 401
    # and 200 with the right ones
    assert flower.status("/api/tasks", auth=(USER, PASSWORD)) == 200


def test_orchestrator_flower_may_skip_auth_on_loopback(fleet: Fleet, tmp_path: Path) -> None:
    # Given Flower started with --unauthenticated on 127.0.0.1
    env = {k: v for k, v in fleet.env.items() if not k.startswith("FLOWER_")}
    flower = start_flower(env, tmp_path / "flower.log", "--unauthenticated")
    try:
        # Then its pages answer without credentials
        assert flower.status("/workers") == 200
        assert flower.status("/tasks") == 200
        # while the HTTP API stays closed (Flower opens it, with CORS for every
        # origin, only when FLOWER_UNAUTHENTICATED_API is set)
        assert flower.status("/api/tasks") == 401
    finally:
        stop_flower(flower)


def test_orchestrator_flower_refuses_to_start_without_auth(fleet: Fleet) -> None:
    env = {k: v for k, v in fleet.env.items() if not k.startswith("FLOWER_")}
    base = [sys.executable, "-m", "orchestrator.cli", "flower", "--port", str(free_port())]
    # no auth at all
    out = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "--basic-auth" in out.stderr and "Traceback" not in out.stderr
    # --unauthenticated on a non-loopback address
    out = subprocess.run(
        [*base, "--unauthenticated", "--address", "0.0.0.0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "refusing" in out.stderr and "0.0.0.0" in out.stderr
    # a malformed --basic-auth
    out = subprocess.run(
        [*base, "--basic-auth", "nopassword"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1 and "USER:PASSWORD" in out.stderr


@pytest.mark.parametrize(
    "passed",
    [
        ["--", "--address=0.0.0.0"],
        ["--", "--address", "0.0.0.0"],
        ["--", "--address="],
        ["--", "-address=0.0.0.0"],
        ["--", "--conf=evil.py"],
        ["--", "--unix_socket=/tmp/flower.sock"],
    ],
)
def test_options_passed_to_flower_cannot_undo_the_auth_rule(
    fleet: Fleet, passed: list[str]
) -> None:
    # Given no credentials and --unauthenticated on loopback
    env = {k: v for k, v in fleet.env.items() if not k.startswith("FLOWER_")}
    cmd = [sys.executable, "-m", "orchestrator.cli", "flower", "--port", str(free_port())]
    # When an option passed through to Flower would make it listen elsewhere or
    # read its settings from a file
    out = subprocess.run(
        [*cmd, "--unauthenticated", *passed], env=env, capture_output=True, text=True, timeout=60
    )
    # Then it refuses to start, with one error line
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert "refusing" in lines[0] or "does not pass" in lines[0]


def test_the_banner_says_where_flower_really_listens(fleet: Fleet, tmp_path: Path) -> None:
    # Given Flower started with a --port passed through after its own --port
    env = {k: v for k, v in fleet.env.items() if not k.startswith("FLOWER_")}
    real = free_port()
    flower = start_flower(
        env, tmp_path / "flower.log", "--unauthenticated", "--", f"--port={real}", answers_on=real
    )
    try:
        # Then it answers on that port, and its banner names that port
        assert flower.status("/workers") == 200
        banner = next(line for line in flower.log().splitlines() if "flower on" in line)
        assert f"http://127.0.0.1:{real} " in banner, banner
    finally:
        stop_flower(flower)
