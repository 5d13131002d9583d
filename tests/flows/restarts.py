"""Flows for the restart tests (project "restarts"): the seed's Flow-of-Flows
A -> (B, C) -> D whose C fails on its first try of each child run, and a parent
waiting on a slow child (a run that is still going)."""

from __future__ import annotations

import contextlib

import redis

from orchestrator import Flow, Parameter, task
from orchestrator.context import current
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished, redis_client

PROJECT = "restarts"


def tries_key(flow_run_id: str) -> str:
    """The Redis counter of a flow run's tries of the task that fails once."""
    return f"test:restart-tries:{flow_run_id}"


@task
def step(name: str, seconds: float = 0.2) -> str:
    """Wait a moment, record the execution, say which flow ran."""
    finished(seconds)
    return f"{name} done"


@task
def flaky_step(name: str, seconds: float = 3.0) -> str:
    """Fail at once on the first try of each flow run (counted in Redis); later tries
    take ``seconds`` (time to kill a worker mid-way), then succeed."""
    ctx = current()
    run_id = ctx.flow_run_id if ctx is not None else None
    tries = 1
    if run_id is not None:
        with contextlib.suppress(redis.RedisError):
            tries = int(redis_client().incr(tries_key(run_id)))
    if tries == 1:
        finished()
        raise RuntimeError(f"{name} fails on its first try")
    finished(seconds)
    return f"{name} done on try {tries}"


with Flow("A") as flow_a:
    step("A")

with Flow("B") as flow_b:
    step("B", seconds=0.5)

with Flow("C") as flow_c:
    flaky_step("C")

with Flow("D") as flow_d:
    step("D")

start_a = StartFlowRun(flow_name="A", project_name=PROJECT, wait=True)
start_b = StartFlowRun(flow_name="B", project_name=PROJECT, wait=True)
start_c = StartFlowRun(flow_name="C", project_name=PROJECT, wait=True)
start_d = StartFlowRun(flow_name="D", project_name=PROJECT, wait=True)

with Flow("parent-flow") as parent_flow:
    b = start_b(upstream_tasks=[start_a])
    c = start_c(upstream_tasks=[start_a])
    start_d(upstream_tasks=[b, c])


@task
def flaky_if(fail: bool) -> str:
    """Fail on the first try of its flow run when ``fail``; succeed otherwise."""
    ctx = current()
    tries = 1
    if ctx is not None and ctx.flow_run_id is not None:
        tries = int(redis_client().incr(tries_key(ctx.flow_run_id)))
    finished()
    if fail and tries == 1:
        raise RuntimeError("this element fails on its first try")
    return f"done on try {tries}"


@task
def element_params() -> list[dict[str, bool]]:
    """Three children's parameters; the middle one fails on its first try."""
    return [{"fail": False}, {"fail": True}, {"fail": False}]


with Flow("flaky-element") as flaky_element:
    flaky_if(Parameter("fail"))

with Flow("parent-mapped") as parent_mapped:
    StartFlowRun(flow_name="flaky-element", project_name=PROJECT, wait=True).map(
        parameters=element_params
    )

with Flow("parent-of-c") as parent_of_c:  # one task: it runs inline in its start
    StartFlowRun(flow_name="C", project_name=PROJECT, wait=True)()


@task
def always_fails() -> None:
    """Fail, every time."""
    finished()
    raise RuntimeError("fails on purpose")


with Flow("replaced") as replaced_v1:  # registered first, then archived by v2
    always_fails()

with Flow("replaced") as replaced_v2:
    step("replaced")

with Flow("slow") as slow:
    step("slow", seconds=Parameter("seconds", default=20.0))

with Flow("parent-slow") as parent_slow:
    StartFlowRun(flow_name="slow", project_name=PROJECT, wait=True)(parameters={"seconds": 20})

FLOWS = [
    flow_a,
    flow_b,
    flow_c,
    flow_d,
    parent_flow,
    slow,
    parent_slow,
    flaky_element,
    parent_mapped,
    parent_of_c,
]
