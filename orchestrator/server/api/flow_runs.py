"""``/api/flow-runs``: keyset pages of runs (``root=true``: runs without a parent, each
with its tree's states counted), one run, its tree, its logs (with its descendants'),
creating a run (the same checks as ``Client.create_flow_run``), cancelling one and
restarting one from its failure.

May import FastAPI, the server's deps and schemas, the client and the core."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from orchestrator.server.deps import reader, services, writer
from orchestrator.server.schemas import (
    CancelOut,
    FlowRunCreate,
    FlowRunDetail,
    FlowRunPageOut,
    LogPageOut,
    RestartOut,
    TreeNodeOut,
    detail_out,
    log_out,
    summary_out,
    tree_out,
)
from orchestrator.states import State

router = APIRouter(prefix="/api/flow-runs", tags=["flow runs"])

Reader = Annotated[str, Depends(reader)]
Writer = Annotated[str, Depends(writer)]


def parse_state(value: str | None) -> State | None:
    """A state named in a query (any case); None for none.

    Raises:
        HTTPException: 422 naming the states there are.
    """
    if not value:
        return None
    for s in State:
        if s.value.lower() == value.lower():
            return s
    names = ", ".join(s.value for s in State)
    raise HTTPException(422, f"unknown state {value!r}; the states are: {names}")


@router.get("", response_model=FlowRunPageOut, summary="List flow runs, newest first")
def list_flow_runs(
    request: Request,
    _: Reader,
    root: Annotated[bool, Query(description="only runs that no other run started")] = False,
    state: Annotated[str | None, Query(description="only runs in this state")] = None,
    flow: Annotated[str | None, Query(description="only runs of this flow")] = None,
    project: Annotated[str | None, Query(description="only runs of this project")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> FlowRunPageOut:
    """Flow runs newest first, one keyset page; each run comes with the states of every
    run under it counted (`descendants`), so a parent whose child failed shows it."""
    page = services(request).client.flow_runs_page(
        limit, cursor, root, parse_state(state), flow or None, project or None
    )
    return FlowRunPageOut(runs=[summary_out(s) for s in page.runs], next_cursor=page.next_cursor)


@router.post("", response_model=FlowRunDetail, status_code=201, summary="Create a flow run")
def create_flow_run(request: Request, body: FlowRunCreate, _: Writer) -> FlowRunDetail:
    """Create a run of the newest version of a flow and send it to the workers, with
    the checks of `Client.create_flow_run`: an unknown flow is a 404 and bad
    parameters a 422, each naming what was wrong, and then no run is created. A used
    `idempotency_key` answers with the run that holds it."""
    client = services(request).client
    run_id = client.create_flow_run(
        flow_name=body.flow_name,
        project_name=body.project_name,
        parameters=body.parameters,
        idempotency_key=body.idempotency_key,
        run_name=body.run_name,
        scheduled_start_time=body.scheduled_start_time,
        labels=body.labels,
    )
    return detail_out(client.get_flow_run(run_id))


@router.get("/{flow_run_id}", response_model=FlowRunDetail, summary="One flow run")
def get_flow_run(request: Request, flow_run_id: str, _: Reader) -> FlowRunDetail:
    """The run, its task runs and the ids of its child runs."""
    return detail_out(services(request).client.get_flow_run(flow_run_id))


@router.get("/{flow_run_id}/tree", response_model=TreeNodeOut, summary="A run's tree")
def get_tree(request: Request, flow_run_id: str, _: Reader) -> TreeNodeOut:
    """The run with its task runs and, nested under `children`, every run under it with
    theirs (a task run names the child it started in `child_flow_run_id`)."""
    return tree_out(services(request).client.flow_run_tree(flow_run_id))


@router.get("/{flow_run_id}/logs", response_model=LogPageOut, summary="A run's log lines")
def get_logs(
    request: Request,
    flow_run_id: str,
    _: Reader,
    descendants: Annotated[bool, Query(description="also the lines of the runs under it")] = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> LogPageOut:
    """The captured log lines of the run's task runs (and with `descendants=true` of
    every run under it), ordered by time, each naming its run and task."""
    page = services(request).client.flow_run_logs(flow_run_id, descendants, limit, cursor)
    return LogPageOut(lines=[log_out(ln) for ln in page.lines], next_cursor=page.next_cursor)


@router.post("/{flow_run_id}/cancel", response_model=CancelOut, summary="Cancel a flow run")
def cancel_flow_run(request: Request, flow_run_id: str, _: Writer) -> CancelOut:
    """Cancel a run that has not finished, and its unfinished children."""
    client = services(request).client
    cancelled = client.cancel_flow_run(flow_run_id)
    state = client.get_flow_run(flow_run_id, task_runs=False).state
    return CancelOut(id=flow_run_id, cancelled=cancelled, state=state.value)


@router.post(
    "/{flow_run_id}/restart", response_model=RestartOut, summary="Restart a run from its failure"
)
def restart_flow_run(request: Request, flow_run_id: str, _: Writer) -> RestartOut:
    """Restart a finished run that did not succeed, in place (same id): its failed task
    runs and everything after them run again, a failed child restarts in place. A run
    still running, one that succeeded, one of an archived flow version, or a child a
    running parent waits on is refused with a 409 saying why."""
    client = services(request).client
    done = client.restart_flow_run(flow_run_id)
    state = client.get_flow_run(flow_run_id, task_runs=False).state
    return RestartOut(
        id=flow_run_id, attempt=done.attempt, children=list(done.children), state=state.value
    )
