"""``orchestrator server``: the REST API under ``/api`` and the pages under ``/``, served
by uvicorn from :mod:`orchestrator.server` (started by its import reference, as
``worker`` starts ``celery -A workers``: the CLI and the server are siblings that do
not import each other).

It listens on 127.0.0.1 unless told otherwise; any other address needs
``ORCHESTRATOR_SERVER_TOKEN``, and without it the command stops at once with one
line naming the variable. May import :mod:`~orchestrator.cli.launch`, uvicorn, the
backends and the core."""

from __future__ import annotations

import socket

import click
import uvicorn

from orchestrator.backends import backends
from orchestrator.cli.launch import describe_backends
from orchestrator.config import ServerAuth, Settings
from orchestrator.errors import ConfigurationError

#: The app factory uvicorn serves.
APP = "orchestrator.server.app:create_app"
#: The default port (Prefect's UI port, for those who come from it).
DEFAULT_PORT = 4200


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free one).

    Raises:
        ConfigurationError: the address cannot be used (in use, unknown, not ours).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@click.command("server")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="ORCHESTRATOR_SERVER_HOST",
    help="The address to listen on (also ORCHESTRATOR_SERVER_HOST); any but a loopback "
    "one needs ORCHESTRATOR_SERVER_TOKEN.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    envvar="ORCHESTRATOR_SERVER_PORT",
    help="The port (also ORCHESTRATOR_SERVER_PORT; 0: a free one).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="uvicorn's log level (info logs each request).",
)
def server(host: str, port: int, log_level: str) -> None:
    """Serve the REST API (/api, docs at /docs) and the pages (/) of the runs.

    The pages show root runs with their trees' states rolled up, each run's tree
    with live states, timeline and logs, and the flows, schedules and limits. With
    ORCHESTRATOR_SERVER_TOKEN set, API calls need `Authorization: Bearer <token>`
    and the pages a login; ORCHESTRATOR_SERVER_READ_TOKEN may look but not create
    or cancel runs.
    """
    auth = ServerAuth.from_env()
    problem = auth.problem(host)
    if problem:
        raise ConfigurationError(problem)
    settings = Settings.from_env()
    store = backends(settings).store  # Redis and the database answer, or one clear line
    if not settings.embedded_database:
        store.check_migrated()
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    how = "token auth" if auth.enabled else "no auth, loopback only"
    if auth.read_token:
        how += ", read-only token"
    click.echo(
        f"server on {_url(host, bound)} ({how}) serving {describe_backends(settings)}", err=True
    )
    config = uvicorn.Config(
        APP, factory=True, log_level=log_level, timeout_graceful_shutdown=3, server_header=False
    )
    uvicorn.Server(config).run(sockets=[sock])


COMMANDS: list[click.Command] = [server]
