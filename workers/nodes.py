"""The Celery tasks that run flow runs: ``start_flow_run`` compiles a run's DAG to
a canvas, ``node`` runs one task run, ``mirror`` takes a child run's final state,
``finalize`` records the flow run's state.

Every task returns the recorded state, the same bytes on every delivery, so Redis
chord counting ignores a duplicate. A user task's failure is a recorded state,
never a Celery exception."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
from orchestrator.store import Link, Mirror, Store, aware, task_run_id, utcnow
from workers.canvas import Chain, Node, to_signature
from workers.flows import LoadedFlow, loaded
from workers.heartbeat import heartbeat
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
    """What a node returns: the recorded state, no timestamps (identical on every
    delivery), and the child run it took its state from, if any."""
    return _recorded(tr.id, State(tr.state), tr.child_flow_run_id)


def _recorded(tr_id: str, state: State, child_id: str | None = None) -> dict[str, str]:
    out = {"task_run": tr_id, "state": state.value}
    if child_id:
        out["child_flow_run"] = child_id
    return out


def node_signature(
    lf: LoadedFlow,
    flow_run_id: str,
    slug: str,
    map_index: int = -1,
    element: dict[str, Any] | None = None,
    finalize: bool = False,
) -> Signature:
    """The immutable signature of one node, named ``flow/slug`` (``flow/slug[i]`` for
    a mapped child, which carries its element of the mapped arguments). With
    ``finalize`` the node ends its flow and records the flow run's state itself."""
    task = lf.task(slug)
    name = f"{lf.version.name}/{slug}" + (f"[{map_index}]" if map_index >= 0 else "")
    options: dict[str, Any] = {"shadow": name, "queue": b.settings.queue}
    if task.timeout:
        options["soft_time_limit"] = task.timeout
        options["time_limit"] = task.timeout + 10
    args = (flow_run_id, slug) if map_index < 0 else (flow_run_id, slug, map_index, element)
    kwargs = {"finalize": True} if finalize else {}
    return app.signature(constants.NODE, args=args, kwargs=kwargs, immutable=True, **options)


def finalize_signature(lf: LoadedFlow, flow_run_id: str) -> Signature:
    """The signature of ``finalize`` for a flow run."""
    return app.signature(
        constants.FINALIZE,
        args=(flow_run_id,),
        immutable=True,
        shadow=f"{lf.version.name}/finalize",
        queue=b.settings.queue,
    )


def build_canvas(lf: LoadedFlow, flow_run_id: str) -> Signature:
    """A flow run's canvas: its nodes in DAG order, then ``finalize``. When one node
    ends the flow (every other node precedes it), that node finalizes the run
    itself, one message fewer."""
    plan = lf.plan
    if plan is None:
        return finalize_signature(lf, flow_run_id)
    last = plan.parts[-1] if isinstance(plan, Chain) else plan
    last_slug = last.slug if isinstance(last, Node) else None
    body = to_signature(
        plan,
        lambda s: node_signature(lf, flow_run_id, s, finalize=s == last_slug),
        barrier=lambda: app.signature(
            constants.BARRIER,
            immutable=True,
            shadow=f"{lf.version.name}/join",
            queue=b.settings.queue,
        ),
    )
    return body if last_slug is not None else chain(body, finalize_signature(lf, flow_run_id))


def begin(run: FlowRun, state: State, lf: LoadedFlow) -> bool:
    """Create a startable run's task runs and move it to Running (announced)."""
    tasks, done = _task_rows(lf, run)
    if b.store.begin_flow_run(run.id, tasks, done, [state]):
        b.notify(run.id, State.RUNNING)
        return True
    return False


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


def _worker() -> str:
    """This worker process, as task runs record it."""
    return f"{HOSTNAME}:{os.getpid()}"


def _owner() -> str:
    """A fresh lease owner for one claim."""
    return f"{_worker()}:{uuid.uuid4().hex[:8]}"


def _task_rows(lf: LoadedFlow, run: FlowRun) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """A run's task runs to create: (slug, name) of every task, and the parameters'
    values (recorded as Success at once)."""
    params = dict(run.parameters or {})
    tasks = [(t.slug or t.name, t.name) for t in lf.flow.tasks]
    done = {t.slug or "": params.get(t.name, t.default) for t in lf.flow.parameters()}
    return tasks, done


