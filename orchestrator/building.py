"""The active-flow stack: which flow a task called inside ``with Flow(...)`` binds
into. :mod:`orchestrator.flow` pushes and pops it, :mod:`orchestrator.task` reads
it, so neither module needs the other at run time. Pure: the standard library only
(the flow type only for type checking)."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.flow import Flow

_active: ContextVar[tuple[Flow, ...]] = ContextVar("orchestrator_active_flow", default=())


def active() -> Flow | None:
    """The flow of the innermost ``with Flow(...)`` block, if any."""
    stack = _active.get()
    return stack[-1] if stack else None


def push(flow: Flow) -> Token[tuple[Flow, ...]]:
    """Make ``flow`` the active flow; :func:`pop` the returned token to undo it."""
    return _active.set((*_active.get(), flow))


def pop(token: Token[tuple[Flow, ...]]) -> None:
    """Make the flow active before the matching :func:`push` active again."""
    _active.reset(token)
