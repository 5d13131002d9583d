"""The run pages: ``/`` (root runs with their trees' states rolled up, filtered by
flow, state and project), ``/runs/{id}`` (the tree with states, durations, a timeline
and the logs panel with the children's lines; it changes in place as states change,
through ``/api/events``), the fragments the page's script swaps in, and the cancel
form.

May import FastAPI, the server's deps, render and api modules, the client layer and
the core."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.server.api.flow_runs import parse_state
from orchestrator.server.deps import page_reader, page_writer, services
from orchestrator.server.web.render import render

router = APIRouter(include_in_schema=False)

Reader = Annotated[str, Depends(page_reader)]

#: How many log lines the run page shows (all of them: the logs API).
PAGE_LOG_LINES = 1000


def _listing(
    request: Request,
    flow: str | None,
    state: str | None,
    project: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, object]:
    client = services(request).client
    wanted = parse_state(state)
    page = client.flow_runs_page(limit, cursor, True, wanted, flow or None, project or None)
    flows = client.backends.store.flows.list()
    filters = {"flow": flow or "", "state": state or "", "project": project or ""}
    query = {k: v for k, v in filters.items() if v}
    if limit != 50:
        query["limit"] = str(limit)
    here = {**query, "cursor": cursor} if cursor else query
    return {
        "page": page,
        "filters": filters,
        "cursor": cursor,
        "next_url": f"/?{urlencode({**query, 'cursor': page.next_cursor})}"
        if page.next_cursor
        else "",
        "fragment_url": f"/runs-fragment?{urlencode(here)}",
        "flow_names": sorted({f.name for _, f in flows}),
        "projects": sorted({p for p, _ in flows}),
    }


@router.get("/", response_class=HTMLResponse)
def runs_page(
    request: Request,
    _: Reader,
    flow: str | None = None,
    state: str | None = None,
    project: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """The root runs, newest first, each with its tree's states as badges."""
    context = _listing(request, flow, state, project, cursor, limit)
    return render(request, "runs.html", context)


@router.get("/runs-fragment", response_class=HTMLResponse)
def runs_fragment(
    request: Request,
    _: Reader,
    flow: str | None = None,
    state: str | None = None,
    project: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """The table of root runs alone (the list page swaps it in as states change)."""
    context = _listing(request, flow, state, project, cursor, limit)
    return render(request, "_runs_table.html", context)


def _tree(request: Request, run_id: str) -> dict[str, object]:
    client = services(request).client
    return {"tree": client.flow_run_tree(run_id)}


def _logs(request: Request, run_id: str) -> dict[str, object]:
    page = services(request).client.flow_run_logs(run_id, True, PAGE_LOG_LINES)
    return {"logs": page, "run_id": run_id, "log_limit": PAGE_LOG_LINES}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, _: Reader) -> Response:
    """A run's tree, timeline and logs, kept live by the page's script."""
    after = services(request).client.backends.store.events.last_id()
    context = {**_tree(request, run_id), **_logs(request, run_id), "after": after}
    return render(request, "run.html", context)


@router.get("/runs/{run_id}/fragment", response_class=HTMLResponse)
def run_fragment(request: Request, run_id: str, _: Reader) -> Response:
    """The run's header, tree and timeline alone, for the page's script."""
    return render(request, "_run_tree.html", _tree(request, run_id))


@router.get("/runs/{run_id}/logs-fragment", response_class=HTMLResponse)
def logs_fragment(request: Request, run_id: str, _: Reader) -> Response:
    """The run's logs panel alone, for the page's script."""
    return render(request, "_run_logs.html", _logs(request, run_id))


@router.post("/runs/{run_id}/cancel")
def cancel(request: Request, run_id: str, _: Annotated[str, Depends(page_writer)]) -> Response:
    """The cancel button: cancel the run and its unfinished children, back to its page."""
    services(request).client.cancel_flow_run(run_id)
    return RedirectResponse(f"/runs/{quote(run_id, safe='')}", status_code=303)
