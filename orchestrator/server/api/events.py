"""``/api/events``: a server-sent-events stream of state changes (run id, parent id,
task, old and new state), from the server's one reader of the state-event table
(:mod:`orchestrator.server.feed`). ``run`` narrows it to one run and every run under
it; ``after`` (or the ``Last-Event-ID`` header of a reconnecting browser) first
replays what was recorded after that event.

May import FastAPI and Starlette, the server's deps and feed, and the standard library."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from orchestrator.server.deps import reader, services
from orchestrator.server.feed import Change, Feed

router = APIRouter(prefix="/api", tags=["events"])

#: Seconds between two keep-alive comments on a quiet stream.
KEEP_ALIVE_SECONDS = 15.0


def frame(change: Change) -> str:
    """One server-sent event: ``id``, ``event: state`` and the change as JSON."""
    return f"id: {change.id}\nevent: state\ndata: {json.dumps(change.to_json())}\n\n"


async def _stream(feed: Feed, start: int | None, run: str | None) -> AsyncIterator[str]:
    # subscribed once streaming starts, so a request dropped before never leaks one
    sub = await run_in_threadpool(feed.subscribe, run, asyncio.get_running_loop())
    try:
        yield "retry: 2000\n: connected\n\n"
        replayed: set[int] = set()
        if start is not None:
            for change in await run_in_threadpool(feed.replay, start, run):
                replayed.add(change.id)
                yield frame(change)
        while True:
            try:
                queued: Change | None = await asyncio.wait_for(sub.queue.get(), KEEP_ALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if queued is None:
                return
            if queued.id not in replayed:
                yield frame(queued)
    finally:
        feed.unsubscribe(sub)


def _start(after: int | None, last_event_id: str | None) -> int | None:
    if last_event_id and last_event_id.strip().isdigit():
        return int(last_event_id)
    return after


@router.get(
    "/events",
    summary="Stream state changes (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    _: Annotated[str, Depends(reader)],
    run: Annotated[str | None, Query(description="only this run and the runs under it")] = None,
    after: Annotated[
        int | None, Query(ge=0, description="first replay events after this id")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """A `text/event-stream` of `state` events, one per recorded state change of a flow
    run or a task run: `{"id", "flow_run_id", "parent_flow_run_id", "flow_name",
    "task_run_id", "task", "old_state", "new_state", "message", "timestamp"}`
    (`task_run_id` and `task` are null for the flow run's own changes)."""
    return StreamingResponse(
        _stream(services(request).feed, _start(after, last_event_id), run),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
