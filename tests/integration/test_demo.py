"""``orchestrator demo`` on the embedded default: no Redis or database settings, a
fresh ORCHESTRATOR_HOME, and nothing left running afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

import orchestrator.embedded as embedded


def _leftovers(home: Path, hostnames: list[str]) -> list[str]:
    """Processes still running for this home: its redis-server, or the demo's workers."""
    sock = str(embedded.socket_path(home))
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or [])
        is_redis = "redis-server" in cmdline or info["name"] == "redis-server"
        if is_redis and (str(home) in cmdline or sock in cmdline or info["cwd"] == str(home)):
            found.append(f"{info['pid']} {cmdline}")
        if any(h in cmdline for h in hostnames):
            found.append(f"{info['pid']} {cmdline}")
    return found


def _seen_while_running(demo: subprocess.Popen[str], home: Path) -> dict[int, tuple[float, str]]:
    """Every process of the demo's home seen while the demo ran (its redis-server,
    its workers and their pool processes): pid -> (create time, command line)."""
    seen: dict[int, tuple[float, str]] = {}
    while demo.poll() is None:
        hostnames = [p.stem for p in (home / "logs").glob("*.log")] if home.exists() else []
        for line in _leftovers(home, hostnames):
            pid, cmdline = line.split(" ", 1)
            with contextlib.suppress(psutil.NoSuchProcess):
                seen.setdefault(int(pid), (psutil.Process(int(pid)).create_time(), cmdline))
        time.sleep(0.1)
    return seen


def _still_running(seen: dict[int, tuple[float, str]]) -> list[str]:
    """The processes of ``seen`` that still run (the same pid and start time)."""
    alive = []
    for pid, (created, cmdline) in seen.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {cmdline}")
    return alive


def test_demo_runs_the_flow_of_flows_and_leaves_nothing_running(tmp_path: Path) -> None:
    # Given a fresh home and no Redis or database settings (embedded Redis + SQLite)
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ORCHESTRATOR_") or k.startswith("ORCHESTRATOR_TEST_")
    }
    env["ORCHESTRATOR_HOME"] = str(home)
    # When the demo runs (the test watching which processes it starts)
    demo = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with ThreadPoolExecutor(1) as pool:
            watching = pool.submit(_seen_while_running, demo, home)
            out, err = demo.communicate(timeout=240)
            seen = watching.result(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in (home / "logs").glob("*.log"))
    # Then it succeeds and shows the parent and each child A, B, C, D as Success
    assert demo.returncode == 0, out + err + logs
    assert re.search(r"^parent-flow v\d+ \[examples\]\s+Success", out, re.M), out
    for name in "ABCD":
        slug = f"flow_{name.lower()}"
        assert re.search(rf"{slug}\s+Success", out), out
        assert re.search(rf"\b{name} v\d+ \[examples\]\s+Success", out), out
    assert re.search(r"^parent-flow Success in [\d.]+s: A -> \(B, C\) -> D", out, re.M), out
    assert "embedded Redis started here" in out
    # And it had started a redis-server and workers with their pool processes
    commands = [cmdline for _, cmdline in seen.values()]
    assert any("redis-server" in c for c in commands), commands
    assert sum("celery" in c and "worker" in c for c in commands) >= 4, commands
    # none of which is left running, nor any other redis-server or worker of that home
    assert _still_running(seen) == []
    hostnames = [p.stem for p in (home / "logs").glob("*.log")]
    assert _leftovers(home, hostnames) == []
