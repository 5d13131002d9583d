"""Flows for the recovery fault tests and the soak tool: the seed's Flow-of-Flows
shape (A -> (B, C) -> D, each ``wait=True``) whose children run long enough (a
second a task) for a worker process to be killed in the middle of one; B is a flow
of two tasks (spliced into the parent), the others of one (run inside the
StartFlowRun's own task). Every finished execution of a task's code is counted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orchestrator import Flow, task
from orchestrator.context import current
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished

PROJECT = "recovery"
#: How long each child's task runs.
SECONDS = 1.0


@task
def work(label: str) -> str:
    """Work a second, then record one execution."""
    finished(SECONDS)
    return label


@task
def then(value: str) -> str:
    """The second task of child B."""
    finished(SECONDS / 2)
    return value


@task
def combine(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """Use both middle children's results."""
    finished()
    return sorted([*left["task_results"].values(), *right["task_results"].values()])


with Flow("rec-A") as rec_a:
    work("A")
with Flow("rec-B") as rec_b:
    then(work("B"))
with Flow("rec-C") as rec_c:
    work("C")
with Flow("rec-D") as rec_d:
    work("D")
children = [rec_a, rec_b, rec_c, rec_d]

with Flow("rec-parent") as parent:
    a = StartFlowRun(flow_name="rec-A", project_name=PROJECT, wait=True)
    b = StartFlowRun(flow_name="rec-B", project_name=PROJECT, wait=True)(upstream_tasks=[a])
    c = StartFlowRun(flow_name="rec-C", project_name=PROJECT, wait=True)(upstream_tasks=[a])
    d = StartFlowRun(flow_name="rec-D", project_name=PROJECT, wait=True)(upstream_tasks=[b, c])
    combine(b, c, upstream_tasks=[d])


#: The retry delay of ``flaky_twice``: longer than the fault tests' visibility timeout.
RETRY_DELAY = 6.0


@task(max_retries=2, retry_delay=timedelta(seconds=RETRY_DELAY))
def flaky_twice() -> str:
    """Fail the first two attempts, succeed at the third."""
    ctx = current()
    finished()
    if ctx is not None and ctx.attempt <= 2:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return "ok"


with Flow("rec-retry") as retrying:
    flaky_twice()


@task
def once() -> str:
    """Record one execution."""
    finished()
    return "once"


with Flow("rec-once") as one_task:
    once()

CHILD_NAMES = [f"rec-{n}" for n in "ABCD"]
ALL = [*children, parent, retrying, one_task]
