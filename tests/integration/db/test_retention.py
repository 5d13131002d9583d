"""``orchestrator db prune`` on SQLite and PostgreSQL: 10,000 old finished runs
(2,500 trees of a parent and three children, with their task runs, log lines and
state events, bulk inserted) go, whole trees at a time; new runs, an old tree still
running, an old tree with a newer child, and a dry run's data stay."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import func, select

from orchestrator.clock import utcnow
from orchestrator.db import Store
from orchestrator.db.models import FlowRun, StateEvent, TaskRun, TaskRunLog
from tests.conftest import ROOT
from tests.integration.db.common import build, register
from tests.integration.old_runs import insert_runs, tree

TREES = 2_500  # x (1 parent + 3 children) = 10,000 old runs


def _left(store: Store, ids: list[str]) -> dict[str, int]:
    """How many of these runs, and of their task runs, logs and events, are left."""
    out = {}
    with store.reading() as s:
        for name, column in (
            ("flow_runs", FlowRun.id),
            ("task_runs", TaskRun.flow_run_id),
            ("logs", TaskRunLog.flow_run_id),
            ("events", StateEvent.flow_run_id),
        ):
            n = 0
            for i in range(0, len(ids), 500):
                n += s.execute(
                    select(func.count()).where(column.in_(ids[i : i + 500]))
                ).scalar_one()
            out[name] = n
    return out


def _prune(database_url: str, *args: str) -> str:
    env = {**os.environ, "ORCHESTRATOR_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "db", "prune", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prune_deletes_old_finished_trees_only(
    store: Store, project: str, database_url: str
) -> None:
    # Given 10,000 old finished runs in 2,500 trees, and trees that must stay: a new
    # one, an old one still running, an old one with a child changed yesterday
    flow = register(store, project, build())
    old, new = utcnow() - timedelta(days=90), utcnow()
    doomed = [r for _ in range(TREES) for r in tree(flow, old)]
    fresh = tree(flow, new)
    running = tree(flow, old, child_state="Running")
    newer_child = tree(flow, old, child_when=new - timedelta(days=1))
    insert_runs(store, doomed + fresh + running + newer_child)
    doomed_ids = [r["id"] for r in doomed]
    kept_ids = [r["id"] for r in fresh + running + newer_child]
    assert _left(store, doomed_ids) == {
        "flow_runs": 10_000,
        "task_runs": 10_000,
        "logs": 10_000,
        "events": 20_000,
    }
    # When a dry run looks at what is older than 30 days, nothing goes
    out = _prune(database_url, "--older-than", "30d", "--dry-run")
    print(out)  # shown by -rP: what the README quotes
    found = re.search(r"would prune ([\d,]+) trees", out)
    assert found and int(found.group(1).replace(",", "")) >= TREES, out
    assert _left(store, doomed_ids)["flow_runs"] == 10_000
    # When the prune runs for real
    out = _prune(database_url, "--older-than", "30d", "--batch-size", "400")
    # Then every old finished tree is gone with its task runs, logs and events
    assert re.search(r"^pruned [\d,]+ trees", out), out
    assert _left(store, doomed_ids) == {"flow_runs": 0, "task_runs": 0, "logs": 0, "events": 0}
    # and the new tree, the running tree and the tree with a newer child are whole
    assert _left(store, kept_ids) == {"flow_runs": 12, "task_runs": 12, "logs": 12, "events": 24}
