"""Prefect 3 beside us in the same run (not named ``prefect.py``: the seed script
next to it imports the real ``prefect``): its own virtual environment (created once
under ``bench/peers/``, pinned to :data:`VERSION`), its own server, the seed shape
run by ``prefect_seed.py`` there, and the seconds of each repetition back as samples.

Four configurations: nested flow runs in process ("subflows", on Prefect's ephemeral
server) and ``run_deployment`` of served flows waiting for each child ("deployments",
on a ``prefect server start`` of its own on a free loopback port), each with
Prefect's defaults and with its flow-run heartbeat off."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VERSION = "3.9.1"
HERE = Path(__file__).resolve().parent
VENV = HERE / f".prefect-{VERSION}"
SCRIPT = HERE / "prefect_seed.py"


class PeerError(Exception):
    """Prefect could not be installed, started or measured."""


@dataclass(frozen=True)
class Config:
    """One way of running the seed shape in Prefect."""

    mode: str  # "subflows" or "deployments"
    heartbeat: str  # "on" (as shipped) or "off"
    repeats: int

    @property
    def label(self) -> str:
        """How the table names it."""
        what = "subflows in process" if self.mode == "subflows" else "run_deployment, served"
        shipped = "as shipped" if self.heartbeat == "on" else "heartbeat off"
        return f"Prefect {VERSION} {what}, {shipped}"


def configs(quick: bool) -> list[Config]:
    """The configurations measured, fewer repetitions with ``quick`` (a served
    deployment as shipped takes about 10 s per child: its runner polls every 10 s)."""
    fast, slow = (5, 2) if quick else (15, 4)
    return [
        Config("subflows", "on", fast),
        Config("subflows", "off", fast),
        Config("deployments", "on", slow),
        Config("deployments", "off", slow),
    ]


def python() -> Path:
    """The virtual environment's Python, created and filled first when missing."""
    exe = VENV / "bin" / "python"
    if exe.exists():
        return exe
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(exe), "-m", "pip", "install", "--quiet", f"prefect=={VERSION}"],
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        raise PeerError(f"could not install prefect=={VERSION} into {VENV}: {exc}") from exc
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(exe: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """A ``prefect server start`` on a free loopback port; its API URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(exe), "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise PeerError(f"prefect server exited with {proc.returncode}; see {log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/health", timeout=2) as answer,
            ):
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise PeerError(f"prefect server did not answer in 120 s; see {log}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(config: Config, timeout: float, workdir: Path) -> list[float]:
    """The seconds of each repetition of the seed shape under ``config``."""
    exe = python()
    home = Path(tempfile.mkdtemp(prefix=f"prefect-{config.mode}-", dir=workdir))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_HOME": str(home),
        "BENCH_PREFECT_HEARTBEAT": config.heartbeat,
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # the ephemeral server's start (not timed) can take more than its default 20 s
        # on a busy machine
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    with contextlib.ExitStack() as stack:
        if config.mode == "deployments":
            env["PREFECT_API_URL"] = stack.enter_context(_server(exe, env, home / "server.log"))
        try:
            done = subprocess.run(
                [str(exe), str(SCRIPT), config.mode, str(config.repeats)],
                env=env, cwd=HERE, capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise PeerError(f"no answer in {timeout:g} s") from exc
    (home / "seed.log").write_text(done.stdout + done.stderr)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr or done.stdout or "no output").strip().splitlines()[-1]
        raise PeerError(f"exited with {done.returncode}: {last} (see {home / 'seed.log'})")
    return [float(s) for s in json.loads(lines[-1])["seconds"]]
