"""Triggers: which upstream states let a task run.

First each trigger as the pure function it is, over representative lists of
upstream states (the empty list included); then each one inside ``flow.run()``,
downstream of tasks that succeed, fail or skip, where a trigger that is not met
leaves the task TriggerFailed and its code never runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orchestrator import SKIP, Flow, State, TaskRunState, task
from orchestrator import triggers as T
from orchestrator.triggers import Trigger

S = State.SUCCESS
F = State.FAILED
TF = State.TRIGGER_FAILED
TO = State.TIMED_OUT
SK = State.SKIPPED
C = State.CANCELLED
R = State.RUNNING
P = State.PENDING


def case(trigger: Trigger, upstream: Sequence[State], expected: bool, label: str) -> object:
    return pytest.param(trigger, list(upstream), expected, id=label)


# --- the pure functions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "upstream", "expected"),
    [
        # all_successful, the default
        case(T.all_successful, [], True, "all_successful-none"),
        case(T.all_successful, [S, S], True, "all_successful-all-success"),
        case(T.all_successful, [S, SK], True, "all_successful-skip-counts-as-success"),
        case(T.all_successful, [S, F], False, "all_successful-one-failed"),
        case(T.all_successful, [S, TO], False, "all_successful-one-timed-out"),
        case(T.all_successful, [S, TF], False, "all_successful-one-trigger-failed"),
        case(T.all_successful, [S, C], False, "all_successful-one-cancelled"),
        # all_failed
        case(T.all_failed, [], True, "all_failed-none"),
        case(T.all_failed, [F, TO, TF], True, "all_failed-every-kind-of-failure"),
        case(T.all_failed, [F, S], False, "all_failed-one-success"),
        case(T.all_failed, [F, SK], False, "all_failed-one-skipped"),
        case(T.all_failed, [C], False, "all_failed-cancelled-is-not-failed"),
        # any_successful
        case(T.any_successful, [], True, "any_successful-none"),
        case(T.any_successful, [F, S], True, "any_successful-one-of-two"),
        case(T.any_successful, [F, SK], True, "any_successful-skip-counts"),
        case(T.any_successful, [F, TO], False, "any_successful-all-failed"),
        case(T.any_successful, [C], False, "any_successful-cancelled"),
        # any_failed
        case(T.any_failed, [], True, "any_failed-none"),
        case(T.any_failed, [S, F], True, "any_failed-one-failed"),
        case(T.any_failed, [S, TO], True, "any_failed-timed-out-counts"),
        case(T.any_failed, [S, TF], True, "any_failed-trigger-failed-counts"),
        case(T.any_failed, [S, SK], False, "any_failed-none-failed"),
        # all_finished / always_run
        case(T.all_finished, [], True, "all_finished-none"),
        case(T.all_finished, [S, F, TF, TO, SK, C], True, "all_finished-every-final-state"),
        case(T.all_finished, [S, R], False, "all_finished-one-still-running"),
        case(T.all_finished, [P], False, "all_finished-one-pending"),
        case(T.always_run, [F, TF], True, "always_run-after-failures"),
        # not_all_skipped (the all-skipped case raises SKIP, tested below)
        case(T.not_all_skipped, [], True, "not_all_skipped-none"),
        case(T.not_all_skipped, [S, SK], True, "not_all_skipped-some-ran"),
        case(T.not_all_skipped, [S], True, "not_all_skipped-success"),
        case(T.not_all_skipped, [SK, F], False, "not_all_skipped-one-failed"),
    ],
)
def test_trigger_over_upstream_states(
    trigger: Trigger, upstream: list[State], expected: bool
) -> None:
    # Given the states of a task's upstream tasks
    # When the trigger decides
    # Then it lets the task run exactly when its rule is met
    assert trigger(upstream) is expected


def test_always_run_is_all_finished() -> None:
    # Given the two names Prefect 1 users know
    # Then they are one and the same trigger
    assert T.always_run is T.all_finished


def test_not_all_skipped_skips_when_every_upstream_skipped() -> None:
    # Given upstream tasks that all skipped
    # When not_all_skipped decides
    # Then it skips the task (as in Prefect 1) rather than failing it
    with pytest.raises(SKIP, match="every upstream task skipped"):
        T.not_all_skipped([SK, SK])


@pytest.mark.parametrize(
    ("trigger", "upstream", "expected"),
    [
        # counts
        case(T.some_successful(at_least=2), [S, S, F], True, "at_least-2-met"),
        case(T.some_successful(at_least=2), [S, F, F], False, "at_least-2-not-met"),
        case(T.some_successful(at_least=2), [SK, S], True, "at_least-2-skip-counts"),
        case(T.some_successful(at_least=1), [], True, "at_least-1-no-upstream-passes"),
        case(T.some_successful(at_most=1), [S, F, F], True, "at_most-1-met"),
        case(T.some_successful(at_most=1), [S, S, F], False, "at_most-1-exceeded"),
        case(T.some_successful(at_most=1), [], True, "at_most-1-no-upstream"),
        case(T.some_successful(at_least=1, at_most=2), [S, S, F], True, "between-1-and-2"),
        case(T.some_successful(at_least=1, at_most=2), [S, S, S], False, "above-2"),
        case(T.some_successful(at_least=1, at_most=2), [F, F, F], False, "below-1"),
        case(T.some_successful(), [F, F], True, "no-bounds-always-met"),
        # fractions
        case(T.some_successful(at_least=0.5), [S, F], True, "half-of-2"),
        case(T.some_successful(at_least=0.5), [S, F, F], False, "a-third-is-under-half"),
        case(T.some_successful(at_most=0.5), [S, F, F, F], True, "a-quarter-is-under-half"),
        case(T.some_successful(at_most=0.5), [S, S, F], False, "two-thirds-is-over-half"),
        # an int is a count, a float a fraction: 1 means one task, 1.0 means all of them
        case(T.some_successful(at_least=1), [S, F], True, "int-1-is-one-task"),
        case(T.some_successful(at_least=1.0), [S, F], False, "float-1.0-is-every-task"),
        case(T.some_successful(at_least=1.0), [S, SK], True, "float-1.0-all-succeeded"),
        # some_failed
        case(T.some_failed(at_least=1), [S, F], True, "failed-at_least-1-met"),
        case(T.some_failed(at_least=1), [S, SK], False, "failed-at_least-1-not-met"),
        case(T.some_failed(at_least=2), [TO, TF, S], True, "failed-kinds-count"),
        case(T.some_failed(at_most=0), [S, SK], True, "failed-at_most-0-met"),
        case(T.some_failed(at_most=0), [S, F], False, "failed-at_most-0-exceeded"),
        case(T.some_failed(at_least=0.5), [F, S], True, "failed-half-met"),
        case(T.some_failed(at_least=0.5), [F, S, S], False, "failed-third-under-half"),
        case(T.some_failed(at_most=0.25), [F, S, S, S], True, "failed-quarter-at-limit"),
        case(T.some_failed(at_most=0.25), [F, F, S, S], False, "failed-half-over-quarter"),
        case(T.some_failed(at_least=1), [], True, "failed-at_least-1-no-upstream-passes"),
    ],
)
def test_counting_trigger(trigger: Trigger, upstream: list[State], expected: bool) -> None:
    # Given a counting trigger with bounds given as counts (int) or fractions (float)
    # When it decides over the upstream states
    # Then it runs exactly when the number of matching upstreams is within the bounds
    assert trigger(upstream) is expected


def test_counting_triggers_are_named_for_messages() -> None:
    # Given the counting triggers, built by factories
    # Then they carry readable names (used in TriggerFailed messages and flow structure)
    assert T.some_successful(at_least=1).__name__ == "some_successful"
    assert T.some_failed(at_most=2).__name__ == "some_failed"


# --- inside flow.run() -------------------------------------------------------------------


@task
def succeeds() -> str:
    return "fine"


@task
def fails() -> str:
    raise ValueError("upstream broke")


@task
def skips() -> str:
    raise SKIP("nothing to do today")


UPSTREAM = {"ok": succeeds, "fail": fails, "skip": skips}


def run_probe(
    trigger: Trigger, upstream: Sequence[str], skip_on_upstream_skip: bool = True
) -> tuple[TaskRunState, list[str]]:
    """Run a flow whose task ``probe`` (with ``trigger``) waits on the given upstreams.

    Returns the probe's state, and a record of whether its code ran."""
    ran: list[str] = []

    @task(name="probe", trigger=trigger, skip_on_upstream_skip=skip_on_upstream_skip)
    def probe() -> str:
        ran.append("probe")
        return "probe ran"

    with Flow("trigger-check") as flow:
        ups = [UPSTREAM[kind]() for kind in upstream]
        probe(upstream_tasks=ups)
    return flow.run().by_slug()["probe"], ran


