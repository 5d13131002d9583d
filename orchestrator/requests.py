"""The value that travels when a flow run is created: a :class:`FlowRunRequest`
(what a caller asks for) becomes a :class:`NewFlowRun` (checked against the
flow's newest version, with its id, not stored yet). One spelling of the nine
fields, used by the client, ``StartFlowRun``, beat and the database.

Pure: imports only the core (errors, ids, labels, states, clock, telemetry)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.clock import as_utc, utcnow
from orchestrator.errors import ParameterError, SerializationError
from orchestrator.ids import new_run_id
from orchestrator.labels import check_labels
from orchestrator.states import State
from orchestrator.telemetry import RunTrace, new_run_context


@dataclass(frozen=True)
class FlowRunRequest:
    """A request for a run of the newest version of a flow.

    Attributes:
        flow_name: the flow's name.
        project_name: its project.
        parameters: values for its Parameters (checked when the run is prepared).
        idempotency_key: a key already used names that run instead of a new one.
        run_name: a readable name for the run.
        scheduled_start_time: start no earlier than this: an aware datetime, or a
            timedelta from when the request is made (the task runs, the client is
            called); held as the aware datetime it comes to.
        labels: extra labels (concurrency limits count runs per label); a string is
            one label.
        parent_flow_run_id: the flow run that started this one.
        parent_task_run_id: the task run that started this one.
    """

    flow_name: str
    project_name: str
    parameters: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    run_name: str | None = None
    scheduled_start_time: datetime | timedelta | None = None
    labels: str | Iterable[str] | None = ()
    parent_flow_run_id: str | None = None
    parent_task_run_id: str | None = None

    def __post_init__(self) -> None:
        if self.run_name is not None and not isinstance(self.run_name, str):
            raise SerializationError(
                f"run_name must be a string, got {type(self.run_name).__name__}"
            )
        object.__setattr__(self, "scheduled_start_time", start_time(self.scheduled_start_time))
        object.__setattr__(self, "labels", check_labels(self.labels))

    @property
    def start_at(self) -> datetime | None:
        """The scheduled start time, as the aware datetime it came to."""
        when = self.scheduled_start_time
        assert when is None or isinstance(when, datetime)  # made so by __post_init__
        return when

    @property
    def label_names(self) -> tuple[str, ...]:
        """The checked labels."""
        labels = self.labels
        assert isinstance(labels, tuple)  # made so by __post_init__
        return labels

    @property
    def starts_later(self) -> bool:
        """Whether the run is scheduled for a time still to come."""
        return self.start_at is not None and self.start_at > utcnow()


def start_time(when: object) -> datetime | None:
    """A requested start time as an aware datetime: a timedelta counts from now.

    Raises:
        ParameterError: neither None, an aware datetime nor a timedelta (a naive
            datetime names no instant).
    """
    if when is None:
        return None
    if isinstance(when, timedelta):
        return utcnow() + when
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ParameterError(
            "scheduled_start_time must be a timezone-aware datetime or a timedelta "
            f"from now, got {when!r}"
        )
    return when


@dataclass(frozen=True)
class NewFlowRun:
    """A checked flow run, built and not stored yet. Its fields are named as the
    stored run's columns, so code that reads a run reads either.

    Its id is the idempotency key's when there is one, so every attempt that
    builds it names the same run; the database's unique key is the guarantee."""

    id: str
    flow_id: str
    state: State
    parameters: dict[str, Any]
    labels: list[str]
    idempotency_key: str | None = None
    name: str | None = None
    scheduled_start_time: datetime | None = None
    parent_flow_run_id: str | None = None
    parent_task_run_id: str | None = None
    created: datetime = field(default_factory=utcnow)
    #: held back by a schedule's overlap policy until the schedule's earlier runs finish
    buffered: bool = False
    #: its span's trace context (None without tracing; see :mod:`orchestrator.telemetry`)
    trace_context: RunTrace | None = None

    @classmethod
    def of(
        cls,
        request: FlowRunRequest,
        flow_id: str,
        parameters: dict[str, Any],
        flow_labels: Iterable[str] = (),
        state: State | None = None,
    ) -> NewFlowRun:
        """The run ``request`` asks for, of flow version ``flow_id``.

        Args:
            request: the request.
            flow_id: the flow version it runs.
            parameters: the checked parameter values (defaults filled in).
            flow_labels: the labels every run of the flow carries.
            state: its first state; by default Scheduled when it starts later, else
                Submitted.
        """
        when = request.start_at
        if state is None:
            state = State.SCHEDULED if request.starts_later else State.SUBMITTED
        return cls(
            id=new_run_id(request.idempotency_key),
            flow_id=flow_id,
            state=state,
            parameters=dict(parameters),
            labels=sorted(set(request.label_names) | set(flow_labels)),
            idempotency_key=request.idempotency_key,
            name=request.run_name,
            # stored in UTC: SQLite keeps no offset and would read a local time back as UTC
            scheduled_start_time=as_utc(when) if when is not None else None,
            parent_flow_run_id=request.parent_flow_run_id,
            parent_task_run_id=request.parent_task_run_id,
            trace_context=new_run_context(),
        )
