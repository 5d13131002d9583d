"""Child flows and parents for the StartFlowRun tests (project "children")."""

from __future__ import annotations

from orchestrator import Flow, Parameter, task
from orchestrator.tasks import StartFlowRun
from orchestrator.triggers import any_failed
from tests.flows.common import finished

PROJECT = "children"


@task
def sleep_then(label: str, seconds: float = 0.0) -> str:
    """Sleep, record the execution, return the label."""
    finished(seconds)
    return label


@task
def boom() -> None:
    """Fail."""
    finished()
    raise RuntimeError("child failed on purpose")


@task
def greet(name: str) -> str:
    """Use a parameter."""
    finished()
    return f"hello {name}"


@task(trigger=any_failed)
def cleanup() -> str:
    """Run when an upstream failed."""
    finished()
    return "cleaned"


with Flow("ok") as ok:
    sleep_then("ok", 0.1)

with Flow("slow") as slow:
    sleep_then("slow", Parameter("seconds", default=3.0))

with Flow("fails") as fails:
    boom()

with Flow("needs-name") as needs_name:
    greet(Parameter("name"))

with Flow("parent-mirror") as parent_mirror:
    bad = StartFlowRun(flow_name="fails", project_name=PROJECT, wait=True)()
    after = StartFlowRun(flow_name="ok", project_name=PROJECT, wait=True)(upstream_tasks=[bad])
    cleanup(upstream_tasks=[bad])

with Flow("parent-slow") as parent_slow:
    StartFlowRun(flow_name="slow", project_name=PROJECT, wait=True)(parameters={"seconds": 30})

with Flow("parent-short") as parent_short:
    StartFlowRun(flow_name="slow", project_name=PROJECT, wait=True)(parameters={"seconds": 3})

with Flow("parent-unknown") as parent_unknown:
    StartFlowRun(flow_name="no-such-flow", project_name=PROJECT, wait=True)()

with Flow("parent-bad-params") as parent_bad_params:
    StartFlowRun(flow_name="needs-name", project_name=PROJECT, wait=True)(
        parameters={"nmae": "typo"}
    )

with Flow("parent-missing-params") as parent_missing_params:
    StartFlowRun(flow_name="needs-name", project_name=PROJECT, wait=True)()

with Flow("parent-versions") as parent_versions:
    StartFlowRun(flow_name="evolving", project_name=PROJECT, wait=True)()

CHILDREN = [ok, slow, fails, needs_name]
PARENTS = [
    parent_mirror,
    parent_slow,
    parent_short,
    parent_unknown,
    parent_bad_params,
    parent_missing_params,
    parent_versions,
]
