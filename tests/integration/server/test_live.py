"""Live views of a running Flow-of-Flows: the server-sent events of its tree, and its
page in headless Chromium changing state in place (no reload) while the seed's
A -> (B, C) -> D runs on the workers; the list page and the escaping of user
strings. Screenshots go to the test artifacts folder."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from orchestrator.states import State
from tests.flows import children, served
from tests.integration.server.conftest import EventStream, Served, screenshot

FINAL = {"Success", "Failed", "Cancelled", "Skipped", "TimedOut", "TriggerFailed"}


@contextlib.contextmanager
def gated(served_: Served) -> Iterator[tuple[str, str]]:
    """A parent-flow run held Queued behind a limit of 0 on a label of its own, until
    the block's ``release()``; yields (run id, label)."""
    label = f"gate-{uuid.uuid4().hex[:8]}"
    client = served_.fleet.client
    client.set_concurrency_limit(label, 0)
    try:
        run_id = client.create_flow_run("parent-flow", "examples", labels=[label])
        deadline = time.monotonic() + 60
        while client.get_flow_run(run_id, task_runs=False).state is not State.QUEUED:
            assert time.monotonic() < deadline, f"run {run_id} never waited for its slot"
            time.sleep(0.05)
        yield run_id, label
    finally:
        client.delete_concurrency_limit(label)


def release(served_: Served, label: str) -> None:
    """Let a gated run start."""
    served_.fleet.client.delete_concurrency_limit(label)


def test_events_stream_the_state_changes_of_the_whole_tree(server: Served) -> None:
    with gated(server) as (run_id, label):
        # Given a stream of the events of a run held Queued
        stream = EventStream(server, f"?run={run_id}")
        try:
            assert stream.connected.wait(30), "the event stream did not open"
            # When the run is let go and the seed's Flow-of-Flows runs
            release(server, label)
            done = stream.wait_for(lambda e: e["flow_run_id"] == run_id and e["task_run_id"] is None
                                   and e["new_state"] in FINAL)  # fmt: skip
            # Then the parent's own changes came with their old states
            assert done["new_state"] == "Success" and done["old_state"] == "Running"
            running = stream.wait_for(lambda e: e["flow_run_id"] == run_id and e["new_state"] == "Running"
                                      and e["task_run_id"] is None)  # fmt: skip
            assert running["old_state"] in ("Queued", "Submitted")
            # and every child's changes came too, naming the parent, the flow and the task
            info = server.fleet.client.get_flow_run(run_id)
            assert len(info.children) == 4
            for child_id in info.children:
                ended = stream.wait_for(lambda e, c=child_id: e["flow_run_id"] == c and e["task_run_id"] is None
                                        and e["new_state"] == "Success")  # fmt: skip
                assert ended["parent_flow_run_id"] == run_id
                assert ended["flow_name"] in {"A", "B", "C", "D"}
                task = stream.wait_for(lambda e, c=child_id: e["flow_run_id"] == c and e["task"] == "step"
                                       and e["new_state"] == "Success")  # fmt: skip
                assert task["task_run_id"] and task["old_state"] == "Running"
            starter = stream.wait_for(lambda e: e["flow_run_id"] == run_id and e["task"] == "flow_d"
                                      and e["new_state"] == "Success")  # fmt: skip
            assert starter["parent_flow_run_id"] is None
            # and nothing of other runs
            tree = {run_id, *info.children}
            assert {e["flow_run_id"] for e in stream.seen} <= tree
            ids = [int(e["id"]) for e in stream.seen]
            assert len(ids) == len(set(ids))
        finally:
            stream.close()


def test_event_stream_replays_what_came_after_a_given_event(server: Served) -> None:
    # Given a finished run of the seed's Flow-of-Flows
    client = server.fleet.client
    run_id = client.create_flow_run("parent-flow", "examples")
    assert client.wait_for_flow_run(run_id, timeout=120).state is State.SUCCESS
    # When a stream of its tree asks for everything after event 0 (a reconnecting
    # browser sends Last-Event-ID)
    stream = EventStream(server, f"?run={run_id}", headers={"Last-Event-ID": "0"})
    try:
        # Then the recorded changes arrive, the parent's Success among them
        done = stream.wait_for(lambda e: e["flow_run_id"] == run_id and e["task_run_id"] is None
                               and e["new_state"] == "Success", timeout=30)  # fmt: skip
        assert done["old_state"] == "Running"
    finally:
        stream.close()


def _text(driver: Any, selector: str) -> str | None:
    """The text of the first element matching ``selector`` (None: none), read in one
    script call, so a fragment swapped in meanwhile cannot leave a stale element."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;",
        selector,
    )


def _state_of(driver: Any, flow: str) -> str | None:
    return _text(driver, f'#run-tree li.run[data-flow="{flow}"] > .head > .state')


def _starters(driver: Any) -> dict[str, list[str]]:
    """Each StartFlowRun node's kind and the flows of the runs under it, read at once."""
    found: dict[str, list[str]] = driver.execute_script(
        """const out = {};
        for (const t of document.querySelectorAll('#run-tree li.task.starts-flow')) {
          const kind = t.querySelector(':scope > .head > .kind').textContent.trim();
          const runs = [...t.querySelectorAll(':scope > ul > li.run')].map(r => r.dataset.flow);
          out[t.dataset.slug] = [kind, ...runs];
        }
        return out;"""
    )
    return found


