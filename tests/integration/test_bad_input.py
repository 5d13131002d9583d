"""Bad input gets one clear error (an API exception and one CLI line), and leaves no
partial rows and no stuck run."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pendulum
import pytest
from sqlalchemy import func, select

from orchestrator import (
    BackendUnavailable,
    ConcurrencyLimitError,
    Flow,
    FlowNotFound,
    FlowValidationError,
    ParameterError,
    ScheduleError,
    SerializationError,
    State,
    task,
)
from orchestrator.client import Client
from orchestrator.config import Settings
from orchestrator.db.models import FlowRun
from orchestrator.loader import flows_in
from orchestrator.parameters import MAX_PARAMETERS_BYTES
from orchestrator.schedules import CronSchedule, schedule_from_dict
from tests.conftest import Fleet
from tests.flows import bad
from tests.integration.helpers import celery_work_of
from tests.integration.servers import (
    PostgresServer,
    postgres_checking_passwords,
    redis_requiring_password,
)
from tests.integration.test_cli import cli


def _runs(fleet: Fleet) -> int:
    with fleet.store.reading() as s:
        return int(s.scalar(select(func.count()).select_from(FlowRun)) or 0)


@pytest.fixture()
def registered(fleet: Fleet) -> Fleet:
    fleet.client.register(bad.takes_payload, bad.PROJECT)
    return fleet


@pytest.mark.parametrize(
    ("params", "error", "words"),
    [
        ({"payload": {1, 2}}, SerializationError, ["takes-payload", "set"]),
        ({"payload": object()}, SerializationError, ["object"]),
        ({"payload": "x" * (MAX_PARAMETERS_BYTES + 10)}, SerializationError, ["limit"]),
        ({"paylod": 1}, ParameterError, ["paylod", "payload"]),
        ([1, 2], ParameterError, ["mapping"]),
    ],
)
def test_malformed_parameters_are_refused_before_any_row(
    registered: Fleet, params: object, error: type[Exception], words: list[str]
) -> None:
    before = _runs(registered)
    with pytest.raises(error) as info:
        registered.client.create_flow_run("takes-payload", bad.PROJECT, parameters=params)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert _runs(registered) == before


def test_unknown_flow_and_project(registered: Fleet) -> None:
    with pytest.raises(FlowNotFound, match="takes-payload"):  # lists the project's flows
        registered.client.create_flow_run("nope", bad.PROJECT)
    with pytest.raises(FlowNotFound, match="no project 'ghost'"):
        registered.client.create_flow_run("takes-payload", "ghost")
    result = cli(registered.env, "run", "nope", "--project", bad.PROJECT)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error:")


def test_cyclic_flow_is_refused_when_built() -> None:
    @task
    def step(x: object = None) -> object:
        return x

    with pytest.raises(FlowValidationError, match="cycle"), Flow("loop"):
        a = step()
        b = step(a)
        a.set_upstream(b)


@pytest.mark.parametrize("cron", ["61 * * * *", "not a cron", "* * *"])
def test_invalid_cron_strings(cron: str) -> None:
    with pytest.raises(ScheduleError, match="cron"):
        CronSchedule(cron)


def test_invalid_time_zone_and_naive_dates() -> None:
    with pytest.raises(ScheduleError):
        schedule_from_dict({"type": "cron", "cron": "* * * * *", "timezone": "Mars/Olympus"})
    with pytest.raises(ScheduleError, match="aware"):
        CronSchedule("* * * * *", start_date=datetime(2026, 1, 1))
    with pytest.raises(ScheduleError):
        CronSchedule(
            "* * * * *",
            start_date=pendulum.datetime(2026, 2, 1, tz="UTC"),
            end_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        )


def test_invalid_labels_and_limits(registered: Fleet) -> None:
    with pytest.raises(ConcurrencyLimitError):
        registered.client.create_flow_run("takes-payload", bad.PROJECT, labels=["has space"])
    with pytest.raises(ConcurrencyLimitError):
        registered.client.set_concurrency_limit("gpu", -3)
    result = cli(registered.env, "limits", "set", "bad label", "2")
    assert result.returncode == 1 and result.stderr.startswith("error: invalid label")


@pytest.fixture()
def redis_with_password(tmp_path: Path) -> Iterator[int]:
    """A redis-server of this test's own, up and refusing clients without the password."""
    with redis_requiring_password(tmp_path, "right-secret") as port:
        yield port


@pytest.fixture(scope="session")
def postgres_with_passwords() -> Iterator[PostgresServer]:
    """A PostgreSQL of this session's own that checks passwords (scram-sha-256)."""
    with postgres_checking_passwords("orch_app", "right-secret", "orch_claims") as server:
        yield server


def _env(tmp_path: Path, redis_url: str, database_url: str) -> dict[str, str]:
    return {
        "ORCHESTRATOR_HOME": str(tmp_path),
        "ORCHESTRATOR_REDIS_URL": redis_url,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "PATH": "/usr/bin:/bin",
    }


