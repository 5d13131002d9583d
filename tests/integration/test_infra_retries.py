"""Our Celery tasks on a real worker (issue 24.1, DESIGN rule 11): waiting goes on
past Celery's 30 retries, and infrastructure faults keep a bound of their own: a
count of faults in a row, which earlier waits do not eat and a wait starts again."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from celery import Celery

from orchestrator.backends import backends
from orchestrator.config import Settings
from orchestrator.processes import WorkerProcess
from tests.conftest import ROOT


@dataclass
class Solo:
    """A solo worker running the tasks of tests/flows/flaky_tasks.py, the app to send
    them with and the Redis they record their deliveries in."""

    app: Celery
    queue: str
    redis: redis.Redis


@pytest.fixture(scope="module")
def solo(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Solo]:
    home = tmp_path_factory.mktemp("flaky-home")
    queue = f"flaky-{uuid.uuid4().hex[:6]}"
    settings = Settings(home=home, redis_url=redis_url, database_url=None, queue=queue)
    env = {
        **os.environ,
        "ORCHESTRATOR_HOME": str(home),
        "ORCHESTRATOR_REDIS_URL": redis_url,
        "ORCHESTRATOR_QUEUE": queue,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("ORCHESTRATOR_DATABASE_URL", None)
    worker = WorkerProcess(
        f"flaky-{uuid.uuid4().hex[:4]}@{os.uname().nodename}",
        env,
        pool="solo",
        queues=queue,
        log_path=home / "worker.log",
        extra=["--include", "tests.flows.flaky_tasks"],
    )
    b = backends(settings)
    try:
        worker.wait_ready(b.app)
        yield Solo(b.app, queue, b.redis)
    finally:
        worker.stop()


def _deliveries(solo: Solo, key: str, last: str, timeout: float = 60) -> list[str]:
    """The deliveries a task recorded, once the last one recorded ``last``."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [x.decode() for x in solo.redis.lrange(key, 0, -1)]
        if seen and seen[-1].endswith(last):
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)


def test_waits_go_on_and_faults_count_only_in_a_row(solo: Solo) -> None:
    # Given a task that waits 35 times, then meets 3 infrastructure faults, waits
    # once more and meets one more fault
    key = f"flaky:{uuid.uuid4().hex}"
    plan = ["wait"] * 35 + ["fault"] * 3 + ["wait", "fault"]
    result = solo.app.send_task("tests.flaky", args=[plan, key], queue=solo.queue)
    # Then it is delivered until it is done, past Celery's 30 retries
    seen = _deliveries(solo, key, ":ok")
    assert len(seen) == len(plan) + 1
    # and each fault counts the faults in a row before it: none for the waits
    # before them, and none again after a wait
    assert seen[35:] == [
        "35:0:fault",
        "36:1:fault",
        "37:2:fault",
        "38:3:wait",
        "39:0:fault",
        "40:1:ok",
    ]
    deadline = time.monotonic() + 10
    while result.state != "SUCCESS":
        assert time.monotonic() < deadline, result.state
        time.sleep(0.1)


def test_faults_in_a_row_are_bounded(solo: Solo) -> None:
    # Given a task that gives up after two faults in a row, meeting five
    key = f"flaky:{uuid.uuid4().hex}"
    result = solo.app.send_task("tests.few_faults", args=[["fault"] * 5, key], queue=solo.queue)
    # Then its third delivery fails it with the fault itself, and nothing retries it
    deadline = time.monotonic() + 30
    while result.state != "FAILURE":
        assert time.monotonic() < deadline, result.state
        time.sleep(0.1)
    assert "database is down" in str(result.result)
    assert [x.decode() for x in solo.redis.lrange(key, 0, -1)] == [
        "0:0:fault",
        "1:1:fault",
        "2:2:fault",
    ]
