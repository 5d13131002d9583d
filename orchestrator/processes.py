"""Starting and stopping local worker and server processes, for ``orchestrator demo``,
the tests and the benchmarks (a fleet in production is started by its Procfile or
docker-compose). May import Celery, psutil and the core's errors."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
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


#: The line ``orchestrator server`` prints once it listens (its address and port).
SERVER_BANNER = re.compile(r"server on (?P<url>https?://\S+?)/? \(")


class ServerProcess:
    """One ``orchestrator server`` process started by us (``--port 0``: a free port).

    Args:
        env: its environment (settings and tokens).
        host: the address to listen on.
        port: the port (0: any free one; :attr:`url` tells which).
        log_path: where its output goes.
        extra: more options for ``orchestrator server``.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        extra: list[str] | None = None,
    ) -> None:
        cmd = [sys.executable, "-m", "orchestrator.cli", "server", "--host", host]
        cmd += ["--port", str(port), *(extra or [])]
        self.log_path = log_path or Path(os.devnull)
        self.url = ""
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def output(self) -> str:
        """What the server printed so far."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def wait_ready(self, timeout: float = 60) -> str:
        """Wait until the server answers; returns its base URL (``http://host:port``).

        Raises:
            BackendUnavailable: it exited or did not answer within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.output().strip().splitlines()[-5:]
                raise BackendUnavailable(
                    f"the server exited with {self.proc.returncode}: {' | '.join(tail)}"
                )
            found = SERVER_BANNER.search(self.output())
            if found:
                self.url = found.group("url").rstrip("/")
                if _answers(self.url + "/openapi.json"):
                    return self.url
            time.sleep(0.2)
        raise BackendUnavailable(f"the server did not answer within {timeout:g}s")

    def stop(self, timeout: float = 15) -> int | None:
        """Stop it (SIGTERM, then SIGKILL if it lingers); its exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def _answers(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, ValueError):
        return False
