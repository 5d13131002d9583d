"""Flows for tests/integration/test_claims.py (project "claims"): children that end
TimedOut or TriggerFailed inside and the parents mirroring them, a parent using the
task forms ``create_flow_run``, ``wait_for_flow_run`` and ``get_task_run_result``,
and a flow that stalls on a slow first task (for the sweeper's give-up)."""

from __future__ import annotations

from typing import Any

from orchestrator import Flow, Parameter, task
from orchestrator.tasks import StartFlowRun, create_flow_run, get_task_run_result, wait_for_flow_run
from orchestrator.triggers import any_failed
from tests.flows.common import finished

PROJECT = "claims"
#: The timeout, in seconds, of the task that would sleep far longer.
TIMEOUT = 1


@task
def step(label: str, seconds: float = 0.0) -> str:
    """Sleep, record the execution, return the label."""
    finished(seconds)
    return label


@task(timeout=TIMEOUT)
def hangs() -> str:
    """Sleep far past its timeout: the code must be stopped before it records anything."""
    finished(60)
    return "never"


@task
def boom() -> None:
    """Fail."""
    finished()
    raise RuntimeError("failed on purpose")


@task
def after_boom() -> str:
    """Never runs: its upstream fails, so its trigger (all_successful) fails."""
    finished()
    return "ran"


@task(trigger=any_failed)
def noticed() -> str:
    """Run because an upstream failed."""
    finished()
    return "noticed"


@task
def double(n: int) -> int:
    """Twice n, after a while (so a waiting task starts before the child ends)."""
    finished(1.0)
    return 2 * n


@task
def params_for(n: int) -> dict[str, int]:
    """The child's parameters, built at run time."""
    return {"n": n}


@task
def summary(created: str, waited: dict[str, Any], taken: int) -> dict[str, Any]:
    """What the three task forms gave, in one value."""
    finished()
    return {"created": created, "waited": waited, "taken": taken}


# a child of one task with a timeout (spliced, not run inline) that times out
with Flow("times-out") as times_out:
    hangs()

# a child whose terminal task is TriggerFailed (its upstream failed)
with Flow("trigger-fails") as trigger_fails:
    after_boom(upstream_tasks=[boom()])

with Flow("mirrors-timeout") as mirrors_timeout:
    waited = StartFlowRun(flow_name="times-out", project_name=PROJECT, wait=True)()
    noticed(upstream_tasks=[waited])

with Flow("mirrors-trigger-failed") as mirrors_trigger_failed:
    waited = StartFlowRun(flow_name="trigger-fails", project_name=PROJECT, wait=True)()
    noticed(upstream_tasks=[waited])

# the task forms: wait_for_flow_run on a child whose terminal task is TriggerFailed
with Flow("waits-for-trigger-failed") as waits_for_trigger_failed:
    child = create_flow_run(flow_name="trigger-fails", project_name=PROJECT)
    noticed(upstream_tasks=[wait_for_flow_run(child)])

with Flow("doubles") as doubles:
    double(double(Parameter("n")), task_args={"name": "twice"})

# the task forms end to end: create a child, wait for it, read one task run's result
with Flow("task-forms") as task_forms:
    created = create_flow_run(
        flow_name="doubles", project_name=PROJECT, parameters=params_for(Parameter("n"))
    )
    waited = wait_for_flow_run(created)
    taken = get_task_run_result(created, "twice", upstream_tasks=[waited])
    summary(created, waited, taken)

# a flow whose first task takes a while: killed in it, the run is left stuck
with Flow("stalls") as stalls:
    step(
        "second",
        task_args={"name": "second"},
        upstream_tasks=[step("first", 5.0, task_args={"name": "first"})],
    )

ALL = [
    times_out,
    trigger_fails,
    mirrors_timeout,
    mirrors_trigger_failed,
    waits_for_trigger_failed,
    doubles,
    task_forms,
    stalls,
]
