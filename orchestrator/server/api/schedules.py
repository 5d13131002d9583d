"""``/api/schedules``: the scheduled flows with their next fire times, in the
schedule's zone and in UTC, paused or not.

May import FastAPI, pendulum, the server's deps and schemas, the client and the core."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from orchestrator.errors import ScheduleError
from orchestrator.schedules import schedule_from_dict
from orchestrator.schedules.text import describe
from orchestrator.server.deps import reader, services
from orchestrator.server.schemas import FireTime, ScheduleOut

router = APIRouter(prefix="/api", tags=["schedules"])


def scheduled(request: Request, count: int = 5, project: str | None = None) -> list[ScheduleOut]:
    """Every scheduled flow (its newest version) with its next ``count`` fire times."""
    store = services(request).client.backends.store
    rows = store.schedules.flows(include_paused=True)
    pauses = store.schedules.pauses()
    out = []
    for p, f in rows:
        if project is not None and p != project:
            continue
        base: dict[str, Any] = {
            "project": p,
            "flow_name": f.name,
            "version": f.version,
            "paused": (f.project_id, f.name) in pauses,
        }
        try:
            schedule = schedule_from_dict(f.schedule or {})
        except ScheduleError as exc:
            out.append(ScheduleOut(**base, schedule="?", timezone="?", next=[], error=str(exc)))
            continue
        times = [FireTime(local=t, utc=t.in_timezone("UTC")) for t in schedule.next(count)]
        out.append(
            ScheduleOut(
                **base,
                schedule=describe(schedule).replace("\n", ", "),
                timezone=schedule.timezone,
                next=times,
            )
        )
    return out


@router.get("/schedules", response_model=list[ScheduleOut], summary="List scheduled flows")
def list_schedules(
    request: Request,
    _: Annotated[str, Depends(reader)],
    count: Annotated[int, Query(ge=1, le=50, description="how many next fire times")] = 5,
    project: Annotated[str | None, Query(description="only this project's flows")] = None,
) -> list[ScheduleOut]:
    """The scheduled flows with their next fire times in the schedule's own zone
    (`local`, with its offset) and in UTC; a paused schedule says so (beat creates
    no runs for it)."""
    return scheduled(request, count, project)
