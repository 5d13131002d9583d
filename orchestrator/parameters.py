"""Checking a flow run's parameter values against the flow's declared Parameters:
:func:`resolve_parameters`, within the size limit of values
(``ORCHESTRATOR_MAX_VALUE_BYTES``, :data:`MAX_PARAMETERS_BYTES` by default). Pure:
imports only the core (config, errors, serialization)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.config import DEFAULT_MAX_VALUE_BYTES, max_value_bytes
from orchestrator.errors import ParameterError, SerializationError
from orchestrator.serialization import over_limit, to_json

#: The largest JSON encoding of a run's parameters accepted by default, in bytes.
MAX_PARAMETERS_BYTES = DEFAULT_MAX_VALUE_BYTES


def resolve_parameters(
    flow_name: str,
    declarations: Sequence[Mapping[str, Any]],
    given: Mapping[str, Any] | None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Check ``given`` against the declarations and fill in defaults.

    Args:
        flow_name: the flow's name, for messages.
        declarations: each ``{"name", "default", "required"}``.
        given: the values passed for this run.
        max_bytes: the largest JSON encoding of the values accepted; by default the
            environment's ``ORCHESTRATOR_MAX_VALUE_BYTES``.

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
    limit = max_value_bytes() if max_bytes is None else max_bytes
    too_large = over_limit(encoded, f"parameters of flow {flow_name!r}", limit)
    if too_large:
        raise SerializationError(too_large)
    return values
