"""Dependent flows on a Celery worker fleet: flows that start other flows, pass
them parameters computed at run time, wait for them and take their state.

This ``__init__`` only hands on the public names of its modules (importing the
client installs the services the core asks for); no module of the package imports
it."""

# Running and registering
from orchestrator.client import Client
from orchestrator.config import VERSION

# Control flow
from orchestrator.control_flow import case, ifelse, merge, switch

# Errors
from orchestrator.errors import (
    BackendUnavailable,
    ConcurrencyLimitError,
    ConfigurationError,
    FlowCycleError,
    FlowLoadError,
    FlowNotFound,
    FlowRunNotFound,
    FlowRunTimeout,
    FlowValidationError,
    NestedTaskError,
    OrchestratorError,
    ParameterError,
    ScheduleError,
    SerializationError,
    TaskRunNotFound,
)

# The flow model
from orchestrator.flow import Edge, Flow, flatten, unmapped

# What the client reports
from orchestrator.infos import FlowRunInfo, TaskRunInfo

# Schedules
from orchestrator.schedules import CronSchedule, IntervalSchedule

# Signals a task raises
from orchestrator.signals import FAIL, SKIP

# States
from orchestrator.states import FlowRunState, State, TaskRunState

# Tasks
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
    "FlowCycleError",
    "FlowLoadError",
    "FlowNotFound",
    "FlowRunInfo",
    "FlowRunNotFound",
    "FlowRunState",
    "FlowRunTimeout",
    "FlowValidationError",
    "FunctionTask",
    "IntervalSchedule",
    "NestedTaskError",
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
    "case",
    "flatten",
    "ifelse",
    "merge",
    "switch",
    "task",
    "unmapped",
]

__version__ = VERSION
