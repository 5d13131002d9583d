"""Deploying a fleet: the docker-compose file and Dockerfile (parsed: Docker does not
run here), the Procfile run for real by honcho against the test Redis and database,
and workers stopped with SIGTERM in the middle of a flow."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from honcho.environ import parse_procfile

from orchestrator import State
from orchestrator.backends import backends
from orchestrator.cli import main
from orchestrator.cli.fleet import describe_backends
from orchestrator.config import Settings
from tests.conftest import ROOT, Fleet, fresh_database
from tests.flows import deploy
from tests.integration.helpers import finished_counts
from tests.integration.test_flower import FlowerProcess, free_port

COMPOSE = ROOT / "docker-compose.yml"
PROCFILE = ROOT / "Procfile"
REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|(^|_)KEY$", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://(?:\$\{[^}]*\}|[^\s:/@$])*:(?P<password>(?:\$\{[^}]*\}|[^\s@$])*)@")


# --- the compose file, the Dockerfile and the Procfile, parsed -----------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def ours(service: dict[str, Any]) -> bool:
    """Whether a service runs our image (the others are Redis and PostgreSQL)."""
    return "build" in service


def resolve(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Split ``orchestrator ...`` arguments into the command path in our CLI and the rest."""
    import click

    assert tokens and tokens[0] == "orchestrator", tokens
    path: list[str] = []
    command: click.Command = main
    rest = tokens[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        found = command.get_command(click.Context(command), rest[0])
        assert found is not None, f"orchestrator has no command {' '.join([*path, rest[0]])!r}"
        path.append(rest[0])
        command, rest = found, rest[1:]
    assert not isinstance(command, click.Group), f"{' '.join(path)} needs a subcommand"
    return path, rest


def assert_command_exists(tokens: list[str]) -> None:
    """``tokens`` is an ``orchestrator`` command our CLI has, with options it accepts."""
    import click

    path, rest = resolve(tokens)
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, (path, result.output)
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.get_command(click.Context(command), name)  # type: ignore[assignment]
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    passes_through = bool(command.context_settings.get("allow_extra_args"))
    for option in (t.split("=", 1)[0] for t in rest if t.startswith("-")):
        if option in known:
            continue
        # worker and beat pass other options to Celery: Celery must know them
        assert passes_through, f"orchestrator {' '.join(path)} has no option {option}"
        celery = subprocess.run(
            [sys.executable, "-m", "celery", path[0], "--help"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert option in celery.stdout, f"celery {path[0]} has no option {option}"


def test_every_compose_service_runs_a_command_of_our_cli(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "postgres", "migrate", "worker", "beat", "flower", "server"} <= set(services)
    for service in services.values():
        if ours(service):
            assert_command_exists(list(service["command"]))
    assert services["migrate"]["command"] == ["orchestrator", "db", "upgrade"]
    assert services["worker"]["command"][:2] == ["orchestrator", "worker"]
    assert services["beat"]["command"][:2] == ["orchestrator", "beat"]
    assert services["flower"]["command"][:2] == ["orchestrator", "flower"]
    assert "--unauthenticated" not in services["flower"]["command"]
    # the server listens on the container's every address, so it needs its token
    server = services["server"]
    assert server["command"][:2] == ["orchestrator", "server"]
    assert server["command"][server["command"].index("--host") + 1] == "0.0.0.0"
    token = server["environment"]["ORCHESTRATOR_SERVER_TOKEN"]
    assert REF.fullmatch(token) and ":?" in token, token
    assert server["ports"] == ["${SERVER_BIND:-127.0.0.1:4200}:4200"]


def test_the_worker_service_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    # no fixed name, host port or hostname: `docker compose up --scale worker=4` works,
    # and each replica is its own Celery node (celery@<container id>)
    for fixed in ("container_name", "ports", "hostname"):
        assert fixed not in worker, fixed
    assert "replicas" not in (worker.get("deploy") or {})
    # it has time to finish its tasks on SIGTERM before Docker kills it
    assert worker["stop_grace_period"]
    assert worker.get("init") is True  # tini forwards SIGTERM to the worker's main process
    # and only one beat
    beat = compose["services"]["beat"]
    assert "replicas" not in (beat.get("deploy") or {})


def test_services_are_healthy_before_their_dependents_start(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("redis", "postgres", "worker", "flower", "server"):
        assert services[name]["healthcheck"]["test"], name
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "--appendonly yes" in " ".join(services["redis"]["command"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "beat", "flower", "server"):
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
    # Redis and PostgreSQL keep their data in volumes
    assert "redis-data" in compose["volumes"] and "postgres-data" in compose["volumes"]


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key, string value) in a parsed YAML document, list items under their key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)
    elif isinstance(node, str):
        yield key, node


def is_reference(value: str) -> bool:
    """A value that is one ``${VAR}`` (or ``${VAR:?message}``) and no literal default."""
    m = REF.fullmatch(value)
    return m is not None and (m.group("op") or "").lstrip(":") in ("", "?")


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    found = list(_strings(compose))
    secrets = [(k, v) for k, v in found if SECRET_KEY.search(k)]
    assert {k for k, _ in secrets} >= {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH"}
    for key, value in secrets:
        assert is_reference(value), f"{key}: {value!r} is not a ${{...}} reference"
    urls = [(k, v, m.group("password")) for k, v in found for m in URL_PASSWORD.finditer(v)]
    assert urls, "the connection URLs should carry their passwords as references"
    for key, value, password in urls:
        assert is_reference(password), f"{key}: the password in {value!r} is written out"
    # no secret is given a default value that would be used when .env lacks it
    text = COMPOSE.read_text()
    for m in REF.finditer(text):
        if SECRET_KEY.search(m.group("name")):
            assert m.group("op") in (None, ":?", "?"), m.group(0)


def test_env_example_lists_every_variable_and_env_stays_out_of_git_and_images(
    compose: dict[str, Any],
) -> None:
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.M))
    used = {m.group("name") for m in REF.finditer(COMPOSE.read_text())}
    used |= {m.group("name") for m in REF.finditer(PROCFILE.read_text())}
    assert used - listed == set(), f"missing in .env.example: {sorted(used - listed)}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    readme = (ROOT / "README.md").read_text()
    assert "cp .env.example .env" in readme


def test_dockerfile_installs_the_project_and_runs_as_a_user() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    assert any(ln.startswith("FROM python:3.11-slim") for ln in lines)
    assert any("pip install" in ln for ln in lines)
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_procfile_runs_worker_beat_flower_and_server() -> None:
    procfile = parse_procfile(PROCFILE.read_text())
    assert set(procfile.processes) == {"worker", "beat", "flower", "server"}
    for name, command in procfile.processes.items():
        tokens = command.split()
        assert tokens[:2] == ["orchestrator", name], command
        resolve(tokens[:2])
    assert "--unauthenticated" not in procfile.processes["flower"]
    assert '--host "${SERVER_HOST:-127.0.0.1}"' in procfile.processes["server"]


def test_worker_banner_hides_passwords() -> None:
    settings = Settings(
        home=Path("/tmp/x"),
        redis_url="rediss://:redis-secret@redis.example:6380/0",
        database_url="postgresql+psycopg://app:db-secret@db.example/orchestrator",
        queue="jobs",
    )
    line = describe_backends(settings)
    assert "redis-secret" not in line and "db-secret" not in line
    assert "rediss://:***@redis.example:6380/0" in line
    assert "postgresql+psycopg://app:***@db.example/orchestrator" in line and "queue jobs" in line


# --- the Procfile, run for real by honcho -------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database for this test alone (its beat fires every schedule in it)."""
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture()
def own_fleet(own_database: str, redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    """A fleet (no workers yet) on the test Redis and its own database. A PostgreSQL
    URL without a password gets one, which the server (accepting none) ignores: the
    processes must not print it."""
    home = tmp_path / "home"
    home.mkdir()
    url = own_database
    if url.startswith("postgresql"):
        url = _with_password(url, "db-pw-hidden")
    fleet = Fleet(home, redis_url, url, tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop()
        fleet.store.close()


def _with_password(url: str, password: str) -> str:
    """``url`` with a password for its user (PostgreSQL with trust auth ignores it)."""
    return re.sub(r"://([^:/@]+)@", rf"://\1:{password}@", url, count=1)


class Honcho:
    """``honcho start`` of the repository's Procfile, its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, env_file: Path) -> None:
        self.log_path = log_path
        cmd = ["honcho", "start", "-f", str(PROCFILE), "-e", str(env_file), "--no-colour"]
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """The processes honcho started, by name."""
        return {
            m[0]: int(m[1]) for m in re.findall(r"(\w+)\.\d+ started \(pid=(\d+)\)", self.output)
        }

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM honcho's process group, wait, and kill whatever is left."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for pid in self.pids().values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # each honcho process has its own group
        return self.proc.returncode


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie not reaped yet counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_honcho_runs_the_procfile_and_a_flow_runs_through_it(
    own_fleet: Fleet, tmp_path: Path, project: str
) -> None:
    # Given the test Redis, a database of its own, a unique queue and Flower's login,
    # as a user's .env would give them
    fleet = own_fleet
    port = free_port()
    server_port = free_port()
    env = {
        **fleet.env,
        "SERVER_PORT": str(server_port),
        "FLOWER_BASIC_AUTH": "ops:flower-pw",
        "FLOWER_PORT": str(port),
        "FLOWER_ADDRESS": "127.0.0.1",
        "WORKER_CONCURRENCY": "2",
        "PYTHONUNBUFFERED": "1",
    }
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    fleet.client.register(deploy.watched, project)
    # When `honcho start` runs the Procfile as it is
    honcho = Honcho(env, tmp_path / "honcho.log", empty_env)
    try:
        run_id = fleet.client.create_flow_run("watched", project)
        try:
            info = fleet.client.wait_for_flow_run(run_id, timeout=120)
        except Exception as exc:
            raise AssertionError(f"{exc}\n{honcho.output}") from exc
        # Then the flow runs through its worker to Success
        assert info.state is State.SUCCESS, (info.message, honcho.output)
        assert {tr.state for tr in info.task_runs} == {State.SUCCESS}
        # Flower answers with the Procfile's basic auth and lists the worker
        flower = FlowerProcess(honcho.proc, f"http://127.0.0.1:{port}", honcho.log_path)
        deadline = time.monotonic() + 60
        workers: dict[str, Any] = {}
        while time.monotonic() < deadline and not workers:
            try:
                workers = flower.get("/api/workers?refresh=1", auth=("ops", "flower-pw"))
            except Exception:
                time.sleep(0.5)
        assert [w for w in workers if w.startswith("worker-")], (workers, honcho.output)
        assert flower.status("/api/workers") == 401
        # the server answers on its port, with the run in its list of roots
        server = f"http://127.0.0.1:{server_port}"
        roots: list[str] = []
        while time.monotonic() < deadline and not roots:
            try:
                answer = httpx.get(
                    f"{server}/api/flow-runs?root=true&project={project}", timeout=10
                )
                roots = [r["id"] for r in answer.json()["runs"]]
            except httpx.TransportError:
                time.sleep(0.5)
        assert roots == [run_id], honcho.output
        # and all four processes said what they serve, passwords hidden
        output = honcho.output
        assert re.search(r"worker\.1\s+\| worker serving Redis redis", output), output
        assert f"queue {fleet.queue}" in output
        assert re.search(r"beat\.1\s+\| beat firing schedules", output), output
        assert re.search(r"flower\.1\s+\| flower on http://127\.0\.0\.1:\d+ \(basic auth\)", output)
        assert re.search(rf"server\.1\s+\| server on {server} \(no auth", output), output
        assert "db-pw-hidden" not in output and "flower-pw" not in output
        pids = honcho.pids()
        assert set(pids) == {"worker", "beat", "flower", "server"}
    finally:
        # When honcho is stopped (SIGTERM to its process group)
        code = honcho.stop()
    # Then it stops every process it started
    assert code is not None, honcho.output
    assert "sending SIGTERM" in honcho.output or "SIGTERM received" in honcho.output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.2)
    assert not [n for n, p in pids.items() if _alive(p)], honcho.output


def test_stopping_honcho_mid_task_loses_nothing(
    own_fleet: Fleet, tmp_path: Path, project: str
) -> None:
    # Given the Procfile under honcho, running a flow whose S1 and S2 sleep 3 s
    fleet = own_fleet
    env = {
        **fleet.env,
        "FLOWER_BASIC_AUTH": "ops:flower-pw",
        "FLOWER_PORT": str(free_port()),
        "SERVER_PORT": str(free_port()),
        "WORKER_CONCURRENCY": "2",
    }
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    fleet.client.register(deploy.sigterm, project)
    honcho = Honcho(env, tmp_path / "honcho.log", empty_env)
    try:
        run_id = fleet.client.create_flow_run("sigterm", project)
        deadline = time.monotonic() + 90
        running: list[str] = []
        while time.monotonic() < deadline and not running:
            info = fleet.client.get_flow_run(run_id)
            running = [
                t.slug
                for t in info.task_runs
                if t.state is State.RUNNING and t.slug in ("S1", "S2")
            ]
            time.sleep(0.05)
        assert running, honcho.output
    finally:
        # When honcho is stopped in the middle of them: it sends SIGTERM to each
        # process group, so the worker's pool processes end at once
        honcho.stop()
    # Then their messages went back to the queue (acks_late, reject_on_worker_lost):
    # a worker started afterwards completes the run, each task's code finishing once
    fleet.start_worker()
    info = fleet.client.wait_for_flow_run(run_id, timeout=120)
    assert info.state is State.SUCCESS, (info.message, fleet.logs(), honcho.output)
    assert finished_counts(fleet, run_id) == dict.fromkeys(["A", "S1", "S2", "R", "Z"], 1)


# --- SIGTERM: a worker finishes what it holds, or gives it back -------------------------


def _task_runs_on(fleet: Fleet, run_id: str, pids: set[int], slugs: set[str]) -> dict[str, str]:
    """The given task runs Running in one of these processes: slug -> worker."""
    info = fleet.client.get_flow_run(run_id)
    out = {}
    for tr in info.task_runs:
        running = tr.slug in slugs and tr.state is State.RUNNING and tr.worker
        if running and int(tr.worker.rsplit(":", 1)[1]) in pids:
            out[tr.slug] = tr.worker
    return out


def test_sigterm_mid_flow_lets_the_worker_finish_its_tasks(
    fresh_fleet: Fleet, project: str
) -> None:
    # Given two workers, and a flow A -> (S1, S2 sleeping 3 s, R retrying in 3 s) -> Z
    fleet = fresh_fleet
    fleet.client.register(deploy.sigterm, project)
    workers = [fleet.start_worker(concurrency=2), fleet.start_worker(concurrency=2)]
    run_id = fleet.client.create_flow_run("sigterm", project)
    # When the worker running a sleeping task gets SIGTERM in the middle of it
    deadline = time.monotonic() + 60
    victim, held = None, {}
    while time.monotonic() < deadline and not held:
        for w in workers:
            held = _task_runs_on(fleet, run_id, set(w.pool_pids()), {"S1", "S2"})
            if held:
                victim = w
                break
        time.sleep(0.05)
    assert victim is not None and held, fleet.logs()
    victim.kill(signal.SIGTERM)
    # Then it finishes what it holds and exits cleanly, within the task's time
    try:
        code = victim.proc.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker did not exit after SIGTERM\n{fleet.logs()}") from None
    assert code == 0, fleet.logs()
    assert "Warm shutdown" in (victim.log_path.read_text() if victim.log_path else "")
    # and the flow completes on the other worker
    info = fleet.client.wait_for_flow_run(run_id, timeout=90)
    assert info.state is State.SUCCESS, (info.message, fleet.logs())
    # the tasks it held finished where they ran, on their first attempt
    for slug, where in held.items():
        tr = info.task_run(slug)
        assert (tr.state, tr.attempts, tr.worker) == (State.SUCCESS, 1, where), tr
    # and every task's code finished exactly once
    assert finished_counts(fleet, run_id) == dict.fromkeys(["A", "S1", "S2", "R", "Z"], 1)


def test_sigterm_gives_back_a_waiting_retry_to_another_worker(
    fresh_fleet: Fleet, project: str
) -> None:
    # Given one worker holding a task's retry, due in 8 s (a message with an ETA)
    fleet = fresh_fleet
    fleet.client.register(deploy.retry_later, project)
    w1 = fleet.start_worker(concurrency=1)
    run_id = fleet.client.create_flow_run("retry-later", project)
    app = backends(fleet.settings).app
    deadline = time.monotonic() + 30
    scheduled: list[Any] = []
    while time.monotonic() < deadline and not scheduled:
        found = app.control.inspect([w1.hostname], timeout=1).scheduled() or {}
        scheduled = found.get(w1.hostname) or []
        time.sleep(0.2)
    assert scheduled, fleet.logs()
    assert fleet.client.get_flow_run(run_id).task_run("R").state is State.RETRYING
    # When it gets SIGTERM before the retry is due
    started = time.monotonic()
    w1.kill(signal.SIGTERM)
    assert w1.proc.wait(30) == 0, fleet.logs()
    # Then it exits without waiting for the retry, giving the message back
    assert time.monotonic() - started < 8, "the worker waited for the ETA"
    # and a worker started afterwards runs the retry: the run completes, once
    fleet.start_worker(name=f"w2-{uuid.uuid4().hex[:4]}@%h")
    info = fleet.client.wait_for_flow_run(run_id, timeout=60)
    assert info.state is State.SUCCESS, (info.message, fleet.logs())
    assert info.task_run("R").attempts == 2
    assert finished_counts(fleet, run_id) == {"R": 1}
