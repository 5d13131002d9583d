"""``python -m bench.server_latency [--database postgres|sqlite] [--sizes 1000,10000,100000]``

The server's API latency as the database fills: one worker runs the seed's
Flow-of-Flows once (its tree is read), then flow runs are added in bulk (each root with
four children, like the seed's) until the database holds each size in turn (then, on
PostgreSQL, ``ANALYZE flow_runs``, as autovacuum would do as the table grows); at each
size an ``orchestrator server`` process answers, over one keep-alive HTTP connection:

- ``GET /api/flow-runs?root=true&limit=50``: the first page of roots, each with its
  descendants' states counted;
- the same with a cursor half-way down the roots (keyset pagination: no offset);
- ``GET /api/flow-runs?root=true&state=Failed&limit=50``: roots in one state;
- ``GET /api/flow-runs/{seed run}/tree``.

Each is asked ``--requests`` times (after a warm-up) and reported as p50 / p95 in
milliseconds, with the growth of the p50 from the smallest size to the largest (goal:
flat). Everything it starts (worker, server, schema or temp dir) is stopped or dropped."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text

from bench.fleet import ROOT, BenchError, Environment, Worker
from bench.report import percentile
from orchestrator.backends import backends
from orchestrator.browsing import encode_cursor
from orchestrator.client import Client
from orchestrator.clock import utcnow
from orchestrator.config import Settings
from orchestrator.db.models import FlowRun
from orchestrator.loader import flows_in
from orchestrator.processes import ServerProcess
from orchestrator.states import State

BATCH = 5000
#: How many runs each synthetic tree holds: a root and four children.
TREE = 5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.server_latency", description=__doc__)
    p.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--sizes", default="1000,10000,100000", help="flow runs in the database")
    p.add_argument("--requests", type=int, default=200, help="requests per endpoint and size")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    args.size_list = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    return args


def seed_run(client: Client, env: Environment, workdir: Path) -> str:
    """Register the seed's flows, run the Flow-of-Flows on one worker, return its id."""
    for listing in ("seed_flows.py", "flow_of_flows.py"):
        for flow in flows_in(str(ROOT / "examples" / listing)):
            client.register(flow, "examples")
    worker_env = {
        **_env(env, client.settings),
        "PYTHONPATH": str(ROOT),
    }
    worker = Worker("workers", client.settings.queue, worker_env, workdir, "ours")
    try:
        worker.wait_ready(backends(client.settings).app)
        run_id = client.create_flow_run("parent-flow", "examples")
        info = client.wait_for_flow_run(run_id, timeout=120)
        if info.state is not State.SUCCESS:
            raise BenchError(f"the seed run ended {info.state.value}: {info.message}")
        return run_id
    finally:
        worker.stop()


def _env(env: Environment, settings: Settings) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "ORCHESTRATOR_HOME": str(settings.home),
        "ORCHESTRATOR_REDIS_URL": env.redis_url,
        "ORCHESTRATOR_DATABASE_URL": env.database_url,
        "ORCHESTRATOR_QUEUE": settings.queue,
    }


def fill(client: Client, flow_id: str, target: int) -> int:
    """Add synthetic trees (a Success root, four Success children) until the database
    holds ``target`` flow runs; returns how many it holds."""
    store = client.backends.store
    table = FlowRun.__table__
    with store.engine.connect() as conn:
        have = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    start = utcnow() - timedelta(days=30)
    rows: list[dict[str, Any]] = []
    while have + len(rows) < target:
        n = have + len(rows)
        created = start + timedelta(seconds=n)
        root = str(uuid.uuid4())
        for k in range(TREE):
            rid = root if k == 0 else str(uuid.uuid4())
            state = State.FAILED if (k in (0, 2) and n % 50 == 0) else State.SUCCESS
            rows.append(_row(rid, flow_id, None if k == 0 else root, created, state))
        if len(rows) >= BATCH:
            _insert(store.engine, table, rows)
            have, rows = have + len(rows), []
    if rows:
        _insert(store.engine, table, rows)
        have += len(rows)
    if not store.is_sqlite:
        # what autovacuum does on its own as a table grows; a bulk load outruns it
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE flow_runs"))
    return have


