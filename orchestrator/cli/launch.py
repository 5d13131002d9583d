"""What the commands that start the fleet's processes share (``worker``, ``flower``,
``beat``, ``demo``): a one-line description of the backends a process serves, the
check for an option already given to Celery, ``--metrics-port`` and its environment,
and replacing this process with a Celery command.

May import :mod:`orchestrator.embedded`, :mod:`orchestrator.config` and the core's
errors; never a command module."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

import orchestrator.embedded as embedded
from orchestrator.config import Settings, hide_password
from orchestrator.errors import ConfigurationError

#: click context settings of a command whose unknown options go to Celery unchanged.
PASS_THROUGH: dict[str, Any] = {
    "ignore_unknown_options": True,
    "allow_extra_args": True,
    "help_option_names": ["-h", "--help"],
}


def describe_backends(settings: Settings) -> str:
    """Which Redis and database a process serves, passwords hidden, in one line."""
    if settings.redis_url:
        redis_part = f"Redis {hide_password(settings.redis_url)}"
    else:
        redis_part = f"embedded Redis {embedded.socket_path(settings.home)}"
    return (
        f"{redis_part}, database {hide_password(settings.resolved_database_url())}, "
        f"queue {settings.queue}"
    )


def has_option(args: Sequence[str], short: str, long: str) -> bool:
    """Whether ``args`` already set an option, as ``-x``, ``-xVALUE``, ``--long[=v]``."""
    for a in args:
        if a in (short, long) or a.startswith(long + "="):
            return True
        if a.startswith(short) and not a.startswith("--") and len(a) > len(short):
            return True
    return False


def exec_command(argv: list[str], env: Mapping[str, str] | None = None, what: str = "") -> None:
    """Replace this process with ``argv`` (stdio flushed first).

    Args:
        argv: the command line.
        env: its environment (default: this process's).
        what: how to name it in the error (default: its first words).

    Raises:
        ConfigurationError: it could not be started.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if env is None:
            os.execvp(argv[0], argv)
        else:
            os.execvpe(argv[0], argv, dict(env))
    except OSError as exc:
        raise ConfigurationError(f"could not start {what or ' '.join(argv[:4])}: {exc}") from None


#: ``--metrics-port`` of ``worker`` and ``beat``.
metrics_port_option = click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    envvar="ORCHESTRATOR_METRICS_PORT",
    help="Serve Prometheus metrics on this port at /metrics (also from ORCHESTRATOR_METRICS_PORT).",
)


def metrics_env(port: int | None, home: Path, pool: bool = True) -> dict[str, str]:
    """The environment of a worker or beat serving ``/metrics`` on ``port``: the port,
    and for a worker's ``pool`` a fresh ``PROMETHEUS_MULTIPROC_DIR`` under ``home``
    unless one is set (a prefork pool's processes count in files there)."""
    env = dict(os.environ)
    if port is None:
        return env
    with socket.socket() as probe:  # a clear error now, not a traceback in the worker
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            raise ConfigurationError(f"--metrics-port {port}: {exc.strerror or exc}") from None
    env["ORCHESTRATOR_METRICS_PORT"] = str(port)
    if pool and not env.get("PROMETHEUS_MULTIPROC_DIR"):
        home.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-", dir=home)
    return env
