"""The flows ``python -m bench.soak`` runs, imported by the workers by reference
(``bench.soak_flows:<name>``): the seed's Flow-of-Flows (A -> (B, C) -> D, each
``wait=True``; B of two tasks, spliced in; the others of one, run inside the
StartFlowRun's task), a fan-out of five mapped tasks, and a one-task flow. Each task
works for a moment, so a killed worker is often in the middle of one."""

from __future__ import annotations

import time

from orchestrator import Flow, Parameter, task
from orchestrator.tasks import StartFlowRun

PROJECT = "soak"


@task
def work(label: str, seconds: float = 0.5) -> str:
    """Work a moment, then say which flow ran."""
    time.sleep(seconds)
    return label


@task
def numbers(n: int) -> list[int]:
    """What the fan-out maps over."""
    return list(range(n))


@task
def scale(x: int) -> int:
    """One mapped element's work."""
    time.sleep(0.3)
    return x * 10


@task
def total(xs: list[int]) -> int:
    """The reduce."""
    return sum(xs)


with Flow("soak-A") as soak_a:
    work("A")
with Flow("soak-B") as soak_b:
    work(work("B"), seconds=0.3)
with Flow("soak-C") as soak_c:
    work("C")
with Flow("soak-D") as soak_d:
    work("D")

with Flow("soak-parent") as parent:
    _a = StartFlowRun(flow_name="soak-A", project_name=PROJECT, wait=True)
    _b = StartFlowRun(flow_name="soak-B", project_name=PROJECT, wait=True)(upstream_tasks=[_a])
    _c = StartFlowRun(flow_name="soak-C", project_name=PROJECT, wait=True)(upstream_tasks=[_a])
    StartFlowRun(flow_name="soak-D", project_name=PROJECT, wait=True)(upstream_tasks=[_b, _c])

with Flow("soak-fanout") as fanout:
    total(scale.map(numbers(Parameter("n", default=5))))

with Flow("soak-one") as one_task:
    work("one", seconds=0.3)

ALL = [soak_a, soak_b, soak_c, soak_d, parent, fanout, one_task]
#: What the soak starts, in turn.
KINDS = ["soak-parent", "soak-fanout", "soak-one"]
