"""Flows for the tests of cancellation that stops running code (project
"cancelling"): a task that sleeps and then leaves a side effect in Redis, parents
that wait on it (cancelling it with them, or abandoning it), and a parent whose child
is scheduled to start a few seconds later."""

from __future__ import annotations

import time
from datetime import timedelta

from orchestrator import Flow, Parameter, task
from orchestrator.context import current
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished, redis_client

PROJECT = "cancelling"


def side_effect_key(flow_run_id: str) -> str:
    """The Redis key the sleeping task sets once its sleep is over."""
    return f"test:side-effect:{flow_run_id}"


@task
def sleep_then_write(seconds: float) -> str:
    """Sleep, then leave a side effect (a Redis key naming the flow run)."""
    time.sleep(seconds)
    ctx = current()
    if ctx is not None and ctx.flow_run_id:
        redis_client().set(side_effect_key(ctx.flow_run_id), "written", ex=3600)
    finished()
    return "woke up"


@task
def quick() -> str:
    """Return at once."""
    finished()
    return "quick"


with Flow("sleeper") as sleeper:
    sleep_then_write(Parameter("seconds", default=60.0))

with Flow("two-step-sleeper") as two_step_sleeper:
    sleep_then_write(Parameter("seconds", default=60.0), upstream_tasks=[quick()])

with Flow("quick") as quick_flow:
    quick()

with Flow("parent-cancels") as parent_cancels:
    StartFlowRun(flow_name="sleeper", project_name=PROJECT, wait=True)(parameters={"seconds": 60})

with Flow("parent-abandons") as parent_abandons:
    StartFlowRun(flow_name="sleeper", project_name=PROJECT, wait=True, on_parent_cancel="abandon")(
        parameters={"seconds": 4}
    )

with Flow("parent-later") as parent_later:
    StartFlowRun(
        flow_name="quick",
        project_name=PROJECT,
        wait=True,
        scheduled_start_time=timedelta(seconds=4),
    )()

FLOWS = [sleeper, two_step_sleeper, quick_flow, parent_cancels, parent_abandons, parent_later]
