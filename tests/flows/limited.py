"""Flows carrying labels, for the concurrency-limit tests."""

from __future__ import annotations

from orchestrator import Flow, Parameter, task
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished

PROJECT = "limited"


@task
def hold(seconds: float) -> str:
    """Occupy the run for a while."""
    finished(seconds)
    return "done"


with Flow("gpu-job", labels=["gpu"]) as gpu_job:
    hold(Parameter("seconds", default=0.5))

with Flow("held-job", labels=["held"]) as held_job:
    hold(0.1)

# A and D have one task (run inside the parent's waiting task); B and C have four,
# first -> (left, right) -> last (spliced into the waiting parent)
_children = []
for _name in "ABCD":
    with Flow(f"fof-{_name}", labels=["fof"]) as _child:
        if _name in "AD":
            hold(0.2)
        else:
            first = hold(0.2, task_args={"name": "first"})
            sides = [
                hold(0.2, task_args={"name": n}, upstream_tasks=[first]) for n in ("left", "right")
            ]
            hold(0.2, task_args={"name": "last"}, upstream_tasks=sides)
    _children.append(_child)
fof_a, fof_b, fof_c, fof_d = _children

with Flow("fof-parent", labels=["fof"]) as fof_parent:
    a = StartFlowRun(flow_name="fof-A", project_name=PROJECT, wait=True)
    b = StartFlowRun(flow_name="fof-B", project_name=PROJECT, wait=True)(upstream_tasks=[a])
    c = StartFlowRun(flow_name="fof-C", project_name=PROJECT, wait=True)(upstream_tasks=[a])
    StartFlowRun(flow_name="fof-D", project_name=PROJECT, wait=True)(upstream_tasks=[b, c])

ALL = [gpu_job, held_job, fof_a, fof_b, fof_c, fof_d, fof_parent]