@pytest.mark.parametrize(
    ("trigger", "upstream", "expected"),
    [
        (T.all_successful, ["ok", "ok"], State.SUCCESS),
        (T.all_successful, ["ok", "fail"], State.TRIGGER_FAILED),
        (T.all_failed, ["fail", "fail"], State.SUCCESS),
        (T.all_failed, ["ok", "fail"], State.TRIGGER_FAILED),
        (T.any_successful, ["ok", "fail"], State.SUCCESS),
        (T.any_successful, ["fail", "fail"], State.TRIGGER_FAILED),
        (T.any_failed, ["ok", "fail"], State.SUCCESS),
        (T.any_failed, ["ok", "ok"], State.TRIGGER_FAILED),
        (T.all_finished, ["ok", "fail"], State.SUCCESS),
        (T.always_run, ["fail", "fail"], State.SUCCESS),
        (T.some_successful(at_least=2), ["ok", "ok", "fail"], State.SUCCESS),
        (T.some_successful(at_least=2), ["ok", "fail", "fail"], State.TRIGGER_FAILED),
        (T.some_successful(at_most=0.5), ["ok", "fail", "fail"], State.SUCCESS),
        (T.some_successful(at_most=0.5), ["ok", "ok", "fail"], State.TRIGGER_FAILED),
        (T.some_failed(at_least=1), ["ok", "fail"], State.SUCCESS),
        (T.some_failed(at_least=1), ["ok", "ok"], State.TRIGGER_FAILED),
        (T.some_failed(at_most=0.5), ["ok", "ok", "fail"], State.SUCCESS),
        (T.some_failed(at_most=0.5), ["ok", "fail", "fail"], State.TRIGGER_FAILED),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_trigger_decides_whether_task_runs(
    trigger: Trigger, upstream: list[str], expected: State
) -> None:
    # Given a task with a trigger, downstream of tasks that succeed and/or fail
    # When the flow runs
    probe, ran = run_probe(trigger, upstream)
    # Then the task runs (Success, with its result) or ends TriggerFailed without running
    assert probe.state is expected
    if expected is State.SUCCESS:
        assert probe.result == "probe ran"
        assert ran == ["probe"]
    else:
        assert ran == []
        assert probe.result is None
        assert probe.attempts == 0


def test_trigger_failed_message_names_trigger_and_upstream_states() -> None:
    # Given a default (all_successful) task downstream of a success and a failure
    # When the flow runs
    probe, _ = run_probe(T.all_successful, ["ok", "fail"])
    # Then the TriggerFailed message says which trigger and which upstream states
    assert probe.state is State.TRIGGER_FAILED
    assert probe.message == "trigger all_successful not met (succeeds=Success, fails=Failed)"


def test_counting_trigger_message_names_it() -> None:
    probe, _ = run_probe(T.some_successful(at_least=2), ["ok", "fail"])
    assert probe.state is State.TRIGGER_FAILED
    assert probe.message is not None
    assert probe.message.startswith("trigger some_successful not met")


def test_not_all_skipped_runs_when_some_upstream_ran() -> None:
    # Given a not_all_skipped task that does not skip on an upstream skip
    # When one upstream succeeds and one skips
    probe, ran = run_probe(T.not_all_skipped, ["ok", "skip"], skip_on_upstream_skip=False)
    # Then it runs
    assert probe.state is State.SUCCESS
    assert ran == ["probe"]


def test_not_all_skipped_is_skipped_when_every_upstream_skipped() -> None:
    # Given a not_all_skipped task that does not skip on an upstream skip
    # When every upstream skips
    probe, ran = run_probe(T.not_all_skipped, ["skip", "skip"], skip_on_upstream_skip=False)
    # Then it is Skipped (not TriggerFailed) and did not run
    assert probe.state is State.SKIPPED
    assert probe.message == "every upstream task skipped"
    assert ran == []


def test_not_all_skipped_trigger_fails_after_an_upstream_failure() -> None:
    probe, ran = run_probe(T.not_all_skipped, ["ok", "fail"], skip_on_upstream_skip=False)
    assert probe.state is State.TRIGGER_FAILED
    assert ran == []


def test_upstream_skip_wins_over_the_trigger() -> None:
    # Given an all_failed handler with the default skip_on_upstream_skip=True
    # When its upstream skipped
    probe, ran = run_probe(T.all_failed, ["skip"])
    # Then the skip wins over the trigger: the handler is Skipped, not TriggerFailed
    assert probe.state is State.SKIPPED
    assert ran == []


def test_trigger_failure_propagates_and_always_run_cleans_up() -> None:
    # Given extract -> transform -> load, and a cleanup that always runs after load
    calls: list[str] = []

    @task
    def extract() -> int:
        raise RuntimeError("source down")

    @task
    def transform(x: int) -> int:
        calls.append("transform")
        return x

    @task
    def load(x: int) -> int:
        calls.append("load")
        return x

    @task(trigger=T.always_run)
    def cleanup() -> str:
        calls.append("cleanup")
        return "cleaned"

    with Flow("etl") as flow:
        loaded = load(transform(extract()))
        cleanup(upstream_tasks=[loaded])

    # When extract fails
    state = flow.run()

    # Then transform and load are TriggerFailed without running, cleanup runs,
    # and the flow (whose only terminal task is cleanup) succeeds
    by_slug = state.by_slug()
    assert by_slug["extract"].state is State.FAILED
    assert by_slug["transform"].state is State.TRIGGER_FAILED
    assert by_slug["load"].state is State.TRIGGER_FAILED
    assert by_slug["cleanup"].state is State.SUCCESS
    assert by_slug["cleanup"].result == "cleaned"
    assert calls == ["cleanup"]
    assert state.state is State.SUCCESS
