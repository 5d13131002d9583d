"""The task run logs repository (``store.logs``): one batch per attempt, the newest
lines kept across retries, read back per flow run."""

from __future__ import annotations

import uuid
from datetime import timedelta

from orchestrator.clock import utcnow
from orchestrator.db import Store
from orchestrator.logcapture import LogLine


def lines(prefix: str, n: int, logger: str | None = None) -> list[LogLine]:
    """``n`` captured lines "prefix 0" .. "prefix n-1"."""
    start = utcnow()
    return [
        LogLine(start + timedelta(microseconds=i), "INFO", logger, f"{prefix} {i}")
        for i in range(n)
    ]


class TestLogs:
    """``store.logs`` on SQLite and PostgreSQL."""

    def test_lines_come_back_in_order_per_task_run(self, store: Store) -> None:
        run = str(uuid.uuid4())
        assert store.logs.add(run, "task-b", 1, lines("b", 3, "tests")) == 3
        assert store.logs.add(run, "task-a", 1, lines("a", 2)) == 2
        assert store.logs.add(run, "task-a", 1, []) == 0
        rows = store.logs.of_flow_run(run)
        assert [(r.task_run_id, r.message) for r in rows] == [
            ("task-a", "a 0"),
            ("task-a", "a 1"),
            ("task-b", "b 0"),
            ("task-b", "b 1"),
            ("task-b", "b 2"),
        ]
        assert {r.logger for r in rows} == {None, "tests"}
        only_b = store.logs.of_flow_run(run, ["task-b"], last=1)
        assert [r.message for r in only_b] == ["b 2"]
        assert store.logs.of_flow_run(run, []) == []
        assert store.logs.of_flow_run(run, last=0) == []

    def test_a_retry_keeps_only_the_newest_lines(self, store: Store) -> None:
        run = str(uuid.uuid4())
        store.logs.add(run, "task", 1, lines("first", 4), keep=5)
        store.logs.add(run, "task", 2, lines("second", 3), keep=5)
        rows = store.logs.of_flow_run(run)
        assert [(r.attempt, r.message) for r in rows] == [
            (1, "first 2"),
            (1, "first 3"),
            (2, "second 0"),
            (2, "second 1"),
            (2, "second 2"),
        ]
