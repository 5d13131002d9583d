"""Flows for the server tests (project "served"): a parent that logs, passes its
parameter to a child that logs and prints it, and a slow flow to cancel or to hold
a concurrency slot."""

from __future__ import annotations

import logging
import time

from orchestrator import Flow, Parameter, task
from orchestrator.tasks import StartFlowRun

PROJECT = "served"

log = logging.getLogger("served")


@task
def say(word: str) -> str:
    """Log the word in the parent."""
    log.warning("parent got %s", word)
    return word


@task
def child_parameters(word: str) -> dict[str, str]:
    """The child's parameters, computed at run time."""
    return {"word": word}


@task
def shout(word: str) -> str:
    """Log and print the word in the child."""
    log.info("child says %s", word)
    print(f"child printed {word}")
    return word.upper()


@task
def nap(seconds: float) -> float:
    """Sleep (to be cancelled, or to hold a slot)."""
    time.sleep(seconds)
    return seconds


with Flow("served-child") as child:
    shout(Parameter("word", default="hi"))

with Flow("served-parent") as parent:
    word = Parameter("word", default="hello")
    said = say(word)
    StartFlowRun(flow_name="served-child", project_name=PROJECT, wait=True)(
        parameters=child_parameters(word), upstream_tasks=[said]
    )

with Flow("served-slow") as slow:
    nap(Parameter("seconds", default=30.0))

FLOWS = [child, parent, slow]
