"""The five cases of issue 9. Each runs ours and plain Celery alternately (never
at the same time) on the same Redis, with a worker of the same shape each, and
returns table rows. Every wait is bounded by the case's deadline."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from celery import chain, chord
from celery.canvas import Signature
from celery.exceptions import TimeoutError as CeleryTimeout
from rich.console import Console
from sqlalchemy import select

from bench.fleet import BenchError, Fleet
from bench.flows import PROJECT
from bench.plain import NOOP
from bench.report import Row
from orchestrator import constants
from orchestrator.client import Client
from orchestrator.db.models import FlowRun
from orchestrator.errors import FlowRunTimeout, OrchestratorError
from orchestrator.states import FINAL_STATES, State

FINAL = [s.value for s in FINAL_STATES]
POLL = 0.05  # seconds between two looks at a batch's progress (same for both sides)
CHUNK = 500  # ids looked at per poll


class CaseTimeout(Exception):
    """The case ran past its time budget."""


@dataclass
class Deadline:
    end: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise CaseTimeout()
        return left


@dataclass
class Options:
    quick: bool
    console: Console


# --- one measurement each side ---------------------------------------------------


def ours_run(
    fleet: Fleet,
    flow_name: str,
    deadline: Deadline,
    full_info: bool = False,
    client: Client | None = None,
) -> float:
    """Seconds from ``create_flow_run`` to the run's final state seen by the client.

    With ``full_info`` the client's own ``wait_for_flow_run`` (which also reads the
    run's task runs and children) is timed; otherwise the wait ends on the final
    state (Redis notice, database as fallback), the counterpart of waiting on the
    last task's result in plain Celery. ``client``: another queue's (the traced
    worker's), else the fleet's."""
    client = client or fleet.client
    t0 = time.perf_counter()
    run_id = client.create_flow_run(flow_name, PROJECT)
    if full_info:
        try:
            info = client.wait_for_flow_run(run_id, timeout=deadline.remaining())
        except FlowRunTimeout:
            raise CaseTimeout() from None
        elapsed = time.perf_counter() - t0
        state, message = info.state, info.message
    else:
        state, message = _wait_state(fleet, run_id, deadline)
        elapsed = time.perf_counter() - t0
    if state is not State.SUCCESS:
        raise BenchError(f"flow run {run_id} of {flow_name} ended {state.value}: {message}")
    return elapsed


def _wait_state(fleet: Fleet, run_id: str, deadline: Deadline) -> tuple[State, str | None]:
    b = fleet.client.backends
    pubsub = b.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(constants.FLOW_RUN_CHANNEL.format(id=run_id))
    try:
        while True:
            run = b.store.flow_runs.get(run_id)
            if State(run.state).is_final:
                return State(run.state), run.message
            step = min(1.0, deadline.remaining())
            if pubsub.get_message(timeout=step) is None:
                fleet.check_alive()
    finally:
        with contextlib.suppress(redis.RedisError):
            pubsub.close()


def plain_run(fleet: Fleet, canvas: Signature, deadline: Deadline) -> float:
    """Seconds from ``apply_async`` to the last task's result seen by the client
    (``AsyncResult.get`` on that one task: the Redis backend's pub/sub)."""
    app = fleet.plain_app
    t0 = time.perf_counter()
    res = canvas.apply_async()
    last = app.AsyncResult(res.id)
    try:
        last.get(timeout=deadline.remaining(), interval=POLL, propagate=True)
    except CeleryTimeout:
        fleet.check_alive()
        raise CaseTimeout() from None
    elapsed = time.perf_counter() - t0
    last.forget()
    return elapsed


def noop_sig(fleet: Fleet) -> Signature:
    return fleet.plain_app.signature(NOOP, immutable=True, queue=fleet.plain_queue)


def ours_batch(fleet: Fleet, n: int, deadline: Deadline) -> float:
    """Seconds to create ``n`` one-task flow runs from the Client and see all final."""
    client = fleet.client
    store = client.backends.store
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    ids = []
    for _ in range(n):
        ids.append(client.create_flow_run("bench-noop", PROJECT, run_name=tag))
        if len(ids) % 200 == 0:
            deadline.remaining()
    failed: list[str] = []

    def final(chunk: list[str]) -> set[str]:
        with store.reading() as s:
            rows = s.execute(
                select(FlowRun.id, FlowRun.state).where(
                    FlowRun.id.in_(chunk), FlowRun.state.in_(FINAL)
                )
            ).all()
        failed.extend(i for i, st in rows if st != State.SUCCESS.value)
        return {i for i, _ in rows}

    _drain(fleet, ids, final, deadline)
    elapsed = time.perf_counter() - t0
    if failed:
        raise BenchError(f"{len(failed)} of {n} flow runs did not succeed, e.g. {failed[0]}")
    return elapsed


def plain_batch(fleet: Fleet, n: int, deadline: Deadline) -> float:
    """Seconds to send ``n`` independent no-op tasks and see every result in Redis."""
    app = fleet.plain_app
    backend = app.backend
    t0 = time.perf_counter()
    ids = []
    for _ in range(n):
        ids.append(app.send_task(NOOP, queue=fleet.plain_queue).id)
        if len(ids) % 200 == 0:
            deadline.remaining()
    client = backend.client

    def final(chunk: list[str]) -> set[str]:
        values = client.mget([backend.get_key_for_task(i) for i in chunk])
        return {i for i, v in zip(chunk, values, strict=True) if v is not None}

    _drain(fleet, ids, final, deadline)
    elapsed = time.perf_counter() - t0
    client.delete(*[backend.get_key_for_task(i) for i in ids])
    return elapsed


def _drain(
    fleet: Fleet, ids: list[str], final: Callable[[list[str]], set[str]], deadline: Deadline
) -> None:
    """Wait until every id is final, looking at the oldest pending ones each poll."""
    pending = list(ids)
    while pending:
        head = pending[:CHUNK]
        done = final(head)
        if done:
            pending = [i for i in head if i not in done] + pending[CHUNK:]
            if not pending:
                return
        deadline.remaining()
        fleet.check_alive()
        time.sleep(POLL)


def alternate(
    reps: int,
    ours: Callable[[], float],
    plain: Callable[[], float],
    row: Row,
    deadline: Deadline,
    scale: float = 1.0,
    warmup: int = 1,
) -> Row:
    """Warm up, then run ours and plain one after the other ``reps`` times."""
    for _ in range(warmup):
        ours()
        plain()
    for _ in range(reps):
        deadline.remaining()
        row.ours.append(ours() * scale)
        row.plain.append(plain() * scale)
    return row


# --- the cases -------------------------------------------------------------------


def case1(fleet: Fleet, opts: Options, deadline: Deadline) -> list[Row]:
    """The seed's Flow-of-Flows vs ``chain(a, chord([b, c], d))``."""
    reps = 10 if opts.quick else 30
    row = Row("1", "Flow-of-Flows A -> (B, C) -> D, wait=True", "ms", goal="<= 5x", max_ratio=5.0)

    def plain() -> float:
        s = lambda: noop_sig(fleet)  # noqa: E731
        return plain_run(fleet, chain(s(), chord([s(), s()], s())), deadline)

    return [
        alternate(
            reps,
            lambda: ours_run(fleet, "bench-parent", deadline, full_info=True),
            plain,
            row,
            deadline,
            scale=1000,
            warmup=2,
        )
    ]


def case6(fleet: Fleet, opts: Options, deadline: Deadline) -> list[Row]:
    """Case 1's Flow-of-Flows on our worker exporting spans ("ours" column) against
    our worker without tracing ("plain" column), alternately (``--tracing``)."""
    if fleet.traced is None:
        raise BenchError("case 6 compares tracing on and off: run it with --tracing")
    reps = 10 if opts.quick else 30
    row = Row(
        "6",
        "Flow-of-Flows, tracing on (ours) vs off (plain)",
        "ms",
        goal="<= 1.2x",
        max_ratio=1.2,
    )
    return [
        alternate(
            reps,
            lambda: ours_run(fleet, "bench-parent", deadline, True, fleet.traced_client),
            lambda: ours_run(fleet, "bench-parent", deadline, full_info=True),
            row,
            deadline,
            scale=1000,
            warmup=2,
        )
    ]


def fanout_sizes(quick: bool) -> list[int]:
    return [100, 1000] if quick else [100, 1000, 10000]


def case2(fleet: Fleet, opts: Options, deadline: Deadline) -> list[Row]:
    """A parent starting N no-op child flows (wait=True) vs a chord of N no-op tasks."""
    rows = []
    for n in fanout_sizes(opts.quick):
        reps = {100: 5, 1000: 3}.get(n, 1) if not opts.quick else {100: 3}.get(n, 2)
        row = Row(
            "2",
            f"fan-out: parent with {n:,} child flows",
            "ms/child",
            goal="<= 4x",
            max_ratio=4.0,
        )
        rows.append(row)

        def plain(n: int = n) -> float:
            return plain_run(
                fleet, chord([noop_sig(fleet) for _ in range(n)], noop_sig(fleet)), deadline
            )

        try:
            alternate(
                reps,
                lambda n=n: ours_run(fleet, f"bench-fanout-children-{n}", deadline),
                plain,
                row,
                deadline,
                scale=1000 / n,
                warmup=1 if n == 100 else 0,
            )
        except CaseTimeout:
            row.status = "timed out"
            rows.append(_growth(rows))
            raise Partial(rows) from None
        total_o, total_p = row.ours_median * n / 1000, row.plain_median * n / 1000
        row.note = f"total {total_o:.1f} s vs {total_p:.1f} s"
    rows.append(_growth(rows))
    return rows


def _growth(rows: list[Row]) -> Row:
    done = [r for r in rows if r.ours and r.plain and r.label.startswith("fan-out")]
    growth = Row(
        "2", "growth: per child at largest N / at N=100", "x", goal="<= 1.5x (ours)", max_value=1.5
    )
    if len(done) >= 2:
        first, last = done[0], done[-1]
        growth.ours = [last.ours_median / first.ours_median]
        growth.plain = [last.plain_median / first.plain_median]
        growth.label = f"growth: per child at N={last.label.split()[3]} / N=100"
    return growth


def _status(exc: BaseException) -> str:
    if isinstance(exc, CaseTimeout):
        return "timed out"
    return f"error: {exc}".splitlines()[0][:200]


class Partial(Exception):
    """A case stopped (timed out, or a backend failed) after some rows were filled in."""

    def __init__(self, rows: list[Row], problem: str = "timed out") -> None:
        self.rows = rows
        self.problem = problem


def case3(fleet: Fleet, opts: Options, deadline: Deadline) -> list[Row]:
    """N independent one-task flow runs from the Client vs N plain tasks."""
    n = 1000 if opts.quick else 5000
    reps = 2 if opts.quick else 3
    row = Row(
        "3",
        f"throughput: {n:,} one-task flow runs",
        "s",
        goal="<= 4x (>= 1/4 of plain's runs/s)",
        max_ratio=4.0,
    )
    fleet_warm = 50
    ours_batch(fleet, fleet_warm, deadline)
    plain_batch(fleet, fleet_warm, deadline)
    try:
        alternate(
            reps,
            lambda: ours_batch(fleet, n, deadline),
            lambda: plain_batch(fleet, n, deadline),
            row,
            deadline,
            warmup=0,
        )
    except (CaseTimeout, BenchError, OrchestratorError) as exc:
        row.status = _status(exc)
        raise Partial([row], row.status) from None
    row.note = f"{n / row.ours_median:,.0f} vs {n / row.plain_median:,.0f} runs/s"
    row.extra = {"runs": n}
    return [row]


def case4(fleet: Fleet, opts: Options, deadline: Deadline) -> list[Row]:
    """One flow of 1,000 no-op tasks (fan-out, chain) vs the plain canvas of that shape."""
    n = 1000
    reps = 3 if opts.quick else 5
    rows = []
    shapes: list[tuple[str, str, Callable[[], Signature]]] = [
        (
            "fan-out",
            f"bench-tasks-fanout-{n}",
            lambda: chord([noop_sig(fleet) for _ in range(n)], noop_sig(fleet)),
        ),
        ("chain", f"bench-tasks-chain-{n}", lambda: chain(*[noop_sig(fleet) for _ in range(n)])),
    ]
    for shape, flow_name, canvas in shapes:
        row = Row("4", f"one flow of {n:,} tasks, {shape}", "s", goal="<= 3x", max_ratio=3.0)
        rows.append(row)
        try:
            alternate(
                reps,
                lambda f=flow_name: ours_run(fleet, f, deadline),
                lambda c=canvas: plain_run(fleet, c(), deadline),
                row,
                deadline,
            )
        except CaseTimeout:
            row.status = "timed out"
            raise Partial(rows) from None
        row.note = f"{n / row.ours_median:,.0f} vs {n / row.plain_median:,.0f} tasks/s"
    return rows


def case5(fleet: Fleet, opts: Options, deadline: Deadline) -> list[Row]:
    """Worker resident memory before and after N runs, vs a plain worker doing N tasks."""
    n = 1000 if opts.quick else 10000
    fleet.restart()  # fresh workers: "before" is a worker that has run nothing else
    assert fleet.ours is not None and fleet.plain is not None
    ours_w, plain_w = fleet.ours, fleet.plain

    def total(w: object) -> float:
        main, pool = w.rss()  # type: ignore[attr-defined]
        return (main + sum(pool)) / 2**20

    started = {"ours": total(ours_w), "plain": total(plain_w)}
    warm = 50
    ours_batch(fleet, warm, deadline)
    plain_batch(fleet, warm, deadline)
    before = {"ours": total(ours_w), "plain": total(plain_w)}
    samples: dict[str, list[tuple[int, float]]] = {
        "ours": [(0, before["ours"])],
        "plain": [(0, before["plain"])],
    }
    steps = 4
    done = 0
    problem = ""
    try:
        for i in range(steps):
            k = n // steps if i < steps - 1 else n - done
            ours_batch(fleet, k, deadline)
            plain_batch(fleet, k, deadline)
            done += k
            samples["ours"].append((done, total(ours_w)))
            samples["plain"].append((done, total(plain_w)))
            opts.console.log(
                f"case 5: {done:,} runs: ours {samples['ours'][-1][1]:.1f} MB, "
                f"plain {samples['plain'][-1][1]:.1f} MB"
            )
    except (CaseTimeout, BenchError, OrchestratorError) as exc:
        problem = _status(exc)
    after = {"ours": samples["ours"][-1][1], "plain": samples["plain"][-1][1]}
    per_proc = {}
    for side, w in (("ours", ours_w), ("plain", plain_w)):
        main, pool = w.rss()
        per_proc[side] = {"main_mb": main / 2**20, "pool_mb": [p / 2**20 for p in pool]}
    rss = Row(
        "5",
        f"worker RSS (main + 2 pool) after {done:,} runs",
        "MB",
        [after["ours"]],
        [after["plain"]],
        goal="<= 1.5x",
        max_ratio=1.5,
        note=(
            f"per process ours {per_proc['ours']['main_mb']:.0f}+"
            + "+".join(f"{p:.0f}" for p in per_proc["ours"]["pool_mb"])
            + f", plain {per_proc['plain']['main_mb']:.0f}+"
            + "+".join(f"{p:.0f}" for p in per_proc["plain"]["pool_mb"])
        ),
        extra={"started": started, "before": before, "samples": samples, "per_process": per_proc},
    )
    growth_pct = {k: 100 * (after[k] - before[k]) / before[k] for k in after}
    growth = Row(
        "5",
        f"RSS growth from warm-up to {done:,} runs",
        "%",
        [growth_pct["ours"]],
        [growth_pct["plain"]],
        goal="<= 5% (ours: no growth)",
        max_value=5.0,
        note=f"{after['ours'] - before['ours']:+.1f} MB vs {after['plain'] - before['plain']:+.1f} MB",
    )
    rows = [rss, growth]
    if problem:
        for r in rows:
            r.status = problem
        raise Partial(rows, problem)
    return rows


CASES: dict[int, tuple[str, Callable[[Fleet, Options, Deadline], list[Row]]]] = {
    1: ("Flow-of-Flows vs chain(a, chord([b, c], d))", case1),
    2: ("fan-out of child flows vs a chord", case2),
    3: ("throughput of one-task flow runs vs plain tasks", case3),
    4: ("one flow of 1,000 tasks vs the plain canvas", case4),
    5: ("worker memory", case5),
    6: ("Flow-of-Flows with tracing on vs off (with --tracing)", case6),
}

__all__ = ["CASES", "CaseTimeout", "Deadline", "Options", "Partial"]
