"""JSON only on the wire: parameters and results are checked here, and a value
that is not JSON names the offending type in its error; :func:`over_limit` says
when one is too large to keep.

Pure: the standard library only."""

from __future__ import annotations

import json
from typing import Any


def to_json(value: Any, what: str) -> str:
    """Encode ``value`` as compact JSON or raise TypeError naming ``what`` and the bad type."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        bad = first_unserialisable(value)
        raise TypeError(
            f"{what} is not JSON-serialisable: {bad or type(value).__name__} ({exc})"
        ) from None


def first_unserialisable(value: Any) -> str | None:
    """A description of the first part of ``value`` JSON cannot carry, or None."""
    if isinstance(value, str | int | float | bool) or value is None:
        return None
    if isinstance(value, list | tuple):
        for v in value:
            found = first_unserialisable(v)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool) and k is not None:
                return f"key of type {type(k).__name__}"
            found = first_unserialisable(v)
            if found:
                return found
        return None
    return f"a value of type {type(value).__name__}"


def over_limit(encoded: str, what: str, limit: int) -> str | None:
    """The error message when ``encoded``, the JSON of ``what``, is longer than
    ``limit`` bytes (``ORCHESTRATOR_MAX_VALUE_BYTES``); None when it fits."""
    if len(encoded) <= limit:
        return None
    return (
        f"{what}: {len(encoded):,} bytes as JSON, over the limit of {limit:,} "
        "(ORCHESTRATOR_MAX_VALUE_BYTES)"
    )
