"""Old runs bulk inserted for the retention tests: finished (or running) trees of a
parent and three children, each run with one task run, one log line and two state
events, dated as the test says."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from orchestrator.db import Store
from orchestrator.db.models import FlowRun, FlowVersion, StateEvent, TaskRun, TaskRunLog


def run_row(
    flow: FlowVersion, when: datetime, state: str, parent: str | None = None
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "flow_id": flow.id,
        "name": None,
        "state": state,
        "message": None,
        "parameters": {},
        "labels": [],
        "idempotency_key": None,
        "parent_flow_run_id": parent,
        "parent_task_run_id": None,
        "scheduled_start_time": None,
        "start_time": when,
        "end_time": when if state != "Running" else None,
        "created": when,
        "updated": when,
        "buffered": False,
    }


def tree(
    flow: FlowVersion,
    when: datetime,
    child_state: str = "Success",
    child_when: datetime | None = None,
) -> list[dict[str, Any]]:
    root = run_row(flow, when, "Success")
    kids = [run_row(flow, child_when or when, child_state, root["id"]) for _ in range(3)]
    return [root, *kids]


def insert_runs(store: Store, runs: list[dict[str, Any]]) -> None:
    """Bulk insert runs with one task run, one log line and two state events each."""
    tasks, logs, events = [], [], []
    for r in runs:
        tr = str(uuid.uuid4())
        when = r["created"]
        tasks.append(
            {
                "id": tr,
                "flow_run_id": r["id"],
                "slug": "load",
                "map_index": -1,
                "name": "load",
                "state": r["state"],
                "attempts": 1,
                "start_time": when,
                "end_time": r["end_time"],
            }
        )
        logs.append(
            {
                "flow_run_id": r["id"],
                "task_run_id": tr,
                "attempt": 1,
                "line": 1,
                "timestamp": when,
                "level": "INFO",
                "logger": "test",
                "message": "a line",
            }
        )
        for state in ("Running", r["state"]):
            events.append({"flow_run_id": r["id"], "state": state, "timestamp": when})
    with store.writing() as s:
        s.execute(insert(FlowRun), runs)
        s.execute(insert(TaskRun), tasks)
        s.execute(insert(TaskRunLog), logs)
        s.execute(insert(StateEvent), events)
