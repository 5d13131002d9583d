"""``/api/limits``: each label's concurrency limit and which runs hold its slots.

May import FastAPI, the server's deps and schemas, the client and the core."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from orchestrator.server.deps import reader, services
from orchestrator.server.schemas import HolderOut, LimitOut

router = APIRouter(prefix="/api", tags=["limits"])


def limits(request: Request) -> list[LimitOut]:
    """Every limit with the runs holding its slots and the first runs waiting."""
    client = services(request).client
    infos = client.concurrency_limits()
    ids = [i for info in infos for i in (*info.holders, *info.waiting_runs)]
    runs = client.backends.store.browse.runs(ids)

    def holder(run_id: str) -> HolderOut:
        row = runs.get(run_id)
        if row is None:
            return HolderOut(id=run_id, flow_name=None, state=None)
        return HolderOut(id=run_id, flow_name=row.flow_name, state=row.run.state)

    return [
        LimitOut(
            label=i.label,
            limit=i.limit,
            used=i.used,
            free=i.free,
            waiting=i.waiting,
            holders=[holder(h) for h in i.holders],
            waiting_runs=[holder(w) for w in i.waiting_runs],
        )
        for i in infos
    ]


@router.get("/limits", response_model=list[LimitOut], summary="List concurrency limits")
def list_limits(request: Request, _: Annotated[str, Depends(reader)]) -> list[LimitOut]:
    """Each label's limit, its used and free slots, the runs holding them (a slot is
    a lease: a dead worker's comes back) and the runs waiting for one."""
    return limits(request)
