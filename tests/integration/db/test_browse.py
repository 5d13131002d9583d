"""The browsing repository (``store.browse``) and the state-event feed
(``store.events``): keyset pages newest first with their filters, the states under
each root counted, whole trees, parents, a tree's log lines by time, and the events
after an id with their names and previous states."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.clock import utcnow
from orchestrator.db import Store
from orchestrator.db.models import FlowVersion
from orchestrator.logcapture import LogLine
from orchestrator.states import State
from tests.integration.db.common import new_run


def tree(store: Store, flow: FlowVersion, child_states: list[State]) -> tuple[str, list[str]]:
    """A root run with children in the given states, and one grandchild under the
    first child: (root id, [child ids..., grandchild id])."""
    root, _ = store.flow_runs.insert(new_run(flow, state=State.RUNNING))
    kids = []
    for state in child_states:
        kid, _ = store.flow_runs.insert(new_run(flow, state=state, parent_flow_run_id=root.id))
        kids.append(kid.id)
    grandchild, _ = store.flow_runs.insert(
        new_run(flow, state=State.FAILED, parent_flow_run_id=kids[0])
    )
    return root.id, [*kids, grandchild.id]


class TestBrowse:
    """``store.browse`` on SQLite and PostgreSQL."""

    def test_pages_go_newest_first_by_keyset_and_filter(
        self, store: Store, flow_version: FlowVersion, project: str
    ) -> None:
        roots = [tree(store, flow_version, [State.SUCCESS])[0] for _ in range(5)]
        seen: list[str] = []
        before = None
        while True:
            page = store.browse.page(2, roots=True, project=project, before=before)
            if not page:
                break
            seen += [r.run.id for r in page]
            last = page[-1].run
            before = (last.created, last.id)
        assert seen == roots[::-1]
        everything = store.browse.page(100, project=project)
        assert len(everything) == 5 * 3  # each root, its child and grandchild
        assert {r.project for r in everything} == {project}
        assert {r.flow_name for r in everything} == {"etl"}
        running = store.browse.page(100, roots=True, state=State.RUNNING, project=project)
        assert [r.run.id for r in running] == roots[::-1]
        assert store.browse.page(100, roots=True, flow="other", project=project) == []

    def test_descendant_states_count_the_whole_tree_under_each_root(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        one, _ = tree(store, flow_version, [State.SUCCESS, State.SUCCESS, State.RUNNING])
        two, _ = tree(store, flow_version, [State.CANCELLED])
        lone, _ = store.flow_runs.insert(new_run(flow_version))
        counts = store.browse.descendant_states([one, two, lone.id])
        assert counts == {
            one: {"Success": 2, "Running": 1, "Failed": 1},
            two: {"Cancelled": 1, "Failed": 1},
        }
        assert store.browse.descendant_states([]) == {}

    def test_a_tree_is_read_whole_root_first(self, store: Store, flow_version: FlowVersion) -> None:
        root, under = tree(store, flow_version, [State.SUCCESS, State.SUCCESS])
        store.task_runs.create(under[0], [("extract", "extract"), ("load", "load")])
        rows, task_runs = store.browse.tree(root)
        assert [r.run.id for r in rows] == [root, *under]
        assert {t.flow_run_id for t in task_runs} == {under[0]}
        assert store.browse.tree("no-such-run") == ([], [])
        # the parents of runs, and runs by id
        assert store.browse.parents([under[2], root, "nope"]) == {under[2]: under[0], root: None}
        assert set(store.browse.runs([root, under[1], "nope"])) == {root, under[1]}

    def test_logs_of_a_tree_come_by_time_naming_run_and_task(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        root, under = tree(store, flow_version, [State.SUCCESS])
        store.task_runs.create(root, [("extract", "extract")])
        store.task_runs.create(under[0], [("load", "load")])
        t0 = utcnow()
        roots_task = store.task_runs.of_flow_run(root)[0].id
        kids_task = store.task_runs.of_flow_run(under[0])[0].id
        store.logs.add(under[0], kids_task, 1, [LogLine(t0 + timedelta(seconds=1), "INFO", None, "child")])  # fmt: skip
        store.logs.add(root, roots_task, 1, [LogLine(t0, "INFO", None, "root 1"),
                                             LogLine(t0 + timedelta(seconds=2), "INFO", None, "root 2")])  # fmt: skip
        own = store.browse.logs(root)
        assert [ln.line.message for ln in own] == ["root 1", "root 2"]
        every = store.browse.logs(root, descendants=True)
        assert [(ln.line.message, ln.task_slug) for ln in every] == [
            ("root 1", "extract"),
            ("child", "load"),
            ("root 2", "extract"),
        ]
        first = every[0].line
        after = store.browse.logs(root, True, 10, (first.timestamp, first.id))
        assert [ln.line.message for ln in after] == ["child", "root 2"]


class TestEvents:
    """``store.events`` on SQLite and PostgreSQL."""

    def test_events_after_an_id_with_names_and_previous_states(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        start = store.events.last_id()
        root, under = tree(store, flow_version, [State.SUBMITTED])
        store.flow_runs.set_state(under[0], State.RUNNING)
        rows = store.events.since(start)
        mine = [r for r in rows if r.flow_run_id in {root, *under}]
        assert [r.id for r in mine] == sorted(r.id for r in mine)
        last = mine[-1]
        assert (last.flow_run_id, last.state, last.parent_flow_run_id) == (
            under[0],
            "Running",
            root,
        )
        assert last.flow_name == "etl" and last.task_run_id is None
        assert store.events.last_id() >= last.id
        assert store.events.states_before([(under[0], None)], last.id) == {
            (under[0], None): "Submitted"
        }
        # an id below the last one is read again when asked (a late commit)
        again = store.events.since(last.id, [mine[0].id])
        assert [r.id for r in again] == [mine[0].id]
        # and a tree's events alone
        theirs = store.events.since(start, tree_of=under[0])
        assert {r.flow_run_id for r in theirs} == {under[0], under[-1]}
