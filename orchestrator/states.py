"""Run states: one ``str`` enum for flow runs and task runs (:class:`State`), the
one table of transitions a run may make (:data:`TRANSITIONS`, which the database's
compare-and-set updates are checked against), and the final states of a local run
(:class:`TaskRunState`, :class:`FlowRunState`). Pure: the standard library only (the
task type only for type checking)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.task import Task


class State(StrEnum):
    """The state of a flow run or a task run."""

    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    QUEUED = "Queued"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCESS = "Success"
    FAILED = "Failed"
    TRIGGER_FAILED = "TriggerFailed"
    TIMED_OUT = "TimedOut"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        """True for states a run never leaves."""
        return self in FINAL_STATES

    @property
    def is_successful(self) -> bool:
        """True for Success and Skipped (a skip counts as success, as in Prefect 1)."""
        return self in (State.SUCCESS, State.SKIPPED)

    @property
    def is_failed(self) -> bool:
        """True for Failed and its kinds, TriggerFailed and TimedOut."""
        return self in (State.FAILED, State.TRIGGER_FAILED, State.TIMED_OUT)


FINAL_STATES = frozenset(
    {
        State.SUCCESS,
        State.FAILED,
        State.TRIGGER_FAILED,
        State.TIMED_OUT,
        State.SKIPPED,
        State.CANCELLED,
    }
)

_ENDINGS = frozenset(FINAL_STATES)

#: Allowed transitions: ``TRANSITIONS[a]`` holds every state a run in ``a`` may move to.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset(
        {State.SCHEDULED, State.QUEUED, State.SUBMITTED, State.RUNNING} | _ENDINGS
    ),
    State.SCHEDULED: frozenset({State.QUEUED, State.SUBMITTED, State.RUNNING} | _ENDINGS),
    State.QUEUED: frozenset({State.SUBMITTED, State.RUNNING} | _ENDINGS),
    # back to Scheduled: beat puts a run back when sending it failed, to send it again
    State.SUBMITTED: frozenset({State.SCHEDULED, State.QUEUED, State.RUNNING} | _ENDINGS),
    State.RUNNING: frozenset({State.RETRYING, State.QUEUED} | _ENDINGS),
    State.RETRYING: frozenset({State.RUNNING} | _ENDINGS),
    **{final: frozenset() for final in FINAL_STATES},
}


def can_transition(old: State, new: State) -> bool:
    """Whether a run in ``old`` may move to ``new``."""
    return new in TRANSITIONS[old]


def states_before(new: State) -> frozenset[State]:
    """Every state from which ``new`` may be reached (the compare side of a CAS update)."""
    return frozenset(old for old, nexts in TRANSITIONS.items() if new in nexts)


class _Predicates:
    """Prefect 1's state predicates, for what state handlers are given."""

    state: State

    def is_successful(self) -> bool:
        """True for Success and Skipped (a skip counts as success, as in Prefect 1)."""
        return self.state.is_successful

    def is_failed(self) -> bool:
        """True for Failed, TimedOut and TriggerFailed."""
        return self.state.is_failed

    def is_finished(self) -> bool:
        """True for the final states."""
        return self.state.is_final

    def is_skipped(self) -> bool:
        """True for Skipped."""
        return self.state is State.SKIPPED

    def is_running(self) -> bool:
        """True for Running."""
        return self.state is State.RUNNING

    def is_pending(self) -> bool:
        """True for the states before Running (Pending, Scheduled, Queued, Submitted)."""
        return self.state in (State.PENDING, State.SCHEDULED, State.QUEUED, State.SUBMITTED)

    def is_retrying(self) -> bool:
        """True for Retrying."""
        return self.state is State.RETRYING


@dataclass
class TaskRunState(_Predicates):
    """The recorded outcome of one task run (or, given to a state handler, one of
    the states it goes through).

    Attributes:
        state: the run's state.
        result: the task's return value (JSON-compatible) when it succeeded.
        message: a one-line explanation, for example the exception that failed it.
        attempts: how many times the task's code was started.
        map_states: a mapped task's children, in order (Prefect 1's ``map_states``).
    """

    state: State
    result: Any = None
    message: str | None = None
    attempts: int = 0
    map_states: list[TaskRunState] = field(default_factory=list)


@dataclass
class FlowRunState(_Predicates):
    """The final state of a flow run, with the state of each of its tasks (or, given
    to a flow's state handler, one of the states it goes through).

    Attributes:
        state: the flow run's state.
        message: a one-line explanation.
        result: each task's :class:`TaskRunState`, keyed by the task object (in
            ``flow.run()``; on workers a flow's state handlers get the reference
            tasks' states at the end).
    """

    state: State
    message: str | None = None
    result: dict[Task, TaskRunState] = field(default_factory=dict)

    def by_slug(self) -> dict[str, TaskRunState]:
        """The task states keyed by task slug."""
        return {task.slug or task.name: st for task, st in self.result.items()}
