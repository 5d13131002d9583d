"""The REST API of ``orchestrator server``, against a real server process over the
session's real workers and Redis, on SQLite and PostgreSQL: the seed's Flow-of-Flows
listed as one root with its children rolled up, its tree and logs, creating runs
with the Client's checks, cancelling, pages, schedules, limits and the docs."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from orchestrator.states import State
from tests.flows import children, served
from tests.integration.server.conftest import Served


def wait_state(served_: Served, run_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
    """Poll ``GET /api/flow-runs/{id}`` until the run is in ``state``."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = served_.http.get(f"/api/flow-runs/{run_id}").json()
        if run["state"] == state:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {run.get('state')}, not {state}\n{served_.fleet.logs()}")


@pytest.fixture(scope="module")
def seed_run(server: Served) -> dict[str, Any]:
    """The seed's Flow-of-Flows, run to the end on the workers, as the API shows it."""
    run_id = server.fleet.client.create_flow_run("parent-flow", "examples")
    info = server.fleet.client.wait_for_flow_run(run_id, timeout=120)
    assert info.state is State.SUCCESS, (info.message, server.fleet.logs())
    detail: dict[str, Any] = server.http.get(f"/api/flow-runs/{run_id}").json()
    return detail


def all_pages(served_: Served, query: str) -> list[dict[str, Any]]:
    """Every run of a listing, following ``next_cursor``."""
    runs: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = f"/api/flow-runs?{query}" + (f"&cursor={cursor}" if cursor else "")
        page = served_.http.get(url).json()
        runs += page["runs"]
        cursor = page["next_cursor"]
        if not cursor:
            return runs


def test_root_list_shows_the_seed_parent_and_none_of_its_children(
    server: Served, seed_run: dict[str, Any]
) -> None:
    # Given the seed's Flow-of-Flows, finished, with its four children A, B, C, D
    children = seed_run["children"]
    assert len(children) == 4
    # When the roots of project "examples" are listed
    roots = all_pages(server, "root=true&project=examples&limit=100")
    # Then the parent is there, with its children rolled up, and none of its children
    listed = {r["id"]: r for r in roots}
    assert seed_run["id"] in listed
    assert not set(children) & set(listed)
    parent = listed[seed_run["id"]]
    assert parent["flow_name"] == "parent-flow" and parent["state"] == "Success"
    assert parent["descendants"] == {"total": 4, "failed": 0, "states": {"Success": 4}}
    # And without root=true the children are listed too, each naming its parent
    everything = {r["id"]: r for r in all_pages(server, "project=examples&limit=500")}
    assert set(children) <= set(everything)
    assert {everything[c]["parent_flow_run_id"] for c in children} == {seed_run["id"]}


def test_a_parent_whose_child_failed_shows_it_in_the_root_list(server: Served) -> None:
    # Given a parent whose first child fails (and whose second runs after it anyway)
    client = server.fleet.client
    run_id = client.create_flow_run("parent-mirror", children.PROJECT)
    info = client.wait_for_flow_run(run_id, timeout=90)
    assert info.state is State.FAILED, info.message
    # When the roots of its project are listed
    roots = {r["id"]: r for r in all_pages(server, f"root=true&project={children.PROJECT}")}
    # Then its row says one run under it failed, at a glance
    assert roots[run_id]["state"] == "Failed"
    rollup = roots[run_id]["descendants"]
    assert rollup["failed"] == 1 and rollup["states"]["Failed"] == 1
    assert next(iter(rollup["states"])) == "Failed"  # trouble first
    failed = server.http.get(
        f"/api/flow-runs?root=true&state=Failed&project={children.PROJECT}"
    ).json()
    assert run_id in [r["id"] for r in failed["runs"]]


