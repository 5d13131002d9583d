"""A node that waits for a child flow run (``StartFlowRun(wait=True)``,
``wait_for_flow_run``, ``get_task_run_result``): :func:`splice_child` starts the
child when it has not started (a one-task child runs at once inside the node, any
other child's canvas replaces the node), and closes with ``mirror`` (and
``finalize`` when the node ends its flow), or sends itself again while the child
waits for a slot, for its scheduled start time, or runs elsewhere. Imports
Celery, the pure core (clock, requests, states), :mod:`orchestrator.db` and :mod:`workers.app`,
:mod:`workers.begin`, :mod:`workers.finalize`, :mod:`workers.flow_cache`,
:mod:`workers.handling`,
:mod:`workers.inline`, :mod:`workers.mirroring`, :mod:`workers.signatures`."""

from __future__ import annotations

import dataclasses

from celery import chain
from celery.canvas import Signature

from orchestrator.clock import aware, utcnow
from orchestrator.db import Link
from orchestrator.db.models import FlowRun
from orchestrator.requests import NewFlowRun
from orchestrator.states import State
from workers.app import SETTINGS, InfraRetrying, current_backends, current_slots
from workers.begin import STARTABLE, AnyRun, arrival, begin, queue_for_slot
from workers.finalize import finalize_run
from workers.flow_cache import LoadedFlow, loaded
from workers.handling import handled_task
from workers.inline import Finished, HandedOver, NotMine, run_inline
from workers.mirroring import Waiting, mirror_child
from workers.signatures import build_canvas, finalize_signature, mirror_signature

__all__ = ["splice_child"]


def splice_child(
    task: InfraRetrying,
    waiting: Waiting,
    child_id: str,
    lf: LoadedFlow | None,
    finalize: bool,
    link: Link | None = None,
    new: NewFlowRun | None = None,
) -> dict[str, str]:
    """Take a child run's final state into this waiting task run.

    A child not started yet starts here: a one-task child runs at once in this
    task and its state is mirrored here too (the child stored, started and linked
    to in one transaction, the mirrored state written with its end); any other
    child's canvas replaces this node, followed by ``mirror`` (and ``finalize``
    when this node ends its flow). A child that runs elsewhere is waited for by
    ``mirror``, which looks again until it ends; a final one is mirrored at once.

    Args:
        task: the node task (bound), replaced or retried.
        waiting: the waiting task run (and what it takes from the child).
        child_id: the child run.
        lf: the waiting run's flow, when the caller has it.
        finalize: this node ends its flow.
        link: this task run's waiting state, when not recorded yet.
        new: the child, when it is not stored yet (built by the task).

    Returns:
        The waiting task run's recorded state, when the child ended here.
    """
    if lf is not None and (handler_task := handled_task(lf, waiting.slug)) is not None:
        waiting = dataclasses.replace(waiting, task=handler_task, flow_name=lf.version.name)
    return _Splice(task, waiting, child_id, lf, finalize, link, new).run()


