"""Flows for the bad-input tests."""

from __future__ import annotations

from orchestrator import Flow, Parameter, task

PROJECT = "bad-input"


@task
def echo(value: object) -> object:
    """Return the parameter."""
    return value


with Flow("takes-payload") as takes_payload:
    echo(Parameter("payload", default=None))