def test_tree_names_a_b_c_d_with_their_states_and_times(
    server: Served, seed_run: dict[str, Any]
) -> None:
    # When the seed run's tree is read
    tree = server.http.get(f"/api/flow-runs/{seed_run['id']}/tree").json()
    # Then the root is the parent, and its children are A, B, C, D, all Success
    assert tree["id"] == seed_run["id"] and tree["flow_name"] == "parent-flow"
    kids = {c["flow_name"]: c for c in tree["children"]}
    assert sorted(kids) == ["A", "B", "C", "D"]
    for name, node in kids.items():
        assert node["state"] == "Success", name
        assert node["parent_flow_run_id"] == seed_run["id"]
        start, end = (
            datetime.fromisoformat(node["start_time"]),
            datetime.fromisoformat(node["end_time"]),
        )
        assert node["duration"] == pytest.approx((end - start).total_seconds(), abs=1e-3)
        # each child's own task run is in its node, and its StartFlowRun names it
        assert [t["slug"] for t in node["task_runs"]] == ["step"]
        assert node["task_runs"][0]["state"] == "Success"
    starters = {t["slug"]: t for t in tree["task_runs"]}
    assert {starters[f"flow_{n.lower()}"]["child_flow_run_id"] for n in "ABCD"} == {
        kids[n]["id"] for n in "ABCD"
    }
    # And the children ran A -> (B, C) -> D
    a, b, c, d = (kids[n] for n in "ABCD")
    assert a["end_time"] <= min(b["start_time"], c["start_time"])
    assert max(b["end_time"], c["end_time"]) <= d["start_time"]


