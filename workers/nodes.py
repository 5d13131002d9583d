"""The Celery tasks that run flow runs: ``start_flow_run`` compiles a run's DAG to
a canvas, ``node`` runs one task run, ``mirror`` takes a child run's final state,
``finalize`` records the flow run's state.

Every task returns the recorded state, the same bytes on every delivery, so Redis
chord counting ignores a duplicate. A user task's failure is a recorded state,
never a Celery exception."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from celery import Task as CeleryTask
from celery import chain, chord
from celery.canvas import Signature
from celery.exceptions import SoftTimeLimitExceeded

from orchestrator import constants, logcapture
from orchestrator.context import RunContext, entered
from orchestrator.engine import (
    MapError,
    Outcome,
    Upstream,
    check_upstream,
    element_upstream,
    flow_state,
    gather_inputs,
    map_width,
    mapped_lists,
    mapped_outcome,
    mirror_outcome,
    run_code,
)
from orchestrator.errors import BackendUnavailable, OrchestratorError
from orchestrator.models import FlowRun, TaskRun
from orchestrator.runtime import Backends, backends
from orchestrator.states import State
from orchestrator.store import Store, aware, task_run_id, utcnow
from workers.canvas import compile_dag, to_signature
from workers.flows import LoadedFlow, loaded
from workers.limits import Slots

log = logging.getLogger(__name__)
b: Backends = backends()
app = b.app
slots = Slots(b.redis, max(2 * b.settings.lease_seconds, 10.0))
HOSTNAME = socket.gethostname()


class InfraRetrying(CeleryTask):  # type: ignore[misc]
    """Base of our tasks: infrastructure faults (the database or Redis unreachable)
    are retried with exponential backoff and jitter, up to 30 times (about a quarter
    of an hour); after that the run is left to the sweeper. A user task's failure
    never gets here: it is a recorded state."""

    autoretry_for = (BackendUnavailable, redis.ConnectionError, redis.TimeoutError)
    retry_backoff = 1
    retry_backoff_max = 30
    retry_jitter = True
    max_retries = 30


def recorded(tr: TaskRun) -> dict[str, str]:
    """What a node returns: the recorded state, no timestamps (identical on every delivery)."""
    return {"task_run": tr.id, "state": tr.state}


def node_signature(
    lf: LoadedFlow,
    flow_run_id: str,
    slug: str,
    map_index: int = -1,
    element: dict[str, Any] | None = None,
) -> Signature:
    """The immutable signature of one node, named ``flow/slug`` (``flow/slug[i]`` for
    a mapped child, which carries its element of the mapped arguments)."""
    task = lf.task(slug)
    name = f"{lf.version.name}/{slug}" + (f"[{map_index}]" if map_index >= 0 else "")
    options: dict[str, Any] = {"shadow": name, "queue": b.settings.queue}
    if task.timeout:
        options["soft_time_limit"] = task.timeout
        options["time_limit"] = task.timeout + 10
    args = (flow_run_id, slug) if map_index < 0 else (flow_run_id, slug, map_index, element)
    return app.signature(constants.NODE, args=args, immutable=True, **options)


def build_canvas(flow_run_id: str) -> Signature | None:
    """Prepare a flow run (task runs, parameters) and return its canvas, or None
    when the run is not in a state to start."""
    store = b.store
    run = store.get_flow_run(flow_run_id)
    lf = loaded(store, run.flow_id)
    params = dict(run.parameters or {})
    tasks = [(t.slug or t.name, t.name) for t in lf.flow.tasks]
    done = {t.slug or "": params.get(t.name, t.default) for t in lf.flow.parameters()}
    store.create_task_runs(flow_run_id, tasks, done=done)
    finalize_sig = app.signature(
        constants.FINALIZE,
        args=(flow_run_id,),
        immutable=True,
        shadow=f"{lf.version.name}/finalize",
        queue=b.settings.queue,
    )
    slugs = lf.node_slugs()
    if not slugs:
        return finalize_sig
    node_set = set(slugs)
    edges = [(up, slug) for slug in slugs for up, *_ in lf.upstream[slug] if up in node_set]
    plan = compile_dag(slugs, edges)
    body = to_signature(
        plan,
        lambda s: node_signature(lf, flow_run_id, s),
        barrier=lambda: app.signature(
            constants.BARRIER,
            immutable=True,
            shadow=f"{lf.version.name}/join",
            queue=b.settings.queue,
        ),
    )
    return chain(body, finalize_sig)


STARTABLE = (State.SUBMITTED, State.PENDING, State.QUEUED, State.SCHEDULED)


def _spliced(run: FlowRun) -> bool:
    """Whether a run is a child spliced into a waiting parent's canvas."""
    if not run.parent_task_run_id:
        return False
    parent_task = b.store.get_task_run(run.parent_task_run_id)
    return parent_task is not None and parent_task.child_flow_run_id == run.id


