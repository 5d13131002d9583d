"""Checking a flow run's parameter values against the flow's declared Parameters:
:func:`resolve_parameters` and the size limit :data:`MAX_PARAMETERS_BYTES`. Pure:
imports only the core (errors, serialization)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import ParameterError, SerializationError
from orchestrator.serialization import to_json

#: The largest JSON encoding of a run's parameters accepted, in bytes.
MAX_PARAMETERS_BYTES = 1_000_000


def resolve_parameters(
    flow_name: str, declarations: Sequence[Mapping[str, Any]], given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Check ``given`` against the declarations and fill in defaults.

    Args:
        flow_name: the flow's name, for messages.
        declarations: each ``{"name", "default", "required"}``.
        given: the values passed for this run.

    Returns:
        The full parameter values for the run.

    Raises:
        ParameterError: unknown names, missing required values, not a mapping.
        SerializationError: a value that is not JSON or is too large.
    """
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ParameterError(
            f"parameters for flow {flow_name!r} must be a mapping of names to values, "
            f"got {type(given).__name__}"
        )
    known = {d["name"]: d for d in declarations}
    unknown = sorted(str(k) for k in given if k not in known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise ParameterError(
            f"flow {flow_name!r} has no parameter(s) {', '.join(unknown)} (it accepts: {accepted})"
        )
    missing = sorted(n for n, d in known.items() if d.get("required") and n not in given)
    if missing:
        raise ParameterError(f"flow {flow_name!r} needs required parameter(s) {', '.join(missing)}")
    values = {n: given[n] if n in given else d.get("default") for n, d in known.items()}
    try:
        encoded = to_json(values, f"parameters of flow {flow_name!r}")
    except TypeError as exc:
        raise SerializationError(str(exc)) from None
    if len(encoded) > MAX_PARAMETERS_BYTES:
        raise SerializationError(
            f"parameters of flow {flow_name!r} are {len(encoded)} bytes as JSON, "
            f"over the limit of {MAX_PARAMETERS_BYTES}"
        )
    return values
