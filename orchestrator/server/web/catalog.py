"""The catalog pages: ``/flows`` (registered flows, their parameters and schedules),
``/schedules`` (next fire times in the schedule's zone and in UTC, paused or not) and
``/limits`` (each label's limit and the runs holding its slots).

May import FastAPI, the server's deps, render and api modules, the client layer and
the core."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from orchestrator.server.api.flows import list_flows
from orchestrator.server.api.limits import limits
from orchestrator.server.api.schedules import scheduled
from orchestrator.server.deps import page_reader
from orchestrator.server.web.render import render

router = APIRouter(include_in_schema=False)

Reader = Annotated[str, Depends(page_reader)]


@router.get("/flows", response_class=HTMLResponse)
def flows_page(request: Request, role: Reader, archived: bool = False) -> Response:
    """Every registered flow (newest versions; with ``archived=true`` the older ones)."""
    rows = list_flows(request, role, None, archived)
    return render(request, "flows.html", {"flows": rows, "archived": archived})


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, _: Reader) -> Response:
    """The scheduled flows and their next fire times."""
    return render(request, "schedules.html", {"schedules": scheduled(request, 5)})


@router.get("/limits", response_class=HTMLResponse)
def limits_page(request: Request, _: Reader) -> Response:
    """The concurrency limits and who holds their slots."""
    return render(request, "limits.html", {"limits": limits(request)})