def test_run_detail_has_its_task_runs_and_child_ids(
    server: Served, seed_run: dict[str, Any]
) -> None:
    # The run as GET /api/flow-runs/{id} shows it: task runs and the children's ids
    assert {t["slug"] for t in seed_run["task_runs"]} == {"flow_a", "flow_b", "flow_c", "flow_d"}
    assert {t["state"] for t in seed_run["task_runs"]} == {"Success"}
    child = server.http.get(f"/api/flow-runs/{seed_run['children'][0]}").json()
    assert child["parent_flow_run_id"] == seed_run["id"] and child["children"] == []
    # and an unknown id is a 404 naming it
    missing = server.http.get("/api/flow-runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.json()["detail"]


def test_logs_with_descendants_name_their_run_and_task_in_time_order(server: Served) -> None:
    # Given a parent that logs, and a child that logs and prints, run to the end
    client = server.fleet.client
    run_id = client.create_flow_run("served-parent", served.PROJECT, parameters={"word": "ahoy"})
    info = client.wait_for_flow_run(run_id, timeout=90)
    assert info.state is State.SUCCESS, (info.message, server.fleet.logs())
    (child_id,) = info.children
    # When the parent's logs are read alone, and with its descendants
    own = server.http.get(f"/api/flow-runs/{run_id}/logs").json()["lines"]
    every = server.http.get(f"/api/flow-runs/{run_id}/logs?descendants=true").json()["lines"]
    # Then alone they are the parent's line; with descendants the child's lines follow,
    # each naming its run and task, ordered by time
    assert [(ln["flow_name"], ln["task"], ln["message"]) for ln in own] == [
        ("served-parent", "say", "parent got ahoy")
    ]
    named = [(ln["flow_run_id"], ln["flow_name"], ln["task"], ln["message"]) for ln in every]
    assert named == [
        (run_id, "served-parent", "say", "parent got ahoy"),
        (child_id, "served-child", "shout", "child says ahoy"),
        (child_id, "served-child", "shout", "child printed ahoy"),
    ]
    stamps = [ln["timestamp"] for ln in every]
    assert stamps == sorted(stamps)
    # And a page of one line hands a cursor to the next
    first = server.http.get(f"/api/flow-runs/{run_id}/logs?descendants=true&limit=1").json()
    after = server.http.get(
        f"/api/flow-runs/{run_id}/logs?descendants=true&limit=5&cursor={first['next_cursor']}"
    ).json()
    assert [ln["id"] for ln in first["lines"] + after["lines"]] == [ln["id"] for ln in every]
    assert after["next_cursor"] is None


def _count_runs(served_: Served, flow: str, project: str) -> int:
    return len(all_pages(served_, f"flow={flow}&project={project}&limit=500"))


def test_bad_input_to_post_is_a_4xx_naming_it_and_creates_no_run(server: Served) -> None:
    before = _count_runs(server, "served-child", served.PROJECT)
    post = server.http.post
    # an unknown parameter: 422 naming it
    bad = post("/api/flow-runs", json={"flow_name": "served-child", "project_name": served.PROJECT,
                                       "parameters": {"wurd": "x"}})  # fmt: skip
    assert bad.status_code == 422, bad.text
    assert "wurd" in bad.json()["detail"] and "served-child" in bad.json()["detail"]
    # a missing required parameter (the seed's "example" needs param-key): 422 naming it
    missing = post("/api/flow-runs", json={"flow_name": "example", "project_name": "examples"})
    assert missing.status_code == 422 and "param-key" in missing.json()["detail"], missing.text
    # an unknown flow: 404 naming it
    unknown = post("/api/flow-runs", json={"flow_name": "nope", "project_name": served.PROJECT})
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"], unknown.text
    # a misspelt field of the request: 422 naming it
    typo = post("/api/flow-runs", json={"flow": "served-child", "project_name": served.PROJECT})
    assert typo.status_code == 422 and "flow" in typo.json()["detail"], typo.text
    # and none of them created a run
    assert _count_runs(server, "served-child", served.PROJECT) == before


def test_post_creates_a_run_that_the_workers_finish_once_per_key(server: Served) -> None:
    # When a run is created through the API, twice with one idempotency key
    key = f"api-{uuid.uuid4().hex}"
    body = {"flow_name": "served-child", "project_name": served.PROJECT,
            "parameters": {"word": "posted"}, "labels": ["api"], "idempotency_key": key,
            "run_name": "from the API"}  # fmt: skip
    first = server.http.post("/api/flow-runs", json=body)
    second = server.http.post("/api/flow-runs", json=body)
    # Then both answers name one run, which the workers finish
    assert first.status_code == 201, first.text
    run = first.json()
    assert second.json()["id"] == run["id"]
    assert run["parameters"] == {"word": "posted"} and "api" in run["labels"]
    done = wait_state(server, run["id"], "Success")
    assert done["name"] == "from the API"
    results = {t["slug"]: t["result"] for t in done["task_runs"]}
    assert results == {"word": "posted", "shout": "POSTED"}


def test_listings_are_keyset_pages_newest_first_with_filters(server: Served, project: str) -> None:
    # Given five runs of a flow in a project of their own
    client = server.fleet.client
    client.register(served.child, project)
    ids = [client.create_flow_run("served-child", project, parameters={"word": str(i)}) for i in range(5)]  # fmt: skip
    for run_id in ids:
        client.wait_for_flow_run(run_id, timeout=60)
    # When they are listed two at a time
    pages = []
    cursor = None
    while True:
        url = f"/api/flow-runs?project={project}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = server.http.get(url).json()
        pages.append([r["id"] for r in page["runs"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    # Then three pages hold every run once, newest first
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]

    # And the filters narrow them
    def listed(query: str) -> list[str]:
        return [r["id"] for r in server.http.get(f"/api/flow-runs?project={project}&{query}").json()["runs"]]  # fmt: skip

    assert listed("state=Success&root=true") == ids[::-1]
    assert listed("state=failed") == []
    assert listed("flow=served-parent") == []
    bad = server.http.get("/api/flow-runs?cursor=not-a-cursor")
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]


def test_cancel_through_the_api_cancels_a_running_flow(server: Served) -> None:
    # Given a run that sleeps, running on a worker
    run_id = server.fleet.client.create_flow_run("served-slow", served.PROJECT, parameters={"seconds": 4})  # fmt: skip
    wait_state(server, run_id, "Running")
    # When it is cancelled
    answer = server.http.post(f"/api/flow-runs/{run_id}/cancel")
    # Then it is Cancelled, and cancelling again changes nothing
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": run_id, "cancelled": True, "state": "Cancelled"}
    assert server.http.get(f"/api/flow-runs/{run_id}").json()["state"] == "Cancelled"
    again = server.http.post(f"/api/flow-runs/{run_id}/cancel").json()
    assert again == {"id": run_id, "cancelled": False, "state": "Cancelled"}


def test_limits_name_the_runs_holding_and_waiting_for_slots(server: Served) -> None:
    # Given a limit of 1 on a label, a run holding its slot and a second one waiting
    label = f"srv-{uuid.uuid4().hex[:8]}"
    client = server.fleet.client
    client.set_concurrency_limit(label, 1)
    try:
        holder = client.create_flow_run("served-slow", served.PROJECT, parameters={"seconds": 3}, labels=[label])  # fmt: skip
        wait_state(server, holder, "Running")
        waiter = client.create_flow_run("served-slow", served.PROJECT, parameters={"seconds": 0}, labels=[label])  # fmt: skip
        wait_state(server, waiter, "Queued")
        # When the limits are read
        limits = {x["label"]: x for x in server.http.get("/api/limits").json()}
        # Then the label shows its limit, the holder and the waiting run
        mine = limits[label]
        assert (mine["limit"], mine["used"], mine["free"], mine["waiting"]) == (1, 1, 0, 1)
        assert mine["holders"] == [{"id": holder, "flow_name": "served-slow", "state": "Running"}]
        assert mine["waiting_runs"] == [
            {"id": waiter, "flow_name": "served-slow", "state": "Queued"}
        ]
        # and once the holder ends, the waiting run gets the slot
        wait_state(server, waiter, "Success", timeout=60)
    finally:
        client.delete_concurrency_limit(label)


def test_schedules_show_next_fire_times_in_the_zone_and_utc(server: Served) -> None:
    # Given the seed's parent-flow, scheduled weekdays at 09:30 New York time
    store = server.fleet.store
    # When the schedules are read
    rows = server.http.get("/api/schedules?project=examples&count=10").json()
    (parent,) = [r for r in rows if r["flow_name"] == "parent-flow"]
    # Then each next fire time is 09:30 on a weekday in the zone, the same instant in UTC
    assert parent["schedule"].startswith("cron 30 9 * * 1-5") and not parent["paused"]
    assert len(parent["next"]) == 10
    for t in parent["next"]:
        local, utc = datetime.fromisoformat(t["local"]), datetime.fromisoformat(t["utc"])
        assert (local.hour, local.minute, local.weekday() < 5) == (9, 30, True), t
        assert local == utc and utc.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert utc.hour in (13, 14)  # EDT or EST
    # And a paused schedule says so
    store.schedules.pause("examples", "parent-flow", note="checking the API")
    try:
        rows = server.http.get("/api/schedules?project=examples").json()
        assert [r["paused"] for r in rows if r["flow_name"] == "parent-flow"] == [True]
    finally:
        store.schedules.resume("examples", "parent-flow")


def test_flows_and_openapi_docs(server: Served) -> None:
    flows = {(f["project"], f["name"]): f for f in server.http.get("/api/flows").json()}
    example = flows[("examples", "example")]
    assert example["parameters"] == [{"name": "param-key", "required": True, "default": None}]
    assert flows[("examples", "parent-flow")]["schedule"].startswith("cron 30 9 * * 1-5")
    spec = server.http.get("/openapi.json").json()
    for path in ("/api/flows", "/api/flow-runs", "/api/flow-runs/{flow_run_id}/tree",
                 "/api/flow-runs/{flow_run_id}/logs", "/api/flow-runs/{flow_run_id}/cancel",
                 "/api/schedules", "/api/limits", "/api/events"):  # fmt: skip
        assert path in spec["paths"], path
    docs = server.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
