"""Triggers: pure functions of the upstream task states that decide whether a
task runs. A trigger returns True to run; False makes the task TriggerFailed; it
may also raise :class:`~orchestrator.signals.SKIP` to skip the task. Pure: imports
only the core (signals, states)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from orchestrator.signals import SKIP
from orchestrator.states import State

Trigger = Callable[[Sequence[State]], bool]


def all_successful(upstream: Sequence[State]) -> bool:
    """Run when every upstream task succeeded (or was skipped). The default."""
    return all(s.is_successful for s in upstream)


def all_failed(upstream: Sequence[State]) -> bool:
    """Run when every upstream task failed."""
    return all(s.is_failed for s in upstream)


def any_successful(upstream: Sequence[State]) -> bool:
    """Run when at least one upstream task succeeded (or there are none)."""
    return not upstream or any(s.is_successful for s in upstream)


def any_failed(upstream: Sequence[State]) -> bool:
    """Run when at least one upstream task failed (or there are none)."""
    return not upstream or any(s.is_failed for s in upstream)


def all_finished(upstream: Sequence[State]) -> bool:
    """Run once every upstream task is finished, whatever its state."""
    return all(s.is_final for s in upstream)


always_run = all_finished


def not_all_skipped(upstream: Sequence[State]) -> bool:
    """Run when every upstream succeeded and at least one did not skip.

    When every upstream skipped the task is skipped too (it raises :class:`SKIP`,
    as in Prefect 1), rather than trigger-failed."""
    if upstream and all(s is State.SKIPPED for s in upstream):
        raise SKIP("every upstream task skipped")
    return all(s.is_successful for s in upstream)


def _counted(
    predicate: Callable[[State], bool], at_least: int | float | None, at_most: int | float | None
) -> Callable[[Sequence[State]], bool]:
    def trigger(upstream: Sequence[State]) -> bool:
        n = len(upstream)
        if not n:
            return True  # every trigger passes a task without upstream tasks (Prefect 1)
        hits = sum(1 for s in upstream if predicate(s))
        low = at_least if at_least is not None else 0
        high = at_most if at_most is not None else n
        if isinstance(low, float):
            low = low * n
        if isinstance(high, float):
            high = high * n
        return bool(low <= hits <= high)

    return trigger


def some_successful(
    at_least: int | float | None = None, at_most: int | float | None = None
) -> Trigger:
    """Run when the number of successful upstreams is within bounds.

    Args:
        at_least: lowest count (an int) or fraction (a float in [0, 1]).
        at_most: highest count or fraction.

    Returns:
        The trigger function.
    """
    trigger = _counted(lambda s: s.is_successful, at_least, at_most)
    trigger.__name__ = "some_successful"
    return trigger


def some_failed(at_least: int | float | None = None, at_most: int | float | None = None) -> Trigger:
    """Run when the number of failed upstreams is within bounds.

    Args:
        at_least: lowest count (an int) or fraction (a float in [0, 1]).
        at_most: highest count or fraction.

    Returns:
        The trigger function.
    """
    trigger = _counted(lambda s: s.is_failed, at_least, at_most)
    trigger.__name__ = "some_failed"
    return trigger


__all__ = [
    "all_failed",
    "all_finished",
    "all_successful",
    "always_run",
    "any_failed",
    "any_successful",
    "not_all_skipped",
    "some_failed",
    "some_successful",
]
