"""``orchestrator beat`` with ``ORCHESTRATOR_RETENTION_DAYS``, for real: it prunes an
old finished tree (and leaves a new one) once for the day, and ``--metrics-port``
serves beat's figures (schedule lag, runs swept as stuck)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from orchestrator.backends import backends
from orchestrator.clock import utcnow
from orchestrator.db.models import FlowRun
from tests.conftest import Fleet
from tests.integration.db.common import build, register
from tests.integration.old_runs import insert_runs, tree
from workers.upkeep import prune_key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _left(fleet: Fleet, ids: list[str]) -> int:
    with fleet.store.reading() as s:
        return int(s.execute(select(func.count()).where(FlowRun.id.in_(ids))).scalar_one())


def test_beat_prunes_old_trees_once_a_day_and_serves_its_metrics(
    fleet: Fleet, project: str, tmp_path: Path
) -> None:
    # Given an old finished tree and a new one, and no prune done today
    flow = register(fleet.store, project, build())
    old = tree(flow, utcnow() - timedelta(days=40))
    new = tree(flow, utcnow())
    insert_runs(fleet.store, old + new)
    b = backends(fleet.settings)
    b.redis.delete(prune_key(b.store.url))
    # When beat starts with a retention of 30 days and a metrics port
    port = _free_port()
    env = {**fleet.env, "ORCHESTRATOR_RETENTION_DAYS": "30"}
    log = tmp_path / "beat.log"
    cmd = [sys.executable, "-m", "orchestrator.cli", "beat", "--metrics-port", str(port)]
    cmd += ["--schedule", str(tmp_path / "beat-schedule"), "--pidfile", str(tmp_path / "beat.pid")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while _left(fleet, [r["id"] for r in old]):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        # Then the old tree went whole, the new one stayed, and the day's key is held
        assert _left(fleet, [r["id"] for r in new]) == 4
        assert b.redis.ttl(prune_key(b.store.url)) > 23 * 3600
        assert "beat: pruned" in log.read_text()
        # and beat's /metrics has its schedule lag and sweep figures
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        assert "# TYPE orchestrator_schedule_lag_seconds histogram" in text
        assert "# TYPE orchestrator_runs_swept_total counter" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
