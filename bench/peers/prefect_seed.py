"""The seed's Flow-of-Flows in Prefect 3, run inside Prefect's own virtual environment
by ``bench.peers.prefect`` (it imports nothing of this project).

    BENCH_PREFECT_HEARTBEAT=on|off python prefect_seed.py subflows|deployments REPEATS

``subflows``: a parent flow calls the child flows A, B, C and D in process, one
after the other (Prefect's nested flow runs; calling B and C from two threads was
slower here). ``deployments``: the child flows are served
(``prefect.serve`` in a process of their own) and the parent starts each with
``run_deployment``, waiting for it, as ``StartFlowRun(wait=True)`` does. Each child
runs one no-op task. ``BENCH_PREFECT_HEARTBEAT=on`` keeps Prefect's flow-run
heartbeat as shipped (every 180 s, from a thread of each flow run); ``off`` turns it
off, in every process that imports this file (the served runner's flow runs too). Prints one JSON line:
the seconds of each repetition, after an untimed warm-up."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sys
import time

import prefect.settings
from prefect import flow, serve, task
from prefect.client.orchestration import get_client
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import temporary_settings


@task
def noop() -> None:
    """Nothing at all."""


@flow(name="A")
def flow_a() -> None:
    """Child A."""
    noop()


@flow(name="B")
def flow_b() -> None:
    """Child B."""
    noop()


@flow(name="C")
def flow_c() -> None:
    """Child C."""
    noop()


@flow(name="D")
def flow_d() -> None:
    """Child D."""
    noop()


CHILDREN = {"A": flow_a, "B": flow_b, "C": flow_c, "D": flow_d}

if os.environ.get("BENCH_PREFECT_HEARTBEAT") == "off":
    # Prefect's setting takes no "off" from the environment: entered for good here
    temporary_settings(
        updates={prefect.settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    ).__enter__()


@flow(name="parent-subflows")
def parent_subflows() -> None:
    """A, B, C, D as nested flow runs in this process."""
    flow_a()
    flow_b()
    flow_c()
    flow_d()


async def _start(name: str) -> None:
    run = await arun_deployment(f"{name}/bench-{name}", timeout=None, poll_interval=0.1)
    if run.state is None or not run.state.is_completed():
        raise RuntimeError(f"child {name} ended {run.state!r}")


@flow(name="parent-deployments")
async def parent_deployments() -> None:
    """A -> (B, C) -> D, each child a run of a served deployment, waited for."""
    await _start("A")
    await asyncio.gather(_start("B"), _start("C"))
    await _start("D")


async def _deployments_served(timeout: float = 180) -> None:
    """Wait until the serving process has created the four deployments."""
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        for name in CHILDREN:
            while True:
                try:
                    await client.read_deployment_by_name(f"{name}/bench-{name}")
                    break
                except ObjectNotFound:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)


def _serve() -> None:
    serve(*(f.to_deployment(name=f"bench-{name}") for name, f in CHILDREN.items()))


def main(mode: str, repeats: int) -> None:
    """Warm up once, then time ``repeats`` runs of the parent; print them as JSON."""
    server = None
    if mode == "deployments":
        server = multiprocessing.get_context("spawn").Process(target=_serve, daemon=True)
        server.start()
        asyncio.run(_deployments_served())

    def parent() -> None:
        if mode == "subflows":
            parent_subflows()
        else:
            asyncio.run(parent_deployments())

    try:
        parent()  # warm-up: the first run also waits for the deployments
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            parent()
            seconds.append(time.perf_counter() - start)
    finally:
        if server is not None:
            server.terminate()
            server.join(10)
    print(json.dumps({"mode": mode, "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
