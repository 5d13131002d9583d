"""Signals a task's code may raise to end its run in a chosen state. They are
control flow, kept apart from the error hierarchy in :mod:`orchestrator.errors`."""

from __future__ import annotations


class Signal(Exception):
    """Base of the signals a task may raise to choose its own final state."""


class SKIP(Signal):
    """Raise inside a task to end its run as Skipped."""


class FAIL(Signal):
    """Raise inside a task to end its run as Failed, without retries."""
