"""Loaded by workers with ORCHESTRATOR_TEST_DUPLICATE_MESSAGES=1 in their environment:
every orchestrator message a worker publishes is published once more, half a second
later (so it arrives out of order, after messages sent after it), as a broker that
redelivers would. A duplicate also fires its chain's next step again, so duplicates
multiply along a chain: a harsh test. The flows themselves are the seed's Flow-of-Flows shape."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.signals import before_task_publish

from orchestrator import Flow, task
from orchestrator.backends import backends
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished

PROJECT = "duplicating"
ENV = "ORCHESTRATOR_TEST_DUPLICATE_MESSAGES"


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


@task
def work(label: str) -> str:
    """Record one execution."""
    finished(0.05)
    return label


@task
def combine(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """Use both children's results."""
    finished()
    return sorted([*left["task_results"].values(), *right["task_results"].values()])


children = []
for _name in "ABCD":
    with Flow(f"dup-{_name}") as _child:
        work(_name)
    children.append(_child)
dup_a, dup_b, dup_c, dup_d = children

with Flow("dup-parent") as parent:
    a = StartFlowRun(flow_name="dup-A", project_name=PROJECT, wait=True)
    b = StartFlowRun(flow_name="dup-B", project_name=PROJECT, wait=True)(upstream_tasks=[a])
    c = StartFlowRun(flow_name="dup-C", project_name=PROJECT, wait=True)(upstream_tasks=[a])
    d = StartFlowRun(flow_name="dup-D", project_name=PROJECT, wait=True)(upstream_tasks=[b, c])
    combine(b, c, upstream_tasks=[d])

ALL = [*children, parent]
