"""Dependent flows on a Celery worker fleet: flows that start other flows, pass
them parameters computed at run time, wait for them and take their state."""

# The flow model
# Running and registering
from orchestrator.client import Client, FlowRunInfo, TaskRunInfo

# Errors
from orchestrator.errors import (
    BackendUnavailable,
    ConcurrencyLimitError,
    ConfigurationError,
    FlowLoadError,
    FlowNotFound,
    FlowRunNotFound,
    FlowRunTimeout,
    FlowValidationError,
    OrchestratorError,
    ParameterError,
    ScheduleError,
    SerializationError,
    TaskRunNotFound,
)
from orchestrator.flow import Edge, Flow, flatten, unmapped

# Schedules
from orchestrator.schedules import CronSchedule, IntervalSchedule
from orchestrator.signals import FAIL, SKIP

# States
from orchestrator.states import FlowRunState, State, TaskRunState
from orchestrator.task import FunctionTask, Parameter, Task, task

# Flows of flows
from orchestrator.tasks import StartFlowRun

__all__ = [
    "FAIL",
    "SKIP",
    "BackendUnavailable",
    "Client",
    "ConcurrencyLimitError",
    "ConfigurationError",
    "CronSchedule",
    "Edge",
    "Flow",
    "FlowLoadError",
    "FlowNotFound",
    "FlowRunInfo",
    "FlowRunNotFound",
    "FlowRunState",
    "FlowRunTimeout",
    "FlowValidationError",
    "FunctionTask",
    "IntervalSchedule",
    "OrchestratorError",
    "Parameter",
    "ParameterError",
    "ScheduleError",
    "SerializationError",
    "StartFlowRun",
    "State",
    "Task",
    "TaskRunInfo",
    "TaskRunNotFound",
    "TaskRunState",
    "flatten",
    "task",
    "unmapped",
]

__version__ = "0.1.0"
