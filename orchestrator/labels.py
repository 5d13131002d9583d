"""Labels: what flows and runs carry for concurrency limits, checked once here.

Pure: imports only :mod:`orchestrator.errors`."""

from __future__ import annotations

import re

from orchestrator.errors import ConcurrencyLimitError

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")


def check_label(label: object) -> str:
    """Return ``label`` if it is a valid label, else raise ConcurrencyLimitError."""
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ConcurrencyLimitError(
            f"invalid label {label!r}: use 1-100 letters, digits, '_', '.', ':', '/' or '-'"
        )
    return label
