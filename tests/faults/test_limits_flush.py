"""Concurrency limits live in the database and come back by themselves when Redis
loses them (FLUSHDB of the fleet's own Redis database, as a restart without
persistence would): the Running runs get their slots back before any other run may
take one, so no slot is doubled, and none is left held. Real workers, no beat,
SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

import orchestrator.constants as constants
from orchestrator import State
from orchestrator.backends import backends
from tests.conftest import Fleet
from tests.faults.checks import wait_all
from tests.flows import limited
from tests.integration.test_limits import _max_overlap

FLUSH_ENV = {"ORCHESTRATOR_SWEEP_SECONDS": "2", "ORCHESTRATOR_STALE_SECONDS": "8"}


def _running(fleet: Fleet, ids: list[str]) -> int:
    return sum(fleet.client.get_flow_run(i, task_runs=False).state is State.RUNNING for i in ids)


def test_limits_come_back_after_redis_is_flushed(fresh_fleet: Fleet) -> None:
    # Given a limit of 2 on "gpu", three workers (no beat) and 12 runs of a gpu flow
    fleet = fresh_fleet
    fleet.env.update(FLUSH_ENV)
    for flow in limited.ALL:
        fleet.client.register(flow, limited.PROJECT)
    fleet.client.set_concurrency_limit("gpu", 2)
    for _ in range(3):
        fleet.start_worker(concurrency=1, wait=False)
    for w in fleet.workers:
        w.wait_ready(backends(fleet.settings).app)
    ids = [
        fleet.client.create_flow_run("gpu-job", limited.PROJECT, parameters={"seconds": 1.5})
        for _ in range(12)
    ]
    # When Redis loses everything while two of them run
    deadline = time.monotonic() + 60
    while _running(fleet, ids) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    client = backends(fleet.settings).redis
    client.flushdb()
    # Then every run finishes, never more than two at once
    runs = wait_all(fleet, ids, 300)
    assert [r.state for r in runs] == [State.SUCCESS] * 12
    assert _max_overlap([(r.start_time, r.end_time) for r in runs]) <= 2
    # and the limit is back in Redis, with no slot left held and nobody waiting
    assert client.hget(constants.LIMITS, "gpu") == b"2"
    [info] = [i for i in fleet.client.concurrency_limits() if i.label == "gpu"]
    assert (info.limit, info.used, info.waiting) == (2, 0, 0)


pytestmark = pytest.mark.timeout(600)
