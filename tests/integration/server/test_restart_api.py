"""``POST /api/flow-runs/{id}/restart`` against a real server process and workers:
a failed Flow-of-Flows restarted in place, and the refusals as 409s saying why."""

from __future__ import annotations

from tests.flows import restarts
from tests.integration.helpers import run_and_wait
from tests.integration.server.conftest import Served


def test_restart_through_the_api(server: Served) -> None:
    # Given a Flow-of-Flows whose C child failed on its first try
    fleet = server.fleet
    for flow in restarts.FLOWS:
        fleet.client.register(flow, restarts.PROJECT)
    failed = run_and_wait(fleet, "parent-flow", restarts.PROJECT, timeout=120)
    assert failed.state.value == "Failed"
    c_child = next(c for c in failed.children if fleet.client.get_flow_run(c).flow_name == "C")
    # When it is restarted through the API
    answer = server.http.post(f"/api/flow-runs/{failed.id}/restart")
    # Then the answer names its try and the child restarted with it, and it succeeds
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["attempt"], body["children"]) == (failed.id, 2, [c_child])
    done = fleet.client.wait_for_flow_run(failed.id, timeout=120)
    assert done.state.value == "Success", done.message
    assert len(done.children) == 4
    # and restarting it again is refused with a 409 saying why
    again = server.http.post(f"/api/flow-runs/{failed.id}/restart")
    assert again.status_code == 409
    assert "ended Success" in again.json()["detail"]
    missing = server.http.post("/api/flow-runs/no-such-run/restart")
    assert missing.status_code == 404