def _queue(run: FlowRun, state: State) -> None:
    """Record that a run waits for a concurrency slot (once)."""
    if state is not State.QUEUED:
        b.set_flow_run_state(
            run.id,
            State.QUEUED,
            f"waiting for a concurrency slot ({', '.join(run.labels)})",
            expected=[state],
        )


def wake(run_ids: list[str]) -> None:
    """Send ``start_flow_run`` again for runs that may now get a slot."""
    for run_id in run_ids:
        b.app.send_task(constants.START_FLOW_RUN, args=[run_id], queue=b.settings.queue)


@app.task(name=constants.START_FLOW_RUN, bind=True, base=InfraRetrying)
def start_flow_run(self: CeleryTask, flow_run_id: str) -> dict[str, str]:
    """Move a submitted flow run to Running and send its canvas, once it has a
    slot of each of its limited labels (else it waits in Queued)."""
    run = b.store.get_flow_run(flow_run_id)
    state = State(run.state)
    if state.is_final:
        wake(slots.release(run.id, run.labels))
    elif state in STARTABLE and not _spliced(run):
        arrival = (aware(run.created) or utcnow()).timestamp()
        if run.labels and not slots.acquire(run.id, run.labels, arrival):
            _queue(run, state)
            return {"flow_run": flow_run_id, "state": State.QUEUED.value}
        try:
            canvas = build_canvas(flow_run_id)
        except BackendUnavailable:
            raise  # retried with backoff (InfraRetrying)
        except OrchestratorError as exc:
            if b.set_flow_run_state(flow_run_id, State.FAILED, str(exc)):
                wake(slots.release(run.id, run.labels))
            return {"flow_run": flow_run_id, "state": State.FAILED.value}
        if b.set_flow_run_state(flow_run_id, State.RUNNING, expected=[state]) and canvas:
            canvas.apply_async()
    return {"flow_run": flow_run_id, "state": b.store.get_flow_run(flow_run_id).state}


@app.task(name=constants.RESUBMIT, base=InfraRetrying)
def resubmit(flow_run_id: str) -> dict[str, str]:
    """Send a stuck Running flow run's canvas again (the sweeper asks for it).

    Idempotent: finished nodes return their recorded state, unfinished ones run,
    child runs are found by their idempotency keys."""
    run = b.store.get_flow_run(flow_run_id)
    if State(run.state) is State.RUNNING:
        canvas = build_canvas(flow_run_id)
        if canvas is not None:
            canvas.apply_async()
    return {"flow_run": flow_run_id, "state": run.state}


@app.task(name=constants.RELEASE_SLOTS, base=InfraRetrying)
def release_slots(flow_run_id: str, labels: list[str]) -> None:
    """Give back a finished or cancelled run's slots and wake the runs waiting longest."""
    wake(slots.release(flow_run_id, labels))


@app.task(name=constants.WAKE_LABEL, base=InfraRetrying)
def wake_label(label: str) -> None:
    """Wake the runs waiting longest for a label (after its limit changed)."""
    wake(slots.waiting(label))


@contextlib.contextmanager
def heartbeat(
    store: Store, tr_id: str, owner: str, lease: float, run_id: str | None = None
) -> Iterator[None]:
    """Renew a task run's lease (and its flow run's slots) while its code runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease / 3):
            with contextlib.suppress(Exception):
                store.renew_lease(tr_id, owner, lease)
                if run_id is not None:
                    slots.renew(run_id)

    thread = threading.Thread(target=beat, daemon=True, name="orchestrator-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()


def _splice_child(
    self: CeleryTask, flow_run_id: str, slug: str, map_index: int, child_id: str
) -> None:
    """Replace this node with the child run's canvas followed by ``mirror``."""
    mirror_sig = app.signature(
        constants.MIRROR,
        args=(flow_run_id, slug, child_id, map_index),
        immutable=True,
        shadow=self.request.shadow or f"{slug}/mirror",  # keeps the node's flow/slug in Flower
        queue=b.settings.queue,
    )
    sig: Signature = mirror_sig
    child = b.store.get_flow_run(child_id)
    child_state = State(child.state)
    if child_state in STARTABLE:
        arrival = (aware(child.created) or utcnow()).timestamp()
        if not slots.acquire(child_id, child.labels, arrival, parent_id=flow_run_id):
            _queue(child, child_state)
            raise self.retry(countdown=constants.DUPLICATE_RECHECK_SECONDS, max_retries=None)
        canvas = build_canvas(child_id)
        if b.set_flow_run_state(child_id, State.RUNNING, expected=[child_state]) and canvas:
            sig = chain(canvas, mirror_sig)
    raise self.replace(sig)


