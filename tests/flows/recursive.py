"""Flows that start themselves (issue 24 item 2): a flow naming itself at run time
(registration cannot see it; the tree depth cap stops it), and flows whose fixed
names form cycles (registration refuses them)."""

from __future__ import annotations

from typing import Any

from orchestrator import Flow, Parameter, task
from orchestrator.tasks import StartFlowRun


@task
def next_parameters(target: str, project: str) -> dict[str, Any]:
    """The child's parameters: the same target and project again."""
    return {"target": target, "project": project}


start_target = StartFlowRun(wait=True, name="start_target")

with Flow("recurse") as recurse:
    target = Parameter("target", default="recurse")
    project = Parameter("project")
    start_target(
        flow_name=target,
        project_name=project,
        parameters=next_parameters(target, project),
    )


def self_starting(project: str) -> Flow:
    """A flow ``loop`` whose StartFlowRun names ``loop`` itself."""
    with Flow("loop") as flow:
        StartFlowRun(flow_name="loop", project_name=project)()
    return flow


def starting(name: str, child: str, project: str) -> Flow:
    """A flow ``name`` that starts flow ``child`` of ``project``."""
    with Flow(name) as flow:
        StartFlowRun(flow_name=child, project_name=project, wait=True)()
    return flow
