"""Flows for the deployment tests (Flower, honcho, SIGTERM) and the task-run log
tests. Workers import them by module path."""

from __future__ import annotations

import logging
import sys

from orchestrator import Flow, Parameter, task
from orchestrator.context import current
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished

log = logging.getLogger("tests.flows.deploy")

#: The project of the parent and child flows of the log tests.
LOGS_PROJECT = "deploy-logs"


@task
def step(label: str, seconds: float = 0.0) -> str:
    """Sleep, record the execution, return the label."""
    finished(seconds)
    return label


def _fail_first_attempt(label: str) -> str:
    ctx = current()
    if ctx is not None and ctx.attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    finished()
    return label


@task(max_retries=1, retry_delay=3.0)
def fails_first_time(label: str) -> str:
    """Fail on the first attempt, succeed on the second (3 s later)."""
    return _fail_first_attempt(label)


@task(max_retries=1, retry_delay=8.0)
def retries_later(label: str) -> str:
    """Fail on the first attempt, succeed on the second (8 s later)."""
    return _fail_first_attempt(label)


@task
def chatty(name: str, lines: int = 3) -> str:
    """Print and log a few lines, then return."""
    print(f"hello from {name}")
    for i in range(lines):
        log.warning("warning %d from %s", i, name)
    log.info("info line from %s", name)
    print(f"to stderr from {name}", file=sys.stderr)
    print("partial ", end="")
    print("line joined")
    finished()
    return name


@task
def chatty_then_fails(name: str) -> None:
    """Log a few lines and fail."""
    print(f"about to fail: {name}")
    log.error("something is wrong in %s", name)
    finished()
    raise ValueError(f"{name} failed on purpose")


@task
def floods(n: int) -> int:
    """Print ``n`` lines (more than the per-task-run limit)."""
    for i in range(n):
        print(f"flood line {i}")
    finished()
    return n


# A -> (B, C) -> D, for watching in Flower.
with Flow("watched") as watched:
    a = step("A", task_args={"name": "A"})
    b = step("B", 0.2, task_args={"name": "B"}, upstream_tasks=[a])
    c = step("C", 0.2, task_args={"name": "C"}, upstream_tasks=[a])
    d = step("D", task_args={"name": "D"}, upstream_tasks=[b, c])

# A -> (S1, S2 sleeping 3 s, R retrying after 3 s) -> Z, to SIGTERM a worker mid-run.
with Flow("sigterm") as sigterm:
    sa = step("A", task_args={"name": "A"})
    s1 = step("S1", 3.0, task_args={"name": "S1"}, upstream_tasks=[sa])
    s2 = step("S2", 3.0, task_args={"name": "S2"}, upstream_tasks=[sa])
    r = fails_first_time("R", task_args={"name": "R"}, upstream_tasks=[sa])
    z = step("Z", task_args={"name": "Z"}, upstream_tasks=[s1, s2, r])

# One task whose retry waits 8 s in a worker (a Celery message with an ETA).
with Flow("retry-later") as retry_later:
    retries_later("R", task_args={"name": "R"})

with Flow("chatty") as chatty_flow:
    who = Parameter("who", default="world")
    first = chatty(who, task_args={"name": "first"})
    chatty_then_fails("second", task_args={"name": "second"}, upstream_tasks=[first])

with Flow("floods") as floods_flow:
    floods(Parameter("n", default=1500))

# A parent whose task logs, then a child (waited for) whose task logs too.
with Flow("chatty-child") as chatty_child:
    chatty(Parameter("who", default="child"), lines=1, task_args={"name": "child_says"})

with Flow("chatty-parent") as chatty_parent:
    hi = chatty("parent", lines=1, task_args={"name": "parent_says"})
    StartFlowRun(
        flow_name="chatty-child", project_name=LOGS_PROJECT, wait=True, name="start_child"
    )(parameters={"who": "kid"}, upstream_tasks=[hi])
