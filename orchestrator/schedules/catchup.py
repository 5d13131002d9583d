"""Catch-up: which slots beat still runs after it was down, as one value,
:class:`CatchUp`, made from a schedule's ``catchup`` and ``catchup_window``
(:func:`catch_up`). Pure: imports only the standard library and
:mod:`orchestrator.errors`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orchestrator.errors import ScheduleError

__all__ = ["ON_TIME", "CatchUp", "catch_up", "duration_text"]

#: A slot beat sees within this long after its time is on time, never missed, whatever
#: the window (beat ticks every second; this leaves room for a slow tick).
ON_TIME = timedelta(seconds=10)


@dataclass(frozen=True)
class CatchUp:
    """What beat does with the slots that passed while it was not running.

    Attributes:
        window: missed slots younger than this (when beat sees them) run, each once,
            oldest first; older ones are recorded as missed. None: every missed slot
            runs (``catchup=True``).
        latest_only: only the most recent missed slot runs, the others are recorded
            as missed (``catchup=False``, the default; ``window`` is then zero).
    """

    window: timedelta | None
    latest_only: bool = False

    def describe(self) -> str:
        """A few words: ``latest only``, ``all`` or ``within 4m30s``."""
        if self.latest_only:
            return "latest only"
        if self.window is None:
            return "all"
        return f"within {duration_text(self.window.total_seconds())}"


def catch_up(catchup: object, catchup_window: object) -> CatchUp:
    """The catch-up of a schedule's ``catchup`` and ``catchup_window`` arguments.

    ``catchup=True`` runs every missed slot, ``catchup=False`` (without a window) only
    the latest, and ``catchup_window=timedelta(...)`` the ones younger than the window.

    Raises:
        ScheduleError: ``catchup`` is not a bool, the window is not a non-negative
            timedelta, or both ``catchup=True`` and a window are given.
    """
    if not isinstance(catchup, bool):
        raise ScheduleError(f"catchup must be True or False, got {catchup!r}")
    if catchup_window is None:
        return CatchUp(window=None) if catchup else CatchUp(timedelta(0), latest_only=True)
    if not isinstance(catchup_window, timedelta):
        raise ScheduleError(
            f"catchup_window must be a datetime.timedelta, got {type(catchup_window).__name__}"
        )
    if catchup_window < timedelta(0):
        raise ScheduleError(f"catchup_window must not be negative, got {catchup_window}")
    if catchup:
        raise ScheduleError(
            "give catchup=True (run every missed slot) or catchup_window (run the missed "
            "slots younger than it), not both"
        )
    return CatchUp(window=catchup_window)


def duration_text(seconds: float) -> str:
    """``2s``, ``90s`` -> ``1m30s``, ``1h``, ``1d2h``: a schedule's interval or window."""
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)