@app.task(name=constants.NODE, bind=True, base=InfraRetrying)
def node(
    self: CeleryTask,
    flow_run_id: str,
    slug: str,
    map_index: int = -1,
    element: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Run one task run of a flow run and return its recorded state.

    A mapped task's own node maps: it records its children and replaces itself with
    a chord of one node per element, closed by ``collect_map``."""
    store = b.store
    tr_id = task_run_id(flow_run_id, slug, map_index)
    owner = f"{HOSTNAME}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    lease = b.settings.lease_seconds
    claim = store.claim_task_run(tr_id, flow_run_id, owner, lease, f"{HOSTNAME}:{os.getpid()}")
    tr = claim.task_run
    if not claim.claimed:
        if State(tr.state).is_final:
            return recorded(tr)
        if tr.child_flow_run_id:
            _splice_child(self, flow_run_id, slug, map_index, tr.child_flow_run_id)
        raise self.retry(countdown=constants.DUPLICATE_RECHECK_SECONDS, max_retries=None)

    run = store.get_flow_run(flow_run_id)
    lf = loaded(store, run.flow_id)
    task = lf.task(slug)
    limited = bool(run.labels or run.parent_flow_run_id)
    if limited:
        slots.renew(flow_run_id)
    if State(run.state) is State.CANCELLED:
        store.finish_task_run(
            tr_id, flow_run_id, State.CANCELLED, "flow run cancelled", owner=owner
        )
        return recorded(store.get_task_run(tr_id) or tr)
    upstream = _upstream(store, lf, flow_run_id, slug, map_index, element)
    constants_ = lf.flow.constants.get(task, {})
    outcome: Outcome | None
    if slug in lf.mapped and map_index < 0:
        outcome = _map(self, lf, flow_run_id, slug, tr_id, owner, upstream)
    else:
        if element:
            modes = lf.flow.constant_modes.get(task, {})
            constants_ = {k: element[k] if k in modes else v for k, v in constants_.items()}
        outcome = check_upstream(task, upstream)
    if outcome is None:
        ctx = RunContext(
            flow_run_id=flow_run_id,
            flow_name=lf.version.name,
            task_slug=slug,
            task_run_id=tr_id,
            map_index=map_index,
            parameters=dict(run.parameters or {}),
            attempt=tr.attempts,
        )
        with (
            entered(ctx),
            heartbeat(store, tr_id, owner, lease, flow_run_id if limited else None),
            logcapture.task_run_logs(store, flow_run_id, tr_id, tr.attempts),
        ):
            outcome = run_code(
                task,
                gather_inputs(constants_, upstream),
                tr.attempts,
                call=logcapture.traced,
                timeout_errors=(SoftTimeLimitExceeded,),
            )
    if outcome.wait_for is not None:
        child_id = outcome.wait_for.flow_run_id
        store.finish_task_run(
            tr_id, flow_run_id, State.RUNNING, outcome.message, owner=owner,
            child_flow_run_id=child_id,
        )  # fmt: skip
        _splice_child(self, flow_run_id, slug, map_index, child_id)
    store.finish_task_run(
        tr_id, flow_run_id, outcome.state, outcome.message, outcome.result, owner=owner
    )
    if outcome.state is State.RETRYING:
        raise self.retry(countdown=outcome.retry_in or 0, max_retries=None)
    return recorded(store.get_task_run(tr_id) or tr)


def _upstream(
    store: Store,
    lf: LoadedFlow,
    flow_run_id: str,
    slug: str,
    map_index: int,
    element: dict[str, Any] | None,
) -> list[Upstream]:
    """The upstream task runs one node sees, read by their ids in one query."""
    edges = lf.upstream[slug]
    if not edges:
        return []
    ids = {s: task_run_id(flow_run_id, s) for s, *_ in edges}
    mapped_ups = {s for s, _, mapped, _ in edges if mapped and s in lf.mapped}
    child_ids = {s: task_run_id(flow_run_id, s, map_index) for s in mapped_ups} if element else {}
    rows = store.task_runs_by_id([*ids.values(), *child_ids.values()])
    upstream = [
        Upstream(s, key, State(rows[ids[s]].state), rows[ids[s]].result, mapped, flat)
        for s, key, mapped, flat in edges
    ]
    if element is None or map_index < 0:
        return upstream
    states = {s: State(rows[i].state) for s, i in child_ids.items() if i in rows}
    return element_upstream(upstream, element, states)


def _map(
    self: CeleryTask,
    lf: LoadedFlow,
    flow_run_id: str,
    slug: str,
    tr_id: str,
    owner: str,
    upstream: list[Upstream],
) -> Outcome:
    """Fan a mapped task out over its elements, or say why it ends now."""
    task = lf.task(slug)
    whole = [u for u in upstream if not (u.mapped and u.slug in lf.mapped)]
    stop = check_upstream(task, whole)
    if stop is not None:
        return stop
    try:
        lists = mapped_lists(
            task, lf.flow.constants.get(task, {}), lf.flow.constant_modes.get(task, {}), upstream
        )
    except MapError as exc:
        return Outcome(State.FAILED, message=str(exc))
    width = map_width(lists)
    if width == 0:
        return mapped_outcome([])
    b.store.start_mapped_task_run(tr_id, flow_run_id, slug, task.name, width, owner)
    header = [
        node_signature(lf, flow_run_id, slug, i, {k: v[i] for k, v in lists.items()})
        for i in range(width)
    ]
    body = app.signature(
        constants.COLLECT_MAP,
        args=(flow_run_id, slug, width),
        immutable=True,
        shadow=f"{lf.version.name}/{slug}/collect",
        queue=b.settings.queue,
    )
    raise self.replace(chord(header, body))


@app.task(name=constants.COLLECT_MAP, base=InfraRetrying)
def collect_map(flow_run_id: str, slug: str, width: int) -> dict[str, str]:
    """Record a mapped task's state and result list from its children's."""
    store = b.store
    tr_id = task_run_id(flow_run_id, slug)
    tr = store.get_task_run(tr_id)
    assert tr is not None
    if not State(tr.state).is_final:
        ids = [task_run_id(flow_run_id, slug, i) for i in range(width)]
        rows = store.task_runs_by_id(ids)
        outcome = mapped_outcome([(State(rows[i].state), rows[i].result) for i in ids])
        store.finish_task_run(tr_id, flow_run_id, outcome.state, outcome.message, outcome.result)
        tr = store.get_task_run(tr_id) or tr
    return recorded(tr)


@app.task(name=constants.MIRROR, bind=True, base=InfraRetrying)
def mirror(
    self: CeleryTask, flow_run_id: str, slug: str, child_id: str, map_index: int = -1
) -> dict[str, str]:
    """Give a waiting task run its child flow run's final state."""
    store = b.store
    tr_id = task_run_id(flow_run_id, slug, map_index)
    tr = store.get_task_run(tr_id)
    assert tr is not None
    if not State(tr.state).is_final:
        child = store.get_flow_run(child_id)
        if not State(child.state).is_final:
            raise self.retry(countdown=constants.DUPLICATE_RECHECK_SECONDS, max_retries=None)
        results = {t.slug: t.result for t in store.task_runs(child_id) if t.map_index == -1}
        state, message, result = mirror_outcome(
            child_id, State(child.state), child.message, results
        )
        store.finish_task_run(tr_id, flow_run_id, state, message, result)
        tr = store.get_task_run(tr_id) or tr
    return recorded(tr)


@app.task(name=constants.BARRIER, base=InfraRetrying)
def barrier() -> None:
    """A no-op that joins a group inside a nested canvas (see ``workers.canvas``)."""


@app.task(name=constants.FINALIZE, bind=True, base=InfraRetrying)
def finalize(self: CeleryTask, flow_run_id: str) -> dict[str, str]:
    """Record a flow run's final state from its reference tasks."""
    store = b.store
    run = store.get_flow_run(flow_run_id)
    if not State(run.state).is_final:
        lf = loaded(store, run.flow_id)
        ids = {task_run_id(flow_run_id, s): s for s in lf.reference}
        states = {ids[i]: State(t.state) for i, t in store.task_runs_by_id(list(ids)).items()}
        final, message = flow_state(states)
        b.set_flow_run_state(flow_run_id, final, message, expected=[State.RUNNING])
        run = store.get_flow_run(flow_run_id)
    if run.labels or run.parent_flow_run_id:
        wake(slots.release(flow_run_id, run.labels))
    return {"flow_run": flow_run_id, "state": run.state}


__all__ = [
    "app",
    "barrier",
    "build_canvas",
    "collect_map",
    "finalize",
    "mirror",
    "node",
    "release_slots",
    "resubmit",
    "start_flow_run",
    "wake_label",
]
