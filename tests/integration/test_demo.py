"""``orchestrator demo`` on the embedded default: no Redis or database settings, a
fresh ORCHESTRATOR_HOME, and nothing left running afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def test_demo_runs_the_flow_of_flows_and_leaves_nothing_running(tmp_path: Path) -> None:
    # Given a fresh home and no Redis or database settings (embedded Redis + SQLite)
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ORCHESTRATOR_") or k.startswith("ORCHESTRATOR_TEST_")
    }
    env["ORCHESTRATOR_HOME"] = str(home)
    # When the demo runs
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in (home / "logs").glob("*.log"))
    # Then it succeeds and shows the parent and each child A, B, C, D as Success
    assert done.returncode == 0, done.stdout + done.stderr + logs
    out = done.stdout
    assert re.search(r"^parent-flow v\d+ \[examples\]\s+Success", out, re.M), out
    for name in "ABCD":
        slug = f"flow_{name.lower()}"
        assert re.search(rf"{slug}\s+Success", out), out
        assert re.search(rf"\b{name} v\d+ \[examples\]\s+Success", out), out
    assert re.search(r"^parent-flow Success in [\d.]+s: A -> \(B, C\) -> D", out, re.M), out
    assert "embedded Redis started here" in out
    # And no redis-server of that home, nor any of its workers, is left running
    hostnames = [p.stem for p in (home / "logs").glob("*.log")]
    assert hostnames, "the demo wrote no worker logs"
    assert _leftovers(home, hostnames) == []
