"""Loaded by workers with ORCHESTRATOR_TEST_DUPLICATE_MESSAGES=1 in their environment:
every orchestrator message a worker publishes is published once more, half a second
later (so it arrives out of order, after messages sent after it), as a broker that
redelivers would. A duplicate also fires its chain's next step again, so duplicates
multiply along a chain: a harsh test. Each duplicate is counted in Redis
(:data:`PUBLISHED_KEY`), so a test can show they were sent.

The flows have the seed's Flow-of-Flows shape, A -> (B, C) -> D, with both kinds of
child: A and D have one task (run inline inside the parent's StartFlowRun task), B
and C have four, first -> (left, right) -> last (spliced into the waiting parent)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.signals import before_task_publish

from orchestrator import Flow, task
from orchestrator.backends import backends
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished, redis_client

PROJECT = "duplicating"
ENV = "ORCHESTRATOR_TEST_DUPLICATE_MESSAGES"
#: The Redis counter of duplicates published (by every worker of the test's Redis).
PUBLISHED_KEY = "test:duplicates-published"


@before_task_publish.connect
def _publish_twice_more(
    sender: str | None = None,
    body: Any = None,
    exchange: str | None = None,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    if os.environ.get(ENV) != "1" or not (sender or "").startswith("orchestrator."):
        return
    app = backends().app
    with app.producer_or_acquire() as producer:
        for delay in (0.5,):
            dup_headers = dict(headers or {})
            dup_headers["eta"] = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat()
            producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                headers=dup_headers,
                serializer="json",
                **(properties or {}),
            )
            redis_client().incr(PUBLISHED_KEY)


@task
def work(label: str) -> str:
    """Take a moment (so that faults find work in flight), record one execution."""
    finished(0.2)
    return label


@task
def combine(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """Use both children's results (each child's last task names the child)."""
    finished()
    return sorted([left["task_results"]["last"], right["task_results"]["last"]])


def _one_task(name: str) -> Flow:
    with Flow(f"dup-{name}") as child:
        work(name)
    return child


def _four_tasks(name: str) -> Flow:
    with Flow(f"dup-{name}") as child:
        first = work(f"{name}-first", task_args={"name": "first"})
        left = work(f"{name}-left", task_args={"name": "left"}, upstream_tasks=[first])
        right = work(f"{name}-right", task_args={"name": "right"}, upstream_tasks=[first])
        work(name, task_args={"name": "last"}, upstream_tasks=[left, right])
    return child


dup_a, dup_b, dup_c, dup_d = _one_task("A"), _four_tasks("B"), _four_tasks("C"), _one_task("D")
children = [dup_a, dup_b, dup_c, dup_d]

with Flow("dup-parent") as parent:
    a = StartFlowRun(flow_name="dup-A", project_name=PROJECT, wait=True)
    b = StartFlowRun(flow_name="dup-B", project_name=PROJECT, wait=True)(upstream_tasks=[a])
    c = StartFlowRun(flow_name="dup-C", project_name=PROJECT, wait=True)(upstream_tasks=[a])
    d = StartFlowRun(flow_name="dup-D", project_name=PROJECT, wait=True)(upstream_tasks=[b, c])
    combine(b, c, upstream_tasks=[d])

ALL = [*children, parent]