def test_run_page_shows_a_b_c_d_turn_success_without_a_reload(server: Served, browser: Any) -> None:
    driver = browser
    with gated(server) as (run_id, label):
        # Given the page of a seed Flow-of-Flows run held Queued, open in Chromium
        driver.get(f"{server.url}/runs/{run_id}")
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "live").text == "live")
        assert _text(driver, "#root-state") == "Queued"
        assert all(_state_of(driver, n) is None for n in "ABCD")
        driver.execute_script("window.__sameDocument = 'yes';")
        screenshot(driver, "run-page-queued")
        # When the run is let go and runs on the workers
        release(server, label)
        # Then A, B, C and D appear and turn Success, and the parent too, in place
        WebDriverWait(driver, 120, poll_frequency=0.2).until(
            lambda d: (
                [_state_of(d, n) for n in "ABCD"] == ["Success"] * 4
                and _text(d, "#root-state") == "Success"
            )
        )
        assert driver.execute_script("return window.__sameDocument;") == "yes", "the page reloaded"
        # the StartFlowRun nodes hold their child runs, and the timeline has a bar each
        expected = {f"flow_{n.lower()}": ["StartFlowRun", n] for n in "ABCD"}
        WebDriverWait(driver, 30).until(lambda d: _starters(d) == expected)
        bars = "return document.querySelectorAll('table.timeline svg rect.state-success').length"
        # parent, its 4 tasks, 4 children, their tasks (the last swap may still land)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(bars) >= 1 + 4 + 4 + 4)
        path = screenshot(driver, "run-page-tree")
        assert path.stat().st_size > 10_000


def test_list_page_shows_roots_with_their_children_rolled_up(server: Served, browser: Any) -> None:
    # Given a finished seed run
    client = server.fleet.client
    run_id = client.create_flow_run("parent-flow", "examples")
    assert client.wait_for_flow_run(run_id, timeout=120).state is State.SUCCESS
    # When the list page is opened, filtered to the seed's parent
    driver = browser
    driver.get(f"{server.url}/?flow=parent-flow&project=examples")
    row = f'tr[data-node="{run_id}"]'
    # Then the run's row shows its state and its four children's, rolled up
    assert _text(driver, f"{row} .state") == "Success"
    assert _text(driver, f"{row} .rollup") == "4 Success"
    info = client.get_flow_run(run_id)
    assert not driver.find_elements(By.CSS_SELECTOR, f'tr[data-node="{info.children[0]}"]')
    # and unfiltered, a parent whose child failed shows it in its row
    failing = client.create_flow_run("parent-mirror", children.PROJECT)
    assert client.wait_for_flow_run(failing, timeout=90).state is State.FAILED
    driver.get(f"{server.url}/")
    assert _text(driver, f'tr[data-node="{failing}"] .rollup .badge') == "1 Failed"
    screenshot(driver, "runs-list")
    # And each catalog page opens
    for path, heading in (("/flows", "Flows"), ("/schedules", "Schedules"), ("/limits", "Concurrency limits")):  # fmt: skip
        driver.get(server.url + path)
        assert driver.find_element(By.TAG_NAME, "h1").text.startswith(heading)
    driver.get(server.url + "/schedules")
    assert "parent-flow" in driver.find_element(By.CSS_SELECTOR, "table.schedules").text
    screenshot(driver, "schedules")


SCRIPT = '<script>alert("pwned")</script><img src=x onerror=alert(2)>'


def test_user_strings_are_shown_as_text(server: Served, browser: Any) -> None:
    # Given a run whose parameter and log lines hold a script
    client = server.fleet.client
    run_id = client.create_flow_run("served-parent", served.PROJECT, parameters={"word": SCRIPT})
    assert client.wait_for_flow_run(run_id, timeout=90).state is State.SUCCESS
    # When its page is opened
    driver = browser
    driver.get(f"{server.url}/runs/{run_id}")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "live").text == "live")
    # Then the script is shown as text, in the parameters and in the log lines
    params = driver.find_element(By.CSS_SELECTOR, "pre.parameters").text
    assert SCRIPT.replace('"', '\\"') in params
    messages = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "pre.log-message")]
    assert f"parent got {SCRIPT}" in messages and f"child says {SCRIPT}" in messages
    # and nothing ran: no alert, no element from the string, only the page's own script
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    scripts = driver.execute_script("return [...document.scripts].map(s => s.src)")
    assert scripts == [f"{server.url}/static/app.js"]
    assert driver.find_elements(By.CSS_SELECTOR, "img") == []
    raw = server.http.get(f"/runs/{run_id}").text
    assert "<script>alert" not in raw and "&lt;script&gt;alert" in raw
    screenshot(driver, "escaped")