class _Splice:
    """One splice of a child run into a waiting node, step by step."""

    def __init__(
        self,
        task: InfraRetrying,
        waiting: Waiting,
        child_id: str,
        lf: LoadedFlow | None,
        finalize: bool,
        link: Link | None,
        new: NewFlowRun | None,
    ) -> None:
        self.task = task
        self.waiting = waiting
        self.child_id = child_id
        self.lf = lf
        self.finalize = finalize
        self.link = link
        self.store = current_backends().store
        self.child: AnyRun = new if new is not None else self.store.flow_runs.get(child_id)
        self.stored = new is None
        self.head: Signature | None = None
        self.canvas = False

    def run(self) -> dict[str, str]:
        """Start the child if it may start, link to it, then mirror it or hand over."""
        if State(self.child.state) in STARTABLE and (later := self._starts_in()) > 0:
            # it starts at its scheduled start time: link to it, look again then
            self._store_and_link()
            self.store.flow_runs.touch(self.waiting.flow_run_id)  # alive, for the sweeper
            raise self.task.again(
                min(later, max(SETTINGS.recheck_seconds, SETTINGS.stale_seconds / 2))
            )
        if State(self.child.state) in STARTABLE:
            done = self._start()
            if done is not None:
                return self._mirrored(done)
        self._store_and_link()
        done = self._take_head()
        if done is not None:
            return self._mirrored(done)
        raise self.task.replace(self._canvas())

    def _starts_in(self) -> float:
        """Seconds until the child's scheduled start time (0 or less: it may start)."""
        when = aware(self.child.scheduled_start_time)
        return 0.0 if when is None else (when - utcnow()).total_seconds()

    def _start(self) -> Finished | None:
        """Take the child's slots and start it: a one-task child runs here at once."""
        child = self.child
        slots = current_slots()
        if not slots.acquire(
            self.child_id, child.labels, arrival(child), parent_id=self.waiting.flow_run_id
        ):
            return None
        child_lf = loaded(self.store, child.flow_id)
        if child_lf.inline_slug is None:
            self.canvas = True
            return None
        inline = run_inline(child_lf, child, State(child.state), self.link, self.waiting)
        if isinstance(inline, Finished):
            return inline
        if isinstance(inline, HandedOver):
            self.head, self.link = inline.signature, None  # started, the link written with it
        else:  # stored and started already (by another delivery or attempt)
            self.child = self.store.flow_runs.get(self.child_id)
        self.stored = True
        return None

    def _store_and_link(self) -> None:
        """Store the child if nothing did yet; record that this task run waits for it."""
        if not self.stored:
            assert isinstance(self.child, NewFlowRun)
            self.child, _ = self.store.flow_runs.insert(self.child)
        link = self.link
        if link is not None:
            self.store.task_runs.finish(
                link.task_run_id,
                link.flow_run_id,
                State.RUNNING,
                link.message,
                link.takes,
                owner=link.owner,
                child_flow_run_id=self.child_id,
            )

    def _take_head(self) -> Finished | None:
        """What runs before ``mirror``: the child's canvas when it starts now, the
        inline child's node when it runs on elsewhere; or retry while it waits."""
        child, state = self.child, State(self.child.state)
        if self.canvas:
            child_lf = loaded(self.store, child.flow_id)
            if begin(child, state, child_lf):
                self.head = build_canvas(child_lf, self.child_id)
        elif self.head is None and state is State.RUNNING:
            return self._resume()
        elif self.head is None and state.is_final:
            w = self.waiting
            assert isinstance(child, FlowRun)  # stored by _store_and_link
            return Finished(state, mirror_child(w, child))
        elif self.head is None and state in STARTABLE:
            # no slot for the child yet: it waits in Queued, and this node holds no
            # process; the parent is touched (alive: the sweeper leaves it be)
            queue_for_slot(child, state, loaded(self.store, child.flow_id))
            self.store.flow_runs.touch(self.waiting.flow_run_id)
            raise self.task.again(SETTINGS.recheck_seconds)
        return None

    def _resume(self) -> Finished | None:
        """A Running child: a one-task one runs inside this node; a delivery that died
        doing so left it Running: run it again once its lease has expired."""
        child_lf = loaded(self.store, self.child.flow_id)
        if child_lf.inline_slug is None:
            return None
        inline = run_inline(child_lf, self.child, waiting=self.waiting)
        if isinstance(inline, Finished):
            return inline
        if isinstance(inline, NotMine):  # held by a live lease: look again shortly
            raise self.task.again(SETTINGS.recheck_seconds)
        self.head = inline.signature
        return None

    def _mirrored(self, done: Finished) -> dict[str, str]:
        """The child ended here (and this task run took its state): finalize if asked."""
        if self.finalize:
            finalize_run(self.waiting.flow_run_id, self.lf)
        assert done.recorded is not None
        return done.recorded

    def _canvas(self) -> Signature:
        """What replaces this node: the head (if any), ``mirror``, maybe ``finalize``."""
        w = self.waiting
        shadow = self.task.request.shadow or f"{w.slug}/mirror"  # keeps flow/slug in Flower
        takes = w.takes.as_json() if w.takes is not None else None
        tail = [
            mirror_signature(
                w.flow_run_id,
                w.slug,
                self.child_id,
                w.map_index,
                shadow,
                takes,
                handlers=w.task is not None,
            )
        ]
        if self.finalize:
            lf = self.lf or loaded(self.store, self.store.flow_runs.get(w.flow_run_id).flow_id)
            tail.append(finalize_signature(lf, w.flow_run_id))
        return chain(self.head, *tail) if self.head is not None else chain(*tail)
