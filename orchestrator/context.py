"""The run context: what a task's code may ask about the run it belongs to (flow
run id, task slug, map index, parameters), as in Prefect 1's ``prefect.context``:
:class:`RunContext`, :func:`current` and :func:`entered`. Pure: the standard
library only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunContext:
    """Facts about the task run whose code is executing.

    Attributes:
        flow_run_id: the flow run's id (None in a local ``flow.run()`` without a store).
        flow_name: the flow's name.
        task_run_id: the task run's id.
        task_slug: the task's slug in its flow.
        map_index: the element index for a mapped task, else -1.
        parameters: the flow run's parameter values.
        attempt: which attempt of the task this is (1 for the first).
        local: True when running inside ``flow.run()``, with no broker.
    """

    flow_run_id: str | None
    flow_name: str
    task_slug: str
    task_run_id: str | None = None
    map_index: int = -1
    parameters: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    local: bool = False


_current: ContextVar[RunContext | None] = ContextVar("orchestrator_run_context", default=None)


def current() -> RunContext | None:
    """The context of the task run executing now, or None outside a task run."""
    return _current.get()


@contextlib.contextmanager
def entered(ctx: RunContext) -> Iterator[RunContext]:
    """Make ``ctx`` the current run context for the duration of a block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
