"""Starting and stopping local worker processes, for ``orchestrator demo``, the
tests and the benchmarks (a fleet in production is started by its Procfile or
docker-compose). May import Celery, psutil and the core's errors."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import psutil
from celery import Celery

from orchestrator.errors import BackendUnavailable


class WorkerProcess:
    """One ``celery -A workers worker`` process started by us.

    Args:
        hostname: the worker's node name (``name@host``).
        env: its environment.
        concurrency: pool processes.
        pool: the Celery pool (prefork, solo, threads).
        queues: queues to consume (default: the configured one).
        log_path: where its output goes.
    """

    def __init__(
        self,
        hostname: str,
        env: Mapping[str, str],
        concurrency: int = 2,
        pool: str = "prefork",
        queues: str | None = None,
        log_path: Path | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.hostname = hostname
        cmd = [sys.executable, "-m", "celery", "-A", "workers", "worker"]
        cmd += ["--hostname", hostname, "--concurrency", str(concurrency), "--pool", pool]
        cmd += ["--loglevel", "INFO", "--without-mingle", "--without-gossip"]
        if queues:
            cmd += ["--queues", queues]
        cmd += extra or []
        self.log_path = log_path
        with open(log_path or os.devnull, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        """The worker's main process id."""
        return self.proc.pid

    def pool_pids(self) -> list[int]:
        """The worker's pool (child) process ids."""
        try:
            return [c.pid for c in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def wait_ready(self, app: Celery, timeout: float = 60) -> None:
        """Wait until the worker answers a ping."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackendUnavailable(
                    f"worker {self.hostname} exited with {self.proc.returncode}; "
                    f"see {self.log_path}"
                )
            with contextlib.suppress(Exception):
                if app.control.ping(destination=[self.hostname], timeout=0.5):
                    return
            time.sleep(0.2)
        raise BackendUnavailable(f"worker {self.hostname} did not start in {timeout:g}s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the worker's main process."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        """Stop warmly (SIGTERM), then kill the whole process group if it lingers."""
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
