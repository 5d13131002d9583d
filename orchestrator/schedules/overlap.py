"""Overlap policies: what beat (and a backfill) does with a slot of a schedule while
an earlier run of the same flow from that schedule has not finished.

One table of decisions, :data:`DECISIONS`, answers for every policy
(:class:`Overlap`) and situation (:class:`Busy`) with an :class:`Action`;
:func:`arrange` applies it to a batch of slots, oldest first, and
:func:`may_release` says when a buffered run may start. Beat and the backfill ask
these functions and do what they answer; nothing else decides. Pure: imports only
the standard library and :mod:`orchestrator.errors`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from orchestrator.errors import ScheduleError

__all__ = [
    "DECISIONS",
    "Action",
    "Busy",
    "Overlap",
    "SlotDecision",
    "arrange",
    "decide",
    "may_release",
    "overlap_policy",
]


class Overlap(StrEnum):
    """What to do with a slot that fires while an earlier run has not finished."""

    #: Start it anyway (the default).
    ALLOW = "allow"
    #: Record the slot as skipped; create no run.
    SKIP = "skip"
    #: Keep at most one run waiting, started when the running one finishes; later slots skip.
    BUFFER_ONE = "buffer_one"
    #: Queue every slot; one run at a time, in slot order.
    BUFFER_ALL = "buffer_all"
    #: Cancel the unfinished runs (and their children), then start.
    CANCEL_OTHER = "cancel_other"

    def __str__(self) -> str:
        return self.value


def overlap_policy(value: object) -> Overlap:
    """The policy called ``value`` (an :class:`Overlap` or its name).

    Raises:
        ScheduleError: an unknown policy, naming the allowed ones.
    """
    if isinstance(value, Overlap):
        return value
    if isinstance(value, str):
        try:
            return Overlap(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(repr(p.value) for p in Overlap)
    raise ScheduleError(f"unknown overlap policy {value!r}: expected one of {allowed}")


class Action(StrEnum):
    """What happens to one slot."""

    #: Create its run; it is sent to the workers when due.
    START = "start"
    #: Create its run held back (buffered): sent once no earlier run is active.
    BUFFER = "buffer"
    #: Record the slot as skipped; no run.
    SKIP = "skip"
    #: Cancel every unfinished run of the schedule (and their children), then start.
    CANCEL_AND_START = "cancel_and_start"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Busy:
    """The runs of a schedule that have not finished, as the decisions count them.

    Attributes:
        active: runs sent to the workers (or about to be) and not final.
        held: buffered runs waiting for the active ones to finish.
    """

    active: int = 0
    held: int = 0

    @property
    def idle(self) -> bool:
        """No run of the schedule is unfinished."""
        return self.active == 0 and self.held == 0

    def after(self, action: Action) -> Busy:
        """The situation once ``action`` was done for one more slot."""
        if action is Action.START:
            return replace(self, active=self.active + 1)
        if action is Action.BUFFER:
            return replace(self, held=self.held + 1)
        if action is Action.CANCEL_AND_START:
            return Busy(active=1, held=0)
        return self


#: The one table of decisions: per policy, the action for a slot when nothing of the
#: schedule is unfinished, when runs are unfinished but none is held back, and when
#: some are held back already.
DECISIONS: Mapping[Overlap, tuple[Action, Action, Action]] = MappingProxyType(
    {
        Overlap.ALLOW: (Action.START, Action.START, Action.START),
        Overlap.SKIP: (Action.START, Action.SKIP, Action.SKIP),
        Overlap.BUFFER_ONE: (Action.START, Action.BUFFER, Action.SKIP),
        Overlap.BUFFER_ALL: (Action.START, Action.BUFFER, Action.BUFFER),
        Overlap.CANCEL_OTHER: (Action.START, Action.CANCEL_AND_START, Action.CANCEL_AND_START),
    }
)


def decide(policy: Overlap | str, busy: Busy) -> Action:
    """The action :data:`DECISIONS` gives for one slot under ``policy`` in ``busy``."""
    idle, running, holding = DECISIONS[overlap_policy(policy)]
    if busy.idle:
        return idle
    return holding if busy.held else running


def may_release(busy: Busy) -> bool:
    """Whether the oldest buffered run of a schedule may start: no run of it is active.

    ``busy`` counts the schedule's unfinished runs, the buffered ones as ``held``.
    Buffered runs start one at a time, oldest slot first, whatever made them wait.
    """
    return busy.active == 0 and busy.held > 0


@dataclass(frozen=True)
class SlotDecision:
    """What happens to one slot, and why.

    Attributes:
        slot: the nominal fire time.
        action: what to do.
        superseded_by: for a slot skipped under ``cancel_other`` because a later slot
            of the same batch starts instead, that slot.
    """

    slot: datetime
    action: Action
    superseded_by: datetime | None = None


def arrange(
    policy: Overlap | str, busy: Busy, slots: Sequence[datetime]
) -> tuple[list[SlotDecision], Busy]:
    """Decide a batch of slots (oldest first) one after the other, each seeing what
    the earlier ones did.

    Under ``cancel_other`` only the last slot of a batch starts (cancelling what is
    unfinished); the earlier ones are recorded as skipped, superseded by it, rather
    than started only to be cancelled at once.

    Args:
        policy: the overlap policy.
        busy: the schedule's unfinished runs before the batch.
        slots: the slots, ascending.

    Returns:
        One decision per slot, in order, and the situation after the batch.
    """
    chosen = overlap_policy(policy)
    decisions: list[SlotDecision] = []
    for index, slot in enumerate(slots):
        if chosen is Overlap.CANCEL_OTHER and index < len(slots) - 1:
            decisions.append(SlotDecision(slot, Action.SKIP, superseded_by=slots[-1]))
            continue
        action = decide(chosen, busy)
        decisions.append(SlotDecision(slot, action))
        busy = busy.after(action)
    return decisions, busy
