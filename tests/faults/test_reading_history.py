"""Reading run history needs only the database (issue 24 item 5): with Redis
stopped, `orchestrator runs`, `show` and `logs` still answer from the database
(real workers ran the flow first, both databases), and on a read-only home they
neither take migrate.lock nor start the embedded Redis."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from orchestrator.db import Store
from orchestrator.states import State
from tests.conftest import Fleet
from tests.faults.test_faults import _free_port, _start_redis
from tests.flows import deploy
from tests.integration.db.common import build, new_run, register
from tests.integration.test_cli import cli


def test_runs_show_and_logs_work_with_redis_stopped(
    database_url: str, tmp_path: Path, project: str
) -> None:
    # Given a run that real workers finished, over a Redis of this test's own
    port = _free_port()
    server = _start_redis(port, tmp_path)
    (tmp_path / "home").mkdir()
    (tmp_path / "logs").mkdir()
    fleet = Fleet(tmp_path / "home", f"redis://127.0.0.1:{port}/0", database_url, tmp_path / "logs")
    try:
        fleet.client.register(deploy.chatty_flow, project)
        fleet.start_worker()
        run_id = fleet.client.create_flow_run("chatty", project, parameters={"who": "history"})
        assert fleet.client.wait_for_flow_run(run_id, timeout=90).state is State.FAILED
    finally:
        fleet.stop()
        # When Redis stops
        server.kill()
        server.wait(10)
    # Then runs, show and logs answer from the database alone
    listed = cli(fleet.env, "runs", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout
    shown = cli(fleet.env, "show", run_id[:8])
    assert shown.returncode == 0, shown.stderr
    assert run_id in shown.stdout and "second failed on purpose" in shown.stdout
    logged = cli(fleet.env, "logs", run_id)
    assert logged.returncode == 0, logged.stderr
    assert "hello from history" in logged.stdout
    # While a command that needs Redis says so in one line
    started = cli(fleet.env, "run", "chatty", "--project", project)
    assert started.returncode == 1 and started.stderr.startswith("error: Redis")
    assert len(started.stderr.splitlines()) == 1, started.stderr


def _read_only(home: Path, *args: str) -> list[str]:
    """The command line running ``orchestrator ARGS`` with ``home`` read-only: its
    write bits off, and, for root (whom those do not stop), a read-only bind mount
    in a user and mount namespace of its own."""
    cli_args = [sys.executable, "-m", "orchestrator.cli", *args]
    for p in [home, *home.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    if os.geteuid() != 0:
        return cli_args
    h = shlex.quote(str(home))
    script = f"mount --bind {h} {h} && mount -o remount,bind,ro {h} && exec {shlex.join(cli_args)}"
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", script]


def test_history_commands_work_on_a_read_only_home(tmp_path: Path) -> None:
    # Given the embedded default's home, its SQLite database holding a run
    home = tmp_path / "home"
    home.mkdir()
    store = Store(f"sqlite:///{home / 'orchestrator.db'}", auto_migrate=True)
    version = register(store, "tests", build("audited"))
    run, _ = store.flow_runs.insert(new_run(version))
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    before = sorted(p.name for p in home.iterdir())
    try:
        # When the home is read-only and its history is read
        for args in (["runs"], ["show", run.id[:8]], ["logs", run.id]):
            done = subprocess.run(
                _read_only(home, *args), env=env, capture_output=True, text=True, timeout=120
            )
            # Then each command answers, naming the run
            assert done.returncode == 0, (args, done.stderr)
            assert run.id in done.stdout, done.stdout
    finally:
        for p in [home, *home.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    # And nothing was created there: no migrate.lock, no embedded Redis
    assert sorted(p.name for p in home.iterdir()) == before
