"""What the database contract tests share: a small flow to register, and runs of it
built the way the client builds them (a ``FlowRunRequest`` made a ``NewFlowRun``)."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from orchestrator.db import Store
from orchestrator.db.models import FlowVersion
from orchestrator.flow import Flow
from orchestrator.requests import FlowRunRequest, NewFlowRun
from orchestrator.states import State
from orchestrator.task import task
from tests.conftest import DATABASE_ENV

IMPORT_REF = "tests.flows.x:flow"


@task
def extract() -> list[int]:
    return [1, 2, 3]


@task
def load(rows: list[int], limit: int = 10) -> int:
    return len(rows[:limit])


def build(name: str = "etl", limit: int = 10, extra_task: bool = False) -> Flow:
    """A small flow; ``limit`` and ``extra_task`` change its structure."""
    with Flow(name) as flow:
        load(extract(), limit=limit)
        if extra_task:
            extract()
    return flow


def register(store: Store, project: str, flow: Flow) -> FlowVersion:
    """Store a flow as ``Client.register`` does, without needing an import reference."""
    return store.flows.register(
        project_name=project,
        name=flow.name,
        structure_hash=flow.structural_hash(),
        structure=json.loads(json.dumps(flow.structure(), default=repr)),
        import_ref=IMPORT_REF,
        parameters=[p.declaration() for p in flow.parameters()],
        schedule=None,
        labels=list(flow.labels),
    )


def new_run(
    flow: FlowVersion,
    parameters: dict[str, Any] | None = None,
    state: State = State.SUBMITTED,
    idempotency_key: str | None = None,
    **request: Any,
) -> NewFlowRun:
    """A run of ``flow``, built and not stored (as ``Client.prepare_flow_run`` builds it)."""
    asked = FlowRunRequest(
        flow.name, "tests", parameters, idempotency_key=idempotency_key, **request
    )
    return NewFlowRun.of(asked, flow.id, dict(parameters or {}), flow.labels, state)


@contextlib.contextmanager
def brand_new_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as ``database_url``, never migrated."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'brand-new.db'}"
        return
    base = os.environ[DATABASE_ENV]
    schema = f"orch_fresh_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
