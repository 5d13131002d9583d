"""State handlers, as in Prefect 1: ``Task(state_handlers=[...])`` and
``Flow(state_handlers=[...])``, each called as ``handler(obj, old_state, new_state)``
on every transition, in order; a handler may return a replacement for the new state
(a :class:`~orchestrator.states.TaskRunState` or
:class:`~orchestrator.states.FlowRunState`, or a bare
:class:`~orchestrator.states.State`), and one that raises is logged and fails the
run with a message naming it. :func:`task_changed` and :func:`flow_changed` are
the one place the handlers are called, by ``flow.run()`` and by the workers alike;
both return at once when there is no handler. Pure: imports only the core
(errors, serialization, states)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from orchestrator.errors import FlowValidationError
from orchestrator.serialization import to_json
from orchestrator.states import FlowRunState, State, TaskRunState

log = logging.getLogger("orchestrator.handlers")

#: A state handler: ``handler(task_or_flow, old_state, new_state)`` returning the
#: new state to keep (None keeps ``new_state``).
StateHandler = Callable[[Any, Any, Any], Any]

R = TypeVar("R", TaskRunState, FlowRunState)


class OnFailure:
    """The state handler ``on_failure=fn`` adds: ``fn(obj, new_state)`` each time the
    run enters a failed state (Failed, TimedOut, TriggerFailed), as in Prefect 1."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn
        self.__qualname__ = f"on_failure={getattr(fn, '__qualname__', type(fn).__qualname__)}"
        self.__module__ = getattr(fn, "__module__", __name__)

    def __call__(self, obj: Any, old: Any, new: Any) -> None:
        if new.is_failed():
            self.fn(obj, new)


def check_handlers(
    handlers: Sequence[StateHandler] | None,
    owner: str,
    on_failure: Callable[[Any, Any], Any] | None = None,
) -> list[StateHandler]:
    """The handlers of a task or flow, checked when it is built (``on_failure``
    last, as an :class:`OnFailure` handler)."""
    out = list(handlers or ())
    if on_failure is not None:
        if not callable(on_failure):
            raise FlowValidationError(f"{owner}: on_failure must be callable")
        out.append(OnFailure(on_failure))
    for h in out:
        if not callable(h):
            raise FlowValidationError(
                f"{owner}: a state handler must be callable, got {type(h).__name__}"
            )
    return out


def handler_name(handler: StateHandler) -> str:
    """A handler's name: its qualified name, or its class's for a callable object."""
    return str(getattr(handler, "__qualname__", None) or type(handler).__qualname__)


def _call(obj: Any, handlers: Sequence[StateHandler], old: R, new: R, what: str) -> R:
    kind = type(new)
    for handler in handlers:
        try:
            returned = handler(obj, old, new)
            if returned is None:
                continue
            if isinstance(returned, State):
                returned = dataclasses.replace(new, state=returned)
            if not isinstance(returned, kind):
                raise TypeError(
                    f"returned {type(returned).__name__}, not a {kind.__name__} or a State"
                )
            if isinstance(returned, TaskRunState) and returned.state.is_final:
                to_json(returned.result, f"result of {what}")
            new = returned
        except Exception as exc:
            message = f"state handler {handler_name(handler)} of {what} raised {type(exc).__name__}: {exc}"
            log.exception("%s", message.splitlines()[0])
            return kind(State.FAILED, message=message.splitlines()[0][:2000])
    return new


def task_changed(task: Any, old: TaskRunState, new: TaskRunState) -> TaskRunState:
    """Call ``task``'s state handlers on a transition; the state to record.

    Args:
        task: the task (its ``state_handlers``).
        old: the state the task run leaves.
        new: the state it enters.

    Returns:
        ``new``, or what the handlers replaced it with; Failed, with a message
        naming the handler, when one raised.
    """
    handlers = task.state_handlers
    if not handlers:
        return new
    return _call(task, handlers, old, new, f"task {task.slug or task.name!r}")


def flow_changed(flow: Any, old: FlowRunState, new: FlowRunState) -> FlowRunState:
    """Call ``flow``'s state handlers on a transition of one of its runs; the state
    to record (see :func:`task_changed`): ``new``'s state or a final one (a final
    state in place of Running ends the run before its tasks run)."""
    handlers = flow.state_handlers
    if not handlers:
        return new
    after = _call(flow, handlers, old, new, f"flow {flow.name!r}")
    if after.state is new.state or after.state.is_final:
        return after
    return FlowRunState(
        State.FAILED,
        message=f"a state handler of flow {flow.name!r} chose {after.state.value}, "
        f"which the run cannot enter from {old.state.value}",
    )