def test_redis_with_a_wrong_password(
    redis_with_password: int, tmp_path: Path, database_url: str
) -> None:
    # Given a Redis that is up and requires a password, and a URL with a wrong one
    url = f"redis://:wrong-secret@127.0.0.1:{redis_with_password}/0"
    shown = f"redis://:***@127.0.0.1:{redis_with_password}/0"
    client = Client(Settings(home=tmp_path, redis_url=url, database_url=database_url))
    # Then the client says, in one line, that this Redis refused the password
    with pytest.raises(BackendUnavailable) as info:
        client.backends  # noqa: B018
    message = str(info.value)
    assert message.startswith(f"Redis at {shown} refused the password"), message
    assert "wrong-secret" not in message and "\n" not in message
    # and so does a command that needs Redis, exiting 1 (reading history needs none)
    result = cli(_env(tmp_path, url, database_url), "run", "some-flow", "--project", "p")
    assert result.returncode == 1, result
    assert result.stderr.strip() == f"error: {message}", result.stderr
    assert "wrong-secret" not in result.stdout + result.stderr


def test_database_with_a_wrong_password(
    postgres_with_passwords: PostgresServer, redis_url: str, tmp_path: Path
) -> None:
    # Given a PostgreSQL that checks passwords, where the right password works
    server = postgres_with_passwords
    right = Client(Settings(home=tmp_path, redis_url=redis_url, database_url=server.url()))
    right.backends.store.upgrade()
    assert right.list_flow_runs() == []
    # When a client uses the same server with a wrong password
    url = server.url("wrong-secret")
    shown = f"postgresql+psycopg://{server.user}:***@127.0.0.1:{server.port}/{server.database}"
    client = Client(Settings(home=tmp_path, redis_url=redis_url, database_url=url))
    with pytest.raises(BackendUnavailable) as info:
        client.list_flow_runs()
    # Then one line names the database, says the password failed, and hides it
    message = str(info.value)
    assert message.startswith(f"database {shown} "), message
    assert "password authentication failed" in message, message
    assert "wrong-secret" not in message and "\n" not in message
    # and the command line says the same, exiting 1
    result = cli(_env(tmp_path, redis_url, url), "runs")
    assert result.returncode == 1, result
    assert result.stderr.strip() == f"error: {message}", result.stderr
    assert "wrong-secret" not in result.stdout + result.stderr


def test_flow_whose_code_no_longer_imports_fails_clearly(
    fleet: Fleet, tmp_path: Path, project: str
) -> None:
    # Given a flow registered from a file that is then deleted
    source = tmp_path / "vanishing.py"
    source.write_text(
        textwrap.dedent("""
        from orchestrator import Flow, task

        @task
        def hello():
            return "hi"

        with Flow("vanishing") as flow:
            hello()
    """)
    )
    [flow] = flows_in(str(source))
    fleet.client.register(flow, project)
    source.unlink()
    # When it runs on the fleet
    run_id = fleet.client.create_flow_run("vanishing", project)
    info = fleet.client.wait_for_flow_run(run_id, timeout=60)
    # Then the run fails at once with a message naming the file
    assert info.state is State.FAILED
    assert "vanishing.py" in (info.message or "")
    assert info.end_time is not None and info.end_time <= datetime.now(UTC)
    # and nothing is left running: no task run unfinished, and no worker holds a
    # Celery task of the run (running, prefetched, or waiting to retry)
    assert [(t.slug, t.state) for t in info.task_runs if not t.state.is_final] == []
    deadline = time.monotonic() + 30
    while held := celery_work_of(fleet, run_id):
        assert time.monotonic() < deadline, f"the workers still hold {held}"
        time.sleep(0.2)
    assert fleet.client.get_flow_run(run_id).state is State.FAILED


def test_a_pickled_message_is_refused_by_the_worker(registered: Fleet) -> None:
    # Given a run created but not yet sent
    run_id = registered.client.create_flow_run("takes-payload", bad.PROJECT, dispatch=False)
    app = registered.client.backends.app
    # When someone puts a pickled start message for it on the queue by hand
    app.send_task(
        "orchestrator.start_flow_run", args=[run_id], serializer="pickle", queue=registered.queue
    )
    deadline = time.monotonic() + 20
    while "pickle" not in registered.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    # Then a worker refuses it (JSON only) and the run did not start
    assert "Refusing to deserialize untrusted content of type pickle" in registered.logs()
    assert registered.client.get_flow_run(run_id).state is State.SUBMITTED
    # while the same message as JSON runs it
    registered.client.backends.dispatch(run_id, "takes-payload")
    assert registered.client.wait_for_flow_run(run_id, timeout=60).state is State.SUCCESS


def test_scheduled_start_time_keeps_its_instant_and_must_be_aware(registered: Fleet) -> None:
    # Given a start two hours from now in New York time
    start = pendulum.now("America/New_York").add(hours=2).replace(microsecond=0)
    run_id = registered.client.create_flow_run(
        "takes-payload", bad.PROJECT, scheduled_start_time=start
    )
    # Then the run waits in Scheduled for that very instant (stored in UTC)
    info = registered.client.get_flow_run(run_id)
    assert info.state is State.SCHEDULED
    assert info.scheduled_start_time == start
    registered.client.cancel_flow_run(run_id)
    # and a naive time is refused, creating nothing
    before = _runs(registered)
    with pytest.raises(ParameterError, match="timezone-aware"):
        registered.client.create_flow_run(
            "takes-payload", bad.PROJECT, scheduled_start_time=datetime(2030, 1, 1)
        )
    assert _runs(registered) == before
