"""The services the pure core asks for and the client layer provides
(:class:`Services`): storing a flow for ``Flow.register()`` and running a stored
child flow run in this process for ``flow.run()``. The client layer installs them
when it is imported (``import orchestrator`` does), as Dramatiq installs its global
broker, so the core never imports the client. Pure: imports only
:mod:`orchestrator.errors` (the flow, task and engine types only for type
checking)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from orchestrator.errors import ConfigurationError

if TYPE_CHECKING:
    from orchestrator.engine import Outcome, WaitForFlowRun
    from orchestrator.flow import Flow
    from orchestrator.task import Task


class Services(Protocol):
    """What the core needs from the layers above it."""

    def register_flow(self, flow: Flow, project_name: str, import_ref: str | None) -> int:
        """Store ``flow`` in a project and return its version number.

        Args:
            flow: the flow (validated).
            project_name: the project, created when missing.
            import_ref: how workers import the flow; None finds it automatically.

        Returns:
            The flow's version number.
        """
        ...

    def run_child(self, task: Task, wait_for: WaitForFlowRun) -> Outcome:
        """Run the flow run a task asked to mirror, in this process, and return the
        outcome the task takes from it.

        Args:
            task: the waiting task.
            wait_for: the child run (``wait_for.new`` when it is not stored yet).

        Returns:
            The task's outcome: the child's state, a message naming it, and its
            structured result.
        """
        ...


_installed: Services | None = None


def install(services: Services) -> None:
    """Make ``services`` the ones the core uses (the last installed wins)."""
    global _installed
    _installed = services


def installed() -> Services:
    """The installed services.

    Raises:
        ConfigurationError: none is installed (``import orchestrator`` installs them).
    """
    if _installed is None:
        raise ConfigurationError(
            "no orchestrator services are installed: import orchestrator (or "
            "orchestrator.client) before registering flows or running child flows"
        )
    return _installed
