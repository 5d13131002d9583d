"""The active-flow stack: which flow a task called inside ``with Flow(...)`` binds
into. :mod:`orchestrator.flow` pushes and pops it, :mod:`orchestrator.task` reads
it, so neither module needs the other at run time. Also the active ``case`` blocks
(:mod:`orchestrator.control_flow`): a task a flow gains inside one joins it. Pure:
the standard library only (the flow and task types only for type checking)."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.flow import Flow
    from orchestrator.task import Task


class CaseBlock(Protocol):
    """An open ``with case(...)`` block: it collects the tasks added inside it."""

    def add_task(self, task: Task, flow: Flow) -> None:
        """Take ``task``, just added to ``flow``, into the block."""


_active: ContextVar[tuple[Flow, ...]] = ContextVar("orchestrator_active_flow", default=())
_cases: ContextVar[tuple[CaseBlock, ...]] = ContextVar("orchestrator_active_case", default=())


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


def active_case() -> CaseBlock | None:
    """The innermost open ``case`` block, if any."""
    stack = _cases.get()
    return stack[-1] if stack else None


def push_case(block: CaseBlock) -> Token[tuple[CaseBlock, ...]]:
    """Open a ``case`` block; :func:`pop_case` the returned token to close it."""
    return _cases.set((*_cases.get(), block))


def pop_case(token: Token[tuple[CaseBlock, ...]]) -> None:
    """Close the ``case`` block opened with ``token``."""
    _cases.reset(token)
