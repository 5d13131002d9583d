"""Fault injection on real workers, a real beat (the sweeper) and real servers, all
on loopback, each loop bounded: SIGKILLed workers, a restarted Redis, an unreachable
database. Every run ends Success, each StartFlowRun node has exactly one child, and
no task run is recorded finished twice. Each scenario prints its figures."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select, text

from orchestrator import State
from orchestrator.backends import backends
from orchestrator.db.models import StateEvent
from orchestrator.errors import FlowRunTimeout
from tests.conftest import Fleet
from tests.flows import duplicating
from tests.integration.test_beat import BeatProcess

FAULT_ENV = {
    "ORCHESTRATOR_SWEEP_SECONDS": "2",
    "ORCHESTRATOR_STALE_SECONDS": "8",
    "ORCHESTRATOR_VISIBILITY_TIMEOUT": "12",
    "ORCHESTRATOR_MAX_RESUBMITS": "10",
}


def _prepare(fleet: Fleet) -> None:
    fleet.env.update(FAULT_ENV)
    for flow in duplicating.ALL:
        fleet.client.register(flow, duplicating.PROJECT)


@contextlib.contextmanager
def _beat(fleet: Fleet) -> Iterator[BeatProcess]:
    beat = BeatProcess(dict(fleet.env), fleet.log_dir, "faults")  # its log joins the workers'

    try:
        yield beat
    finally:
        beat.stop()


def _check_runs(fleet: Fleet, ids: list[str], timeout: float, started: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    runs = []
    for run_id in ids:
        remaining = max(1.0, deadline - time.monotonic())
        try:
            runs.append(fleet.client.wait_for_flow_run(run_id, timeout=remaining))
        except FlowRunTimeout:
            raise AssertionError(fleet.describe(run_id)) from None
    recovered = time.monotonic() - started
    duplicates = 0
    for run in runs:
        bad = [
            (t.slug, t.state.value, t.message) for t in run.task_runs if not t.state.is_successful
        ]
        assert run.state is State.SUCCESS, (run.id, run.message, bad)
        assert run.task_run("combine").result == ["B", "C"]
        names = sorted(
            fleet.client.get_flow_run(c, task_runs=False).flow_name for c in run.children
        )
        assert names == ["dup-A", "dup-B", "dup-C", "dup-D"], names
        for run_id in [run.id, *run.children]:
            with fleet.store.reading() as s:
                finished = s.execute(
                    select(StateEvent.task_run_id, func.count())
                    .where(StateEvent.flow_run_id == run_id,
                           StateEvent.state == State.SUCCESS.value,
                           StateEvent.task_run_id.is_not(None))
                    .group_by(StateEvent.task_run_id)
                ).all()  # fmt: skip
            duplicates += sum(n - 1 for _, n in finished)
    print(
        f"\n{name}: runs started {len(ids)}, runs finished {len(runs)}, "
        f"duplicates found {duplicates}, time to recover {recovered:.1f}s"
    )
    assert duplicates == 0


def test_sigkill_random_worker_processes(fresh_fleet: Fleet, tmp_path: Path) -> None:
    # Given three workers, a beat, and 50 Flow-of-Flows runs
    _prepare(fresh_fleet)
    for _ in range(3):
        fresh_fleet.start_worker(wait=False)
    for w in fresh_fleet.workers:
        w.wait_ready(backends(fresh_fleet.settings).app)
    rng = random.Random(7)
    with _beat(fresh_fleet):
        started = time.monotonic()
        ids = [
            fresh_fleet.client.create_flow_run("dup-parent", duplicating.PROJECT) for _ in range(50)
        ]
        # When a random worker process is SIGKILLed every 2 seconds, six times
        kills = []
        for _ in range(6):
            time.sleep(2)
            alive = [w for w in fresh_fleet.workers if w.proc.poll() is None]
            victims = [(w, pid) for w in alive for pid in [w.pid, *w.pool_pids()]]
            worker, pid = rng.choice(victims)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kills.append("main" if pid == worker.pid else "pool")
            if pid == worker.pid:
                fresh_fleet.start_worker(wait=False)  # keep three workers
        print(f"\nkilled: {kills}")
        # Then every run completes, with one child per node and nothing finished twice
        _check_runs(fresh_fleet, ids, 300, started, "SIGKILL workers")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if client.ping():
                return proc
        time.sleep(0.05)
    raise AssertionError("test redis-server did not start")


def test_redis_restarted_without_persistence(database_url: str, tmp_path: Path) -> None:
    # Given a Redis this test owns (no persistence), workers and a beat on it
    port = _free_port()
    server = _start_redis(port, tmp_path)
    (tmp_path / "home").mkdir()
    (tmp_path / "logs").mkdir()
    fleet = Fleet(tmp_path / "home", f"redis://127.0.0.1:{port}/0", database_url, tmp_path / "logs")
    try:
        _prepare(fleet)
        fleet.start_worker()
        fleet.start_worker()
        with _beat(fleet):
            started = time.monotonic()
            ids = [
                fleet.client.create_flow_run("dup-parent", duplicating.PROJECT) for _ in range(10)
            ]
            # When Redis dies in the middle of the runs and comes back empty
            time.sleep(1.0)
            server.kill()
            server.wait(10)
            time.sleep(1.0)
            server = _start_redis(port, tmp_path)
            # Then every run still finishes (the sweeper sends lost runs again)
            _check_runs(fleet, ids, 240, started, "Redis restart")
            # and no worker died of the lost connection
            dead = [w.hostname for w in fleet.workers if w.proc.poll() is not None]
            assert not dead, f"workers exited when Redis restarted: {dead}\n{fleet.logs()}"
    finally:
        fleet.stop()
        server.kill()
        server.wait(10)


def _outage(database_url: str, seconds: float) -> threading.Thread:
    """Make the database unreachable for a while: PostgreSQL connections are
    terminated again and again; SQLite is held under an exclusive lock."""

    def run() -> None:
        end = time.monotonic() + seconds
        if database_url.startswith("sqlite"):
            conn = sqlite3.connect(database_url.split("///", 1)[1], timeout=30)
            conn.isolation_level = None
            conn.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            conn.execute("ROLLBACK")
            conn.close()
            return
        from sqlalchemy import create_engine

        app_name = database_url.rsplit("application_name=", 1)[1].split("&")[0]
        engine = create_engine(database_url.split("?", 1)[0])
        with engine.connect() as conn:
            while time.monotonic() < end:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = :app AND pid <> pg_backend_pid()"),
                    {"app": app_name},
                )  # fmt: skip
                conn.commit()
                time.sleep(0.3)
        engine.dispose()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_database_unreachable_for_a_few_seconds(fresh_fleet: Fleet, tmp_path: Path) -> None:
    # Given workers and a beat, and ten Flow-of-Flows runs under way
    _prepare(fresh_fleet)
    fresh_fleet.start_worker()
    fresh_fleet.start_worker()
    with _beat(fresh_fleet):
        started = time.monotonic()
        ids = [
            fresh_fleet.client.create_flow_run("dup-parent", duplicating.PROJECT) for _ in range(10)
        ]
        # When the database is unreachable for five seconds
        time.sleep(0.5)
        _outage(fresh_fleet.settings.resolved_database_url(), 5.0).join()
        # Then every run still finishes
        _check_runs(fresh_fleet, ids, 240, started, "database outage")


pytestmark = pytest.mark.timeout(600)