def _row(rid: str, flow_id: str, parent: str | None, created: Any, state: State) -> dict[str, Any]:
    return {
        "id": rid, "flow_id": flow_id, "name": None, "state": state.value, "message": None,
        "parameters": {}, "labels": [], "idempotency_key": None, "parent_flow_run_id": parent,
        "parent_task_run_id": None, "scheduled_start_time": None, "start_time": created,
        "end_time": created + timedelta(seconds=1), "created": created, "updated": created,
    }  # fmt: skip


def _insert(engine: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(table), rows)


def half_way_cursor(client: Client) -> str:
    """The cursor of the root half-way down the newest-first list."""
    store = client.backends.store
    table = FlowRun.__table__
    roots = table.c.parent_flow_run_id.is_(None)
    with store.engine.connect() as conn:
        count = int(conn.execute(select(func.count()).where(roots)).scalar_one())
        row = conn.execute(
            select(table.c.created, table.c.id)
            .where(roots)
            .order_by(table.c.created.desc(), table.c.id.desc())
            .offset(count // 2)
            .limit(1)
        ).one()
    return encode_cursor(row.created, row.id)


def measure(http: httpx.Client, path: str, requests: int) -> list[float]:
    """Milliseconds of ``requests`` GETs of ``path`` (after 10 unmeasured ones)."""
    for _ in range(10):
        http.get(path).raise_for_status()
    out = []
    for _ in range(requests):
        t0 = time.perf_counter()
        answer = http.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        answer.raise_for_status()
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    env = Environment.create(args.database)
    workdir = env.workdir
    settings = Settings(
        home=workdir / "home",
        redis_url=env.redis_url,
        database_url=env.database_url,
        queue=f"bench-server-{uuid.uuid4().hex[:6]}",
    )
    client = Client(settings)
    server: ServerProcess | None = None
    results: list[dict[str, Any]] = []
    try:
        seed = seed_run(client, env, workdir)
        flow_id = client.backends.store.flows.newest("examples", "A").id
        server = ServerProcess(_env(env, settings), log_path=workdir / "server.log",
                               extra=["--log-level", "warning"])  # fmt: skip
        url = server.wait_ready()
        with httpx.Client(base_url=url, timeout=60) as http:
            for size in args.size_list:
                t0 = time.perf_counter()
                held = fill(client, flow_id, size)
                print(f"{held:,} flow runs ({time.perf_counter() - t0:.1f}s to insert)", flush=True)
                paths = {
                    "roots, first page": "/api/flow-runs?root=true&limit=50",
                    "roots, half-way page": "/api/flow-runs?root=true&limit=50&cursor="
                    + half_way_cursor(client),
                    "roots in state Failed": "/api/flow-runs?root=true&state=Failed&limit=50",
                    "seed run's tree": f"/api/flow-runs/{seed}/tree",
                }
                for what, path in paths.items():
                    ms = measure(http, path, args.requests)
                    results.append({"size": held, "endpoint": what, "p50": statistics.median(ms),
                                    "p95": percentile(ms, 0.95), "n": len(ms)})  # fmt: skip
                    print(f"  {what}: p50 {results[-1]['p50']:.1f} ms, p95 {results[-1]['p95']:.1f} ms", flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        client.backends.store.close()
        env.close()
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table: one row per endpoint, p50 / p95 per size, growth."""
    sizes = sorted({r["size"] for r in results})
    endpoints = list(dict.fromkeys(r["endpoint"] for r in results))
    head = "| endpoint | " + " | ".join(f"{s:,} runs p50 / p95 (ms)" for s in sizes)
    lines = [head + " | p50 growth |", "|---" * (len(sizes) + 2) + "|"]
    for e in endpoints:
        by = {r["size"]: r for r in results if r["endpoint"] == e}
        cells = [f"{by[s]['p50']:.1f} / {by[s]['p95']:.1f}" for s in sizes]
        growth = by[sizes[-1]]["p50"] / by[sizes[0]]["p50"]
        lines.append(f"| {e} | " + " | ".join(cells) + f" | {growth:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
