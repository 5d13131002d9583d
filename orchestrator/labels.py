"""Labels: what flows and runs carry for concurrency limits, checked once here.

Pure: imports only :mod:`orchestrator.errors`."""

from __future__ import annotations

import re
from collections.abc import Iterable

from orchestrator.errors import ConcurrencyLimitError

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")


def check_label(label: object) -> str:
    """Return ``label`` if it is a valid label, else raise ConcurrencyLimitError."""
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ConcurrencyLimitError(
            f"invalid label {label!r}: use 1-100 letters, digits, '_', '.', ':', '/' or '-'"
        )
    return label


def check_labels(labels: str | Iterable[object] | None) -> tuple[str, ...]:
    """Check a collection of labels; a string is one label, never split into its
    characters (``labels="gpu"`` means ``["gpu"]``).

    Raises:
        ConcurrencyLimitError: a label is invalid, or ``labels`` is not a string or
            a collection of them.
    """
    if labels is None:
        return ()
    if isinstance(labels, str):
        return (check_label(labels),)
    if isinstance(labels, bytes) or not isinstance(labels, Iterable):
        raise ConcurrencyLimitError(
            f"labels must be a string or a list of strings, got {type(labels).__name__}"
        )
    return tuple(check_label(label) for label in labels)
