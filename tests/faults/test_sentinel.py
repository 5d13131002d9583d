"""Redis without a single point of failure: a real master, a replica and three
sentinels on loopback (ports 6390-6399 and 26390-26399), the fleet on a
``sentinel://`` URL for broker, results, locks and leases alike. The master is
SIGKILLed mid-run: after the sentinels fail over to the replica every run finishes
with its four children, nothing is recorded twice, and every worker stays up."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.backends import backends
from tests.conftest import Fleet
from tests.faults.checks import busy_pool_process, check_parents, wait_all
from tests.flows import recovery

MASTER = "mymaster"
FAULT_ENV = {"ORCHESTRATOR_SWEEP_SECONDS": "2", "ORCHESTRATOR_STALE_SECONDS": "8"}


def _until(what: str, check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class SentinelSet:
    """A master, a replica and three sentinels (processes we started) in ``folder``."""

    def __init__(self, folder: Path, offset: int) -> None:
        self.master_port, self.replica_port = 6390 + offset, 6391 + offset
        self.sentinel_ports = [26390 + offset + i for i in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        for name, port, extra in [
            ("master", self.master_port, []),
            ("replica", self.replica_port, ["--replicaof", "127.0.0.1", str(self.master_port)]),
        ]:
            (folder / name).mkdir()
            self.procs[name] = self._start(
                ["redis-server", "--port", str(port), *common, "--dir", str(folder / name), *extra]
            )
        for port in self.sentinel_ports:
            conf = folder / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            self.procs[f"sentinel-{port}"] = self._start(["redis-server", str(conf), "--sentinel"])
        replica = redis.Redis(port=self.replica_port)
        _until(
            "the replica to sync", lambda: replica.info("replication")["master_link_status"] == "up"
        )
        for port in self.sentinel_ports:
            s = redis.Redis(port=port)
            _until("the sentinels to see the replica", lambda s=s: s.sentinel_slaves(MASTER))
            _until(
                "the sentinels to see each other",
                lambda s=s: len(s.sentinel_sentinels(MASTER)) >= 2,
            )

    @staticmethod
    def _start(cmd: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        """The fleet's ``sentinel://`` URL."""
        hosts = ";".join(f"sentinel://127.0.0.1:{p}/0" for p in self.sentinel_ports)
        return f"{hosts}?master_name={MASTER}"

    def master(self) -> int:
        """The port of the master the first sentinel names."""
        _, port = redis.Redis(port=self.sentinel_ports[0]).sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def kill_master(self) -> None:
        """SIGKILL the master and wait until the sentinels name the replica."""
        self.procs["master"].kill()
        self.procs["master"].wait(10)
        _until("the failover", lambda: self.master() == self.replica_port)

    def stop(self) -> None:
        """Kill every process and wait for it."""
        for proc in self.procs.values():
            proc.kill()
        for proc in self.procs.values():
            proc.wait(10)


@pytest.fixture()
def sentinels(database_url: str, tmp_path: Path) -> Iterator[SentinelSet]:
    """A fresh set, on ports of their own for each database."""
    s = SentinelSet(tmp_path, 0 if database_url.startswith("sqlite") else 4)
    try:
        yield s
    finally:
        s.stop()


def test_master_killed_mid_run_fails_over(
    sentinels: SentinelSet, database_url: str, tmp_path: Path
) -> None:
    # Given two workers on a sentinel:// URL (no beat) and 8 Flow-of-Flows runs
    (tmp_path / "home").mkdir()
    (tmp_path / "logs").mkdir()
    fleet = Fleet(tmp_path / "home", sentinels.url, database_url, tmp_path / "logs")
    try:
        fleet.env.update(FAULT_ENV)
        for flow in recovery.ALL:
            fleet.client.register(flow, recovery.PROJECT)
        fleet.start_worker(wait=False)
        fleet.start_worker(wait=False)
        for w in fleet.workers:
            w.wait_ready(backends(fleet.settings).app)
        ids = [fleet.client.create_flow_run("rec-parent", recovery.PROJECT) for _ in range(8)]
        # When the master is SIGKILLed while a task runs
        busy_pool_process(fleet)
        sentinels.kill_master()
        # Then every run finishes with its four children, nothing recorded twice
        runs = wait_all(fleet, ids, 300)
        assert check_parents(fleet, runs) == 0
        # and no worker died of the failover
        dead = [w.hostname for w in fleet.workers if w.proc.poll() is not None]
        assert not dead, f"workers exited: {dead}\n{fleet.logs()}"
    finally:
        fleet.stop()


pytestmark = pytest.mark.timeout(600)
