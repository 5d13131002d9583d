"""The canvas compiler's Celery half: :func:`to_signature` turns a
:data:`~workers.plan.Plan` into a Celery canvas (``Node`` becomes
``make_sig(slug)``, ``Chain`` :func:`celery.chain`, ``Group`` :func:`celery.group`;
Celery itself turns ``chain(group, x)`` into a chord, so ``A -> (B, C) -> D`` runs
as ``chain(A, chord([B, C], D))``). Imports Celery and :mod:`workers.plan` only;
the pure compiler is :mod:`workers.dag`."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import celery
from celery.canvas import Signature

from workers.plan import Group, Node, Plan

__all__ = ["to_signature"]


def to_signature(
    plan: Plan,
    make_sig: Callable[[str], Signature],
    barrier: Callable[[], Signature] | None = None,
) -> Signature:
    """Build the Celery canvas for a plan.

    ``Node`` becomes ``make_sig(slug)``, ``Chain`` becomes :func:`celery.chain`
    and ``Group`` becomes :func:`celery.group`. Celery upgrades a group
    followed by a task into a chord on its own. Nothing is sent.

    Celery 5.7 loses track of a chord nested in a group that ends a chain which
    is itself a member of a group (for example
    ``group(chain(x, group(chord([a, b], c), d)), e)`` never completes). With
    ``barrier``, a chain inside a group that ends in a group gets one no-op task
    appended, which closes that group with a plain chord and keeps every shape
    working; it adds no ordering between flow tasks.

    Args:
        plan: The plan to translate.
        make_sig: Builds the signature of one node task from its slug.
        barrier: Builds a no-op signature (see above).

    Returns:
        The canvas signature; calling ``apply_async()`` on it runs the plan.
    """

    def build(p: Plan, in_group: bool) -> Signature:
        if isinstance(p, Node):
            return make_sig(p.slug)
        if isinstance(p, Group):
            return cast(Signature, celery.group([build(x, True) for x in p.parts]))
        parts = [build(x, False) for x in p.parts]
        if in_group and barrier is not None and isinstance(p.parts[-1], Group):
            parts.append(barrier())
        return cast(Signature, celery.chain(*parts))

    return build(plan, False)
