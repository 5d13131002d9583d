"""``orchestrator worker`` and ``flower``: running the fleet's processes (``beat``
is in :mod:`orchestrator.cli.schedules`).

May import :mod:`~orchestrator.cli.launch`, the backends and the core; no other
command module."""

from __future__ import annotations

import os
import sys

import click

import orchestrator.embedded as embedded
from orchestrator.backends import backends
from orchestrator.cli.launch import (
    PASS_THROUGH,
    describe_backends,
    exec_command,
    has_option,
    metrics_env,
    metrics_port_option,
)
from orchestrator.config import Settings, is_loopback
from orchestrator.errors import ConfigurationError

__all__ = ["COMMANDS", "describe_backends", "flower", "has_option", "worker"]


def _ensure_backends(settings: Settings) -> bool:
    """Check Redis and the database answer (starting the embedded Redis if needed).

    Returns:
        True when this process started the embedded Redis.
    """
    backends(settings)
    return settings.embedded_redis and embedded.started_here(settings.home)


@click.command(context_settings=PASS_THROUGH, add_help_option=True)
@metrics_port_option
@click.pass_context
def worker(ctx: click.Context, metrics_port: int | None) -> None:
    """Start a Celery worker of the fleet (`celery -A workers worker`).

    Consumes the configured queue (ORCHESTRATOR_QUEUE, default "orchestrator")
    unless -Q/--queues is given. With --metrics-port, serves its Prometheus
    metrics (summed over its pool's processes) at /metrics. Every other option
    goes to Celery unchanged, for example --concurrency/-c, --pool/-P,
    --hostname/-n, --loglevel/-l.
    """
    settings = Settings.from_env()
    env = metrics_env(metrics_port, settings.home)
    started = _ensure_backends(settings)
    args = list(ctx.args)
    if not has_option(args, "-Q", "--queues"):
        args = ["-Q", settings.queue, *args]
    if not has_option(args, "-l", "--loglevel"):
        args += ["--loglevel", "INFO"]
    note = ""
    if started:
        note = " (embedded Redis started; it keeps running for other processes of this home)"
    click.echo(f"worker serving {describe_backends(settings)}{note}", err=True)
    exec_command([sys.executable, "-m", "celery", "-A", "workers", "worker", *args], env)


#: Flower options that decide where it listens and who may look: given after the
#: command's own options (Flower spells them with ``-`` or ``_``), they are taken as
#: the command's own, so the auth rule and the banner see them.
_LIFTED = {"address": "address", "port": "port", "basic-auth": "basic_auth"}
#: Flower options that could undo the auth rule out of sight: refused.
_REFUSED = ("conf", "unix-socket", "auth-provider")


def flower_args(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split the options passed through to Flower into the ones the command checks
    itself (:data:`_LIFTED`, by its own names) and the rest.

    Raises:
        ConfigurationError: an option of :data:`_REFUSED` was given.
    """
    lifted: dict[str, str] = {}
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        name, eq, value = arg.lstrip("-").partition("=")
        name = name.replace("_", "-") if arg.startswith("-") else ""
        if name in _REFUSED:
            raise ConfigurationError(
                f"orchestrator flower does not pass --{name} to Flower: it could change "
                "where Flower listens or its auth; give --address, --port and --basic-auth"
            )
        if name in _LIFTED:
            lifted[_LIFTED[name]] = value if eq else next(it, "")
            continue
        rest.append(arg)
    return lifted, rest


def _port(text: str) -> int:
    """A port given through to Flower."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise click.BadParameter(f"{text!r} is not a port (1 to 65535)", param_hint="--port")
    return int(text)


@click.command(context_settings=PASS_THROUGH)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5555,
    show_default=True,
    envvar="FLOWER_PORT",
    help="The port to listen on (also from FLOWER_PORT).",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    envvar="FLOWER_ADDRESS",
    help="The address to listen on (also from FLOWER_ADDRESS).",
)
@click.option(
    "--basic-auth",
    envvar="FLOWER_BASIC_AUTH",
    metavar="USER:PASSWORD[,...]",
    help="Require HTTP basic auth (also from FLOWER_BASIC_AUTH).",
)
@click.option("--unauthenticated", is_flag=True, help="Allow no auth (only on a loopback address).")
@click.pass_context
def flower(
    ctx: click.Context, port: int, address: str, basic_auth: str | None, unauthenticated: bool
) -> None:
    """Start Flower on the fleet's broker, to watch workers and tasks.

    Flower shows task arguments and can stop workers, so it needs --basic-auth
    unless it listens on a loopback address and --unauthenticated is given.
    Other options go to Flower unchanged, except --address, --port and --basic-auth
    (taken as this command's own wherever they are given) and --conf, --unix-socket
    and --auth-provider (refused); Flower reads no flowerconfig.py here.
    """
    lifted, passed = flower_args(list(ctx.args))
    address = lifted.get("address", address)
    port = _port(lifted["port"]) if "port" in lifted else port
    basic_auth = lifted.get("basic_auth", basic_auth)
    if basic_auth:
        for pair in basic_auth.split(","):
            user, sep, password = pair.partition(":")
            if not sep or not user or not password:
                raise click.BadParameter(
                    "expected USER:PASSWORD[,USER:PASSWORD...]", param_hint="--basic-auth"
                )
    elif not unauthenticated:
        raise ConfigurationError(
            "Flower needs --basic-auth USER:PASSWORD (or FLOWER_BASIC_AUTH); "
            "--unauthenticated is allowed only on a loopback address"
        )
    elif not is_loopback(address):
        raise ConfigurationError(
            f"refusing to serve Flower without auth on {address}: use --basic-auth, "
            "or a loopback --address such as 127.0.0.1"
        )
    settings = Settings.from_env()
    _ensure_backends(settings)
    env = dict(os.environ)
    env.pop("FLOWER_BASIC_AUTH", None)
    if basic_auth:
        env["FLOWER_BASIC_AUTH"] = basic_auth  # not on the command line, where ps shows it
    auth = "basic auth" if basic_auth else "no auth"
    click.echo(
        f"flower on http://{address}:{port} ({auth}) watching {describe_backends(settings)}",
        err=True,
    )
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers",
        "flower",
        f"--port={port}",
        f"--address={address}",
        f"--conf={os.devnull}",
        *passed,
    ]
    exec_command(argv, env)


COMMANDS: list[click.Command] = [worker, flower]
