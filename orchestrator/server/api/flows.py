"""``/api/flows``: the registered flows, newest version first.

May import FastAPI, the server's deps and schemas, the client and the core."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from orchestrator.clock import aware
from orchestrator.errors import ScheduleError
from orchestrator.schedules import schedule_from_dict
from orchestrator.schedules.text import describe
from orchestrator.server.deps import reader, services
from orchestrator.server.schemas import FlowOut, ParameterOut

router = APIRouter(prefix="/api", tags=["flows"])


def schedule_text(schedule: dict[str, Any] | None) -> str | None:
    """A stored schedule in words (None: no schedule)."""
    if not schedule:
        return None
    try:
        return describe(schedule_from_dict(schedule)).replace("\n", ", ")
    except ScheduleError as exc:
        return f"unreadable: {exc}"


@router.get("/flows", response_model=list[FlowOut], summary="List registered flows")
def list_flows(
    request: Request,
    _: Annotated[str, Depends(reader)],
    project: Annotated[str | None, Query(description="only this project's flows")] = None,
    archived: Annotated[bool, Query(description="also the archived versions")] = False,
) -> list[FlowOut]:
    """Every flow by project and name, its newest version first (with `archived=true`,
    the older versions too)."""
    store = services(request).client.backends.store
    rows = store.flows.list(include_archived=archived)
    pauses = store.schedules.pauses()
    return [
        FlowOut(
            project=p,
            name=f.name,
            version=f.version,
            archived=f.archived,
            parameters=[
                ParameterOut(
                    name=d["name"], required=bool(d.get("required")), default=d.get("default")
                )
                for d in f.parameters or []
            ],
            labels=list(f.labels or []),
            schedule=schedule_text(f.schedule),
            schedule_paused=(f.project_id, f.name) in pauses,
            created=aware(f.created) or f.created,
        )
        for p, f in rows
        if project is None or p == project
    ]
