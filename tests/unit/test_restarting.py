"""What a restart resets (pure): failed task runs and everything after them; kept
successes; a mapped task's failed elements only; children restarted in place; the
refusals, one line each."""

from __future__ import annotations

from orchestrator.restarting import TaskRunView, plan_restart, refusal
from orchestrator.states import State

S, F, TF, SK = State.SUCCESS, State.FAILED, State.TRIGGER_FAILED, State.SKIPPED


def view(slug: str, state: State, i: int = -1, child: str | None = None,
         child_state: State | None = None) -> TaskRunView:  # fmt: skip
    return TaskRunView(f"{slug}[{i}]", slug, i, state, child, child_state)


def test_seed_flow_of_flows_resets_failed_child_and_downstream() -> None:
    # A -> (B, C) -> D, C's child failed, D never ran
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    runs = [
        view("a", S, child="ka", child_state=S),
        view("b", S, child="kb", child_state=S),
        view("c", F, child="kc", child_state=F),
        view("d", TF),
    ]
    plan = plan_restart("abcd", edges, runs)
    assert plan.reset == ("c[-1]", "d[-1]")
    assert plan.keep_child == ("c[-1]",)
    assert plan.children == ("kc",)


def test_skipped_and_successful_are_kept_downstream_of_nothing_failed() -> None:
    plan = plan_restart("xy", [("x", "y")], [view("x", SK), view("y", F)])
    assert plan.reset == ("y[-1]",)
    assert plan.children == ()


def test_mapped_task_resets_only_its_failed_elements() -> None:
    runs = [
        view("m", F),
        view("m", S, 0, "k0", S),
        view("m", F, 1, "k1", F),
        view("m", S, 2, "k2", S),
        view("after", TF),
    ]
    plan = plan_restart(["m", "after"], [("m", "after")], runs)
    assert plan.reset == ("after[-1]", "m[-1]", "m[1]")
    assert plan.children == ("k1",)


def test_mapped_task_downstream_of_a_failure_is_reset_whole() -> None:
    runs = [view("up", F), view("m", S), view("m", S, 0), view("m", S, 1)]
    plan = plan_restart(["up", "m"], [("up", "m")], runs)
    assert plan.reset == ("m[-1]", "m[0]", "m[1]", "up[-1]")


def test_a_succeeded_child_of_a_reset_task_is_kept_not_restarted() -> None:
    runs = [view("up", F), view("start", S, child="k", child_state=S)]
    plan = plan_restart(["up", "start"], [("up", "start")], runs)
    assert plan.keep_child == ("start[-1]",)
    assert plan.children == ()


def test_refusals_are_one_line_naming_the_reason() -> None:
    assert refusal("r", State.FAILED) is None
    assert refusal("r", State.CANCELLED) is None
    assert "still Running" in (refusal("r", State.RUNNING) or "")
    assert "ended Success" in (refusal("r", State.SUCCESS) or "")
    assert "ended Skipped" in (refusal("r", State.SKIPPED) or "")
    archived = refusal("r", State.FAILED, archived_flow="flow 'x' version 1") or ""
    assert "archived" in archived and "version 1" in archived
    waited = refusal("r", State.FAILED, waiting_parent="p") or ""
    assert "restart the parent instead" in waited and "p" in waited
    for why in (archived, waited):
        assert "\n" not in why
