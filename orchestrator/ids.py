"""Deterministic ids: the same flow run, slug and map index always name the same
task run, and the same idempotency key always names the same flow run, so every
delivery and every retry of a message finds the row the first one wrote.

Pure: the standard library only."""

from __future__ import annotations

import uuid

#: The namespace of every deterministic id (uuid5).
RUN_NAMESPACE = uuid.UUID("6f1c2a8e-5b8e-4c1e-9f0a-3d2b7c4e5a10")


def task_run_id(flow_run_id: str, slug: str, map_index: int = -1) -> str:
    """The deterministic id of a task run."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{flow_run_id}/{slug}/{map_index}"))


def run_id_for_key(key: str) -> str:
    """The deterministic flow run id for an idempotency key."""
    return str(uuid.uuid5(RUN_NAMESPACE, key))


def new_run_id(idempotency_key: str | None = None) -> str:
    """A flow run id: the key's when there is one, else a fresh random one."""
    return run_id_for_key(idempotency_key) if idempotency_key else str(uuid.uuid4())