@dataclass
class Waiting:
    """The parent task run a child flow run is spliced under (``wait=True``).

    Attributes:
        recorded: what the parent task run recorded once it took the child's final
            state (set by :func:`run_inline`).
    """

    flow_run_id: str
    slug: str
    map_index: int
    recorded: dict[str, str] | None = None

    @property
    def task_run_id(self) -> str:
        """The waiting task run's id."""
        return task_run_id(self.flow_run_id, self.slug, self.map_index)


def run_inline(
    lf: LoadedFlow,
    run: FlowRun,
    begin_from: State | None = None,
    link: Link | None = None,
    waiting: Waiting | None = None,
    create: bool = False,
) -> State | Signature | None:
    """Run a one-task flow run's task here, in the Celery task that started the run
    (or waits for it), and finalize it: no canvas, no further messages.

    Args:
        lf: the run's flow, of one inline task.
        run: the run.
        begin_from: start the run from this state first (its task runs created, the
            task claimed and the run Running, in one transaction).
        link: with ``begin_from``, the parent task run that starts waiting for this
            run, recorded in that same transaction.
        waiting: the parent task run that waits for this run: it takes the run's
            final state when the run ends here (in the same transaction when it can).
        create: with ``begin_from``, the run is not stored yet: it is inserted in
            that same transaction (None when its id is taken already).

    Returns:
        The run's final state when it is final (and given to ``waiting``); the
        signature of the node task that takes over when the task retries later,
        waits for a child run, or a backend failed; None when the run was not in
        ``begin_from`` (nothing written) or another worker holds the task run's
        lease (it finishes the run, or the sweeper finds it stuck).
    """

    def ended(state: State, mirrored: Mirror | None = None) -> State:
        if waiting is not None:
            if mirrored is not None:
                waiting.recorded = _recorded(mirrored.task_run_id, mirrored.state, run.id)
            else:
                child = store.get_flow_run(run.id)
                waiting.recorded = mirror_child(
                    waiting.flow_run_id, waiting.slug, child, waiting.map_index
                )
        return state

    slug = lf.inline_slug
    assert slug is not None
    store = b.store
    tr_id = task_run_id(run.id, slug)
    owner = _owner()
    lease = b.settings.lease_seconds
    handover = node_signature(lf, run.id, slug, finalize=True)
    tasks, params = _task_rows(lf, run)
    if begin_from is not None:
        claim = store.begin_and_claim(
            run.id, tasks, params, [begin_from], slug, owner, lease, _worker(), link,
            create=run if create else None,
        )  # fmt: skip
        if claim is None:
            return None
        b.notify(run.id, State.RUNNING)
    try:
        if begin_from is None:
            claim = store.claim_task_run(tr_id, run.id, owner, lease, _worker())
        assert claim is not None
        if not claim.claimed:
            if State(claim.task_run.state).is_final:
                return ended(State(finalize_run(run.id, lf)["state"]))
            return handover if claim.task_run.child_flow_run_id else None
        fresh = begin_from is not None  # its slots were taken right before
        outcome = execute(lf, claim.flow_run, claim.task_run, slug, -1, None, owner, fresh)
        if outcome.wait_for is not None:
            if outcome.wait_for.new is not None:
                store.insert_flow_run(outcome.wait_for.new)
            store.finish_task_run(
                tr_id, run.id, State.RUNNING, outcome.message, owner=owner,
                child_flow_run_id=outcome.wait_for.flow_run_id,
            )  # fmt: skip
            return handover  # the node splices the child in
        if outcome.state is not State.RETRYING and lf.reference == [slug]:
            # the task's state decides the flow's (and the waiting parent's): record
            # them all at once
            final, message = flow_state({slug: outcome.state})
            mirror = None
            if waiting is not None:
                results = {**params, slug: outcome.result}
                m_state, m_message, m_result = mirror_outcome(run.id, final, message, results)
                mirror = Mirror(waiting.task_run_id, waiting.flow_run_id, m_state, m_message,
                                m_result)  # fmt: skip
            task_done, flow_done, mirrored = store.finish_task_and_flow_run(
                tr_id, run.id, outcome.state, outcome.message, outcome.result, owner,
                final, message, mirror,
            )  # fmt: skip
            if not task_done:
                return None  # our lease was lost: its new holder records the run
            if not flow_done:  # no longer Running (cancelled meanwhile)
                return ended(State(finalize_run(run.id, lf)["state"]))
            b.notify(run.id, final)
            _release(claim.flow_run)
            return ended(final, mirror if mirrored else None)
        if not store.finish_task_run(
            tr_id, run.id, outcome.state, outcome.message, outcome.result, owner=owner
        ):
            return None  # our lease was lost: its new holder records the run
        if outcome.state is State.RETRYING:
            return handover.set(countdown=outcome.retry_in or 0)
        known: dict[str, State] = {slug: outcome.state}
        return ended(State(finalize_run(run.id, lf, claim.flow_run, known)["state"]))
    except (BackendUnavailable, redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("flow run %s: %s; its node task takes over", run.id, exc)
        return handover


@app.task(name=constants.START_FLOW_RUN, bind=True, base=InfraRetrying)
def start_flow_run(self: CeleryTask, flow_run_id: str) -> dict[str, str]:
    """Move a submitted flow run to Running and send its canvas (a one-task flow
    runs right here), once it has a slot of each of its limited labels (else it
    waits in Queued)."""
    run = b.store.get_flow_run(flow_run_id)
    state = State(run.state)
    if state.is_final:
        wake(slots.release(run.id, run.labels))
        return {"flow_run": flow_run_id, "state": state.value}
    again = self.request.retries or (self.request.delivery_info or {}).get("redelivered")
    if state is State.RUNNING and again:
        # this task died or failed while running a one-task flow inline: resume it
        # (the claim runs the task again only if its lease expired)
        lf = loaded(b.store, run.flow_id)
        if lf.inline_slug is not None:
            return _started(run.id, run_inline(lf, run))
    if state not in STARTABLE or _spliced(run):
        return {"flow_run": flow_run_id, "state": state.value}
    arrival = (aware(run.created) or utcnow()).timestamp()
    if run.labels and not slots.acquire(run.id, run.labels, arrival):
        _queue(run, state)
        return {"flow_run": flow_run_id, "state": State.QUEUED.value}
    try:
        lf = loaded(b.store, run.flow_id)
        canvas = None if lf.inline_slug is not None else build_canvas(lf, flow_run_id)
    except BackendUnavailable:
        raise  # retried with backoff (InfraRetrying)
    except OrchestratorError as exc:
        if b.set_flow_run_state(flow_run_id, State.FAILED, str(exc)):
            wake(slots.release(run.id, run.labels))
        return {"flow_run": flow_run_id, "state": State.FAILED.value}
    if canvas is None:
        return _started(flow_run_id, run_inline(lf, run, begin_from=state))
    if not begin(run, state, lf):
        return {"flow_run": flow_run_id, "state": b.store.get_flow_run(flow_run_id).state}
    canvas.apply_async()
    return {"flow_run": flow_run_id, "state": State.RUNNING.value}


def _started(flow_run_id: str, inline: State | Signature | None) -> dict[str, str]:
    """Send the node that takes over an inline run, if any; what start_flow_run returns."""
    if isinstance(inline, State):
        return {"flow_run": flow_run_id, "state": inline.value}
    if inline is not None:
        inline.apply_async()
    return {"flow_run": flow_run_id, "state": State.RUNNING.value}


@app.task(name=constants.RESUBMIT, base=InfraRetrying)
def resubmit(flow_run_id: str) -> dict[str, str]:
    """Send a stuck Running flow run's canvas again (the sweeper asks for it).

    Idempotent: finished nodes return their recorded state, unfinished ones run,
    child runs are found by their idempotency keys."""
    run = b.store.get_flow_run(flow_run_id)
    if State(run.state) is State.RUNNING:
        build_canvas(loaded(b.store, run.flow_id), flow_run_id).apply_async()
    return {"flow_run": flow_run_id, "state": run.state}


@app.task(name=constants.RELEASE_SLOTS, base=InfraRetrying)
def release_slots(flow_run_id: str, labels: list[str]) -> None:
    """Give back a finished or cancelled run's slots and wake the runs waiting longest."""
    wake(slots.release(flow_run_id, labels))


@app.task(name=constants.WAKE_LABEL, base=InfraRetrying)
def wake_label(label: str) -> None:
    """Wake the runs waiting longest for a label (after its limit changed)."""
    wake(slots.waiting(label))


def _renewer(
    store: Store, tr_id: str, owner: str, lease: float, run_id: str | None
) -> Callable[[], None]:
    """What the heartbeat calls for one running task run: renew its lease, and its
    flow run's slots when it has any."""

    def renew() -> None:
        store.renew_lease(tr_id, owner, lease)
        if run_id is not None:
            slots.renew(run_id)

    return renew


def _splice_child(
    self: CeleryTask,
    flow_run_id: str,
    slug: str,
    map_index: int,
    child_id: str,
    lf: LoadedFlow | None,
    finalize: bool,
    link: Link | None = None,
    new: FlowRun | None = None,
) -> dict[str, str]:
    """Take a child run's final state into this waiting task run.

    A child not started yet starts here: a one-task child runs at once in this
    task and its state is mirrored here too (the child stored, started and linked
    to in one transaction, the mirrored state written with its end); any other
    child's canvas replaces this node, followed by ``mirror`` (and ``finalize``
    when this node ends its flow).

    Args:
        link: this task run's waiting state, when not recorded yet.
        new: the child, when it is not stored yet (built by the task).
    """
    store = b.store
    waiting = Waiting(flow_run_id, slug, map_index)

    def mirrored() -> dict[str, str]:
        if finalize:
            finalize_run(flow_run_id, lf)
        assert waiting.recorded is not None
        return waiting.recorded

    child = new if new is not None else store.get_flow_run(child_id)
    stored = new is None
    child_state = State(child.state)
    head: Signature | None = None
    canvas = False
    if child_state in STARTABLE:
        arrival = (aware(child.created) or utcnow()).timestamp()
        if slots.acquire(child_id, child.labels, arrival, parent_id=flow_run_id):
            child_lf = loaded(store, child.flow_id)
            if child_lf.inline_slug is None:
                canvas = True
            else:
                inline = run_inline(child_lf, child, child_state, link, waiting, not stored)
                if isinstance(inline, State):
                    return mirrored()
                if inline is not None:
                    head, link = inline, None  # started, the link written with it
                else:  # stored and started already (by another delivery or attempt)
                    child = store.get_flow_run(child_id)
                    child_state = State(child.state)
                stored = True
    if not stored:
        child, _ = store.insert_flow_run(child)
        child_state = State(child.state)
    if link is not None:
        store.finish_task_run(
            link.task_run_id, link.flow_run_id, State.RUNNING, link.message, owner=link.owner,
            child_flow_run_id=child_id,
        )  # fmt: skip
    if canvas:
        child_lf = loaded(store, child.flow_id)
        if begin(child, child_state, child_lf):
            head = build_canvas(child_lf, child_id)
    elif head is None and child_state is State.RUNNING:
        child_lf = loaded(store, child.flow_id)
        if child_lf.inline_slug is not None:
            # a one-task child runs inside this node; a delivery that died doing so
            # left it Running: run it again once its lease has expired
            inline = run_inline(child_lf, child, waiting=waiting)
            if isinstance(inline, State):
                return mirrored()
            if inline is None:  # held by a live lease: look again shortly
                raise self.retry(countdown=constants.DUPLICATE_RECHECK_SECONDS, max_retries=None)
            head = inline
    elif head is None and child_state in STARTABLE:
        # no slot for the child yet: it waits in Queued, and this node holds no process
        _queue(child, child_state)
        store.touch_flow_run(flow_run_id)  # alive: the sweeper leaves the parent be
        raise self.retry(countdown=constants.DUPLICATE_RECHECK_SECONDS, max_retries=None)
    tail: list[Signature] = [
        app.signature(
            constants.MIRROR,
            args=(flow_run_id, slug, child_id, map_index),
            immutable=True,
            shadow=self.request.shadow or f"{slug}/mirror",  # keeps flow/slug in Flower
            queue=b.settings.queue,
        )
    ]
    if finalize:
        lf = lf or loaded(store, store.get_flow_run(flow_run_id).flow_id)
        tail.append(finalize_signature(lf, flow_run_id))
    raise self.replace(chain(head, *tail) if head is not None else chain(*tail))


def execute(
    lf: LoadedFlow,
    run: FlowRun,
    tr: TaskRun,
    slug: str,
    map_index: int,
    element: dict[str, Any] | None,
    owner: str,
    slots_fresh: bool = False,
) -> Outcome:
    """Run a claimed task run's code, or say why it does not run (its trigger, a
    cancelled flow run). ``slots_fresh``: the run's slots were just taken (no need
    to renew them before the code starts)."""
    if State(run.state) is State.CANCELLED:
        return Outcome(State.CANCELLED, message="flow run cancelled")
    store = b.store
    task = lf.task(slug)
    limited = bool(run.labels or run.parent_flow_run_id)
    if limited and not slots_fresh:
        slots.renew(run.id)
    upstream = _upstream(store, lf, run.id, slug, map_index, element)
    constants_ = lf.flow.constants.get(task, {})
    if element:
        modes = lf.flow.constant_modes.get(task, {})
        constants_ = {k: element[k] if k in modes else v for k, v in constants_.items()}
    outcome = check_upstream(task, upstream)
    if outcome is not None:
        return outcome
    ctx = RunContext(
        flow_run_id=run.id,
        flow_name=lf.version.name,
        task_slug=slug,
        task_run_id=tr.id,
        map_index=map_index,
        parameters=dict(run.parameters or {}),
        attempt=tr.attempts,
    )
    lease = b.settings.lease_seconds
    with (
        entered(ctx),
        heartbeat.holding(_renewer(store, tr.id, owner, lease, run.id if limited else None), lease),
        logcapture.task_run_logs(store, run.id, tr.id, tr.attempts),
    ):
        return run_code(
            task,
            gather_inputs(constants_, upstream),
            tr.attempts,
            call=logcapture.traced,
            timeout_errors=(SoftTimeLimitExceeded,),
        )


@app.task(name=constants.NODE, bind=True, base=InfraRetrying)
def node(
    self: CeleryTask,
    flow_run_id: str,
    slug: str,
    map_index: int = -1,
    element: dict[str, Any] | None = None,
    finalize: bool = False,
) -> dict[str, str]:
    """Run one task run of a flow run and return its recorded state; with
    ``finalize``, then record the flow run's state.

    A mapped task's own node maps: it records its children and replaces itself with
    a chord of one node per element, closed by ``collect_map``."""
    store = b.store
    tr_id = task_run_id(flow_run_id, slug, map_index)
    owner = _owner()
    claim = store.claim_task_run(tr_id, flow_run_id, owner, b.settings.lease_seconds, _worker())
    tr = claim.task_run
    if not claim.claimed:
        if tr.child_flow_run_id and not State(tr.state).is_final:
            return _splice_child(
                self, flow_run_id, slug, map_index, tr.child_flow_run_id, None, finalize
            )
        if not State(tr.state).is_final:
            raise self.retry(countdown=constants.DUPLICATE_RECHECK_SECONDS, max_retries=None)
        if finalize:
            finalize_run(flow_run_id)
        return recorded(tr)
    run = claim.flow_run
    lf = loaded(store, run.flow_id)
    if slug in lf.mapped and map_index < 0 and State(run.state) is not State.CANCELLED:
        outcome = _map(self, lf, run, slug, tr_id, owner, finalize)
    else:
        outcome = execute(lf, run, tr, slug, map_index, element, owner)
    if outcome.wait_for is not None:
        link = Link(tr_id, flow_run_id, owner, outcome.message)
        wait_for = outcome.wait_for
        return _splice_child(
            self, flow_run_id, slug, map_index, wait_for.flow_run_id, lf, finalize, link,
            wait_for.new,
        )  # fmt: skip
    if not store.finish_task_run(
        tr_id, flow_run_id, outcome.state, outcome.message, outcome.result, owner=owner
    ):
        return recorded(store.get_task_run(tr_id) or tr)  # another delivery recorded it
    if outcome.state is State.RETRYING:
        raise self.retry(countdown=outcome.retry_in or 0, max_retries=None)
    if finalize:
        finalize_run(flow_run_id, lf, run, {slug: outcome.state} if map_index < 0 else None)
    return _recorded(tr_id, outcome.state)


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
    if element is None or map_index < 0:
        rows = store.task_runs_by_id(list(ids.values()))
        return [
            Upstream(s, key, State(rows[ids[s]].state), rows[ids[s]].result, mapped, flat)
            for s, key, mapped, flat in edges
        ]
    # one element of a mapped task: a mapped edge carries the element, so only the
    # other edges need their upstream's result (a whole list is not read per element)
    mapped_ups = {s for s, _, mapped, _ in edges if mapped and s in lf.mapped}
    child_ids = {s: task_run_id(flow_run_id, s, map_index) for s in mapped_ups}
    whole = {ids[s] for s, key, mapped, _ in edges if not (mapped and key is not None)}
    states = store.task_run_states([*ids.values(), *child_ids.values()])
    rows = store.task_runs_by_id(list(whole)) if whole else {}
    upstream = [
        Upstream(s, key, states[ids[s]], rows[ids[s]].result if ids[s] in rows else None,
                 mapped, flat)
        for s, key, mapped, flat in edges
    ]  # fmt: skip
    element_states = {s: states[i] for s, i in child_ids.items() if i in states}
    return element_upstream(upstream, element, element_states)


def _map(
    self: CeleryTask,
    lf: LoadedFlow,
    run: FlowRun,
    slug: str,
    tr_id: str,
    owner: str,
    finalize: bool,
) -> Outcome:
    """Fan a mapped task out over its elements, or say why it ends now."""
    task = lf.task(slug)
    upstream = _upstream(b.store, lf, run.id, slug, -1, None)
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
    b.store.start_mapped_task_run(tr_id, run.id, slug, task.name, width, owner)
    header = [
        node_signature(lf, run.id, slug, i, {k: v[i] for k, v in lists.items()})
        for i in range(width)
    ]
    body = app.signature(
        constants.COLLECT_MAP,
        args=(run.id, slug, width),
        immutable=True,
        shadow=f"{lf.version.name}/{slug}/collect",
        queue=b.settings.queue,
    )
    fan_out = chord(header, body)
    raise self.replace(chain(fan_out, finalize_signature(lf, run.id)) if finalize else fan_out)


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


def mirror_child(flow_run_id: str, slug: str, child: FlowRun, map_index: int) -> dict[str, str]:
    """Give a waiting task run its final child run's state; the recorded state."""
    store = b.store
    tr_id = task_run_id(flow_run_id, slug, map_index)
    results = {t.slug: t.result for t in store.task_runs(child.id) if t.map_index == -1}
    state, message, result = mirror_outcome(child.id, State(child.state), child.message, results)
    if store.finish_task_run(tr_id, flow_run_id, state, message, result):
        return _recorded(tr_id, state, child.id)
    tr = store.get_task_run(tr_id)  # already final: mirrored by another delivery
    assert tr is not None
    return recorded(tr)


@app.task(name=constants.MIRROR, bind=True, base=InfraRetrying)
def mirror(
    self: CeleryTask, flow_run_id: str, slug: str, child_id: str, map_index: int = -1
) -> dict[str, str]:
    """Give a waiting task run its child flow run's final state."""
    child = b.store.get_flow_run(child_id)
    if not State(child.state).is_final:
        tr = b.store.get_task_run(task_run_id(flow_run_id, slug, map_index))
        if tr is not None and State(tr.state).is_final:
            return recorded(tr)
        raise self.retry(countdown=constants.DUPLICATE_RECHECK_SECONDS, max_retries=None)
    return mirror_child(flow_run_id, slug, child, map_index)


@app.task(name=constants.BARRIER, base=InfraRetrying)
def barrier() -> None:
    """A no-op that joins a group inside a nested canvas (see ``workers.canvas``)."""


def finalize_run(
    flow_run_id: str,
    lf: LoadedFlow | None = None,
    run: FlowRun | None = None,
    known: dict[str, State] | None = None,
) -> dict[str, str]:
    """Record a flow run's final state from its reference tasks and give back its
    slots.

    Args:
        flow_run_id: the run.
        lf: its loaded flow, when the caller has it.
        run: the run as the caller last read it while Running (saves a read).
        known: states of reference tasks the caller just recorded (saves a read).
    """
    store = b.store
    if run is None or State(run.state) is not State.RUNNING:
        run = store.get_flow_run(flow_run_id)
    state = State(run.state)
    if not state.is_final:
        lf = lf or loaded(store, run.flow_id)
        known = known or {}
        ids = {task_run_id(flow_run_id, s): s for s in lf.reference if s not in known}
        states = dict(known)
        if ids:
            rows = store.task_runs_by_id(list(ids))
            states.update({ids[i]: State(t.state) for i, t in rows.items()})
        final, message = flow_state({s: states[s] for s in lf.reference})
        if b.set_flow_run_state(flow_run_id, final, message, expected=[State.RUNNING]):
            state = final
        else:
            state = State(store.get_flow_run(flow_run_id).state)
    _release(run)
    return {"flow_run": flow_run_id, "state": state.value}


def _release(run: FlowRun) -> None:
    """Give back a finished run's concurrency slots and wake who waits for them."""
    if run.labels or run.parent_flow_run_id:
        wake(slots.release(run.id, run.labels))


@app.task(name=constants.FINALIZE, base=InfraRetrying)
def finalize(flow_run_id: str) -> dict[str, str]:
    """Record a flow run's final state from its reference tasks."""
    return finalize_run(flow_run_id)


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
