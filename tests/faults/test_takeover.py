"""Workers take over a killed worker's runs within seconds, with no beat and the
default settings (a 60 s lease, a 120 s stale timer, a visibility timeout of hours):
its liveness key expires, a live worker hands its held messages back, ends its leases
and sends its runs again. Real workers, SQLite and PostgreSQL; prints the time from
the last kill to the last run's end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.backends import backends
from orchestrator.clock import utcnow
from tests.conftest import Fleet
from tests.faults.checks import check_parents, kill_busy, last_end, wait_all
from tests.flows import recovery

DEFAULTS = {"ORCHESTRATOR_LEASE_SECONDS": "60"}  # the default lease; the rest unset


def _prepare(fleet: Fleet, workers: int) -> None:
    fleet.env.update(DEFAULTS)
    for flow in recovery.ALL:
        fleet.client.register(flow, recovery.PROJECT)
    for _ in range(workers):
        fleet.start_worker(wait=False)
    for w in fleet.workers:
        w.wait_ready(backends(fleet.settings).app)


def test_killed_workers_are_taken_over_without_beat(fresh_fleet: Fleet, tmp_path: Path) -> None:
    # Given three workers, no beat, default recovery settings, and 12 Flow-of-Flows runs
    _prepare(fresh_fleet, 3)
    ids = [fresh_fleet.client.create_flow_run("rec-parent", recovery.PROJECT) for _ in range(12)]
    # When four workers are SIGKILLed while they run a task, two seconds apart: a pool
    # process alone twice, a whole worker (main and pool processes) twice
    killed = []
    for i in range(4):
        killed.append(kill_busy(fresh_fleet, whole_worker=i % 2 == 1))
        last_kill = utcnow()
        time.sleep(2)
    print(f"\nkilled: {killed}")
    # Then every run ends Success with its four children, nothing recorded twice
    runs = wait_all(fresh_fleet, ids, 240)
    twice = check_parents(fresh_fleet, runs)
    recovered = (last_end(runs) - last_kill).total_seconds()
    print(
        f"takeover without beat: runs {len(ids)}, finished {len(runs)}, finished twice "
        f"{twice}, last run ended {recovered:.1f}s after the last kill"
    )
    assert twice == 0
    assert "taken over" in fresh_fleet.log_text()


pytestmark = pytest.mark.timeout(600)
