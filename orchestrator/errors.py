"""The one error hierarchy: every error this package raises on purpose derives from
:class:`OrchestratorError`, and each message is one line naming what was wrong."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Root of every error raised by the orchestrator."""


class ConfigurationError(OrchestratorError):
    """Raised when a setting is missing or malformed."""


class BackendUnavailable(OrchestratorError):
    """Raised when Redis or the database cannot be reached after retries."""


class FlowValidationError(OrchestratorError):
    """Raised when a flow is built wrongly: a cycle, an unknown argument, a foreign task."""


class NestedTaskError(FlowValidationError, TypeError):
    """Raised when a task sits inside a dict or list given as an argument (for
    example ``parameters={"x": some_task}``): only a task passed as a whole
    argument becomes a data edge. A TypeError too, as in Prefect 1."""


class FlowCycleError(FlowValidationError):
    """Raised at registration when a flow's StartFlowRun tasks, by their fixed flow
    names, would start the flow itself again (directly or through other flows)."""


class FlowNotFound(OrchestratorError):
    """Raised when no registered flow matches a name and project."""


class FlowRunNotFound(OrchestratorError):
    """Raised when a flow run id is unknown."""


class TaskRunNotFound(OrchestratorError):
    """Raised when a task run (flow run id and task slug) is unknown."""


class ParameterError(OrchestratorError):
    """Raised when flow run parameters are unknown, missing or malformed."""


class SerializationError(OrchestratorError):
    """Raised when a parameter or result cannot be carried as JSON."""


class ScheduleError(OrchestratorError):
    """Raised when a schedule is invalid: a bad cron string, a naive date, end before start."""


class FlowLoadError(OrchestratorError):
    """Raised when a flow's import reference no longer imports."""


class ConcurrencyLimitError(OrchestratorError):
    """Raised when a concurrency limit or label is invalid."""


class FlowRunTimeout(OrchestratorError):
    """Raised when waiting for a flow run takes longer than the given timeout."""


class InvalidCursor(OrchestratorError):
    """Raised when a page cursor was not handed out by a listing (or was altered)."""


class RestartRefused(OrchestratorError):
    """Raised when a flow run may not be restarted: it is still running, it succeeded,
    its flow version is archived, a running parent waits on it, or another restart
    got there first."""
