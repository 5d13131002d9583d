"""Flow run ids as the command line takes them: a whole id, or a prefix of one that
only one run has (as ``orchestrator runs`` shortens them).

May import the client layer and the core's errors; no command module."""

from __future__ import annotations

from orchestrator.client import Client
from orchestrator.errors import FlowRunNotFound

#: the length of a whole flow run id (a UUID)
FULL_ID_LENGTH = 36


def resolve_run_id(client: Client, text: str) -> str:
    """The id of the one flow run whose id is ``text`` or starts with it.

    Raises:
        FlowRunNotFound: no run's id starts with ``text``, or more than one does.
    """
    wanted = text.strip().lower()
    if len(wanted) >= FULL_ID_LENGTH:
        return text.strip()
    found = client.backends.store.flow_runs.ids_starting_with(wanted, limit=3)
    if len(found) == 1:
        return found[0]
    if not found:
        raise FlowRunNotFound(f"no flow run {text!r} (no run id starts with it)")
    shown = ", ".join(found[:2])
    raise FlowRunNotFound(
        f"flow run id prefix {text!r} is not unique ({shown}, ...): give more of the id"
    )
