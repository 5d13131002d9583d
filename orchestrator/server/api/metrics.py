"""``/metrics``: the fleet's figures in Prometheus' text format (runs by flow and
state, running and queued runs, slots per label), read at each scrape; a reader's
token is needed when the server has tokens. May import FastAPI, the server's deps,
the client layer's :mod:`orchestrator.metrics`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

import orchestrator.metrics as metrics
from orchestrator.server.deps import reader, services

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(request: Request, _: Annotated[str, Depends(reader)]) -> Response:
    """Flow runs and task runs by flow and final state, runs running and queued now,
    and slots held per concurrency label, for Prometheus to scrape."""
    body = await run_in_threadpool(metrics.exposition, services(request).client.backends)
    return Response(body, media_type=metrics.CONTENT_TYPE)
