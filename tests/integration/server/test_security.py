"""Who may use the server: another address than loopback without a token is refused
at start; with tokens, API calls need a bearer token, the read-only token may look
but not create or cancel, pages need a login, forms a CSRF token; without tokens,
cross-site writes and foreign host names are refused; no token or password appears
in any response."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from orchestrator.states import State
from tests.conftest import Fleet
from tests.flows import served
from tests.integration.server.conftest import EventStream, Served, register_flows, start_server

ADMIN = f"admin-{uuid.uuid4().hex}"
READER = f"reader-{uuid.uuid4().hex}"
DB_PASSWORD = f"db-pw-{uuid.uuid4().hex[:8]}"


class Recorder:
    """Every response body and header the tests saw, to look for secrets in."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.seen.append(response.text)
        self.seen.extend(f"{k}: {v}" for k, v in response.headers.items())


RECORDED = Recorder()


def _with_password(url: str) -> str:
    """A PostgreSQL URL with a password (trust auth ignores it); SQLite as it is."""
    return re.sub(r"://([^:/@]+)@", rf"://\1:{DB_PASSWORD}@", url, count=1)


@pytest.fixture(scope="module")
def secured(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with a token and a read-only token (and, on PostgreSQL, a database URL
    holding a password)."""
    register_flows(fleet)
    log = tmp_path_factory.mktemp("secured") / "server.log"
    database = _with_password(fleet.env["ORCHESTRATOR_DATABASE_URL"])
    s = start_server(
        fleet,
        log,
        ORCHESTRATOR_SERVER_TOKEN=ADMIN,
        ORCHESTRATOR_SERVER_READ_TOKEN=READER,
        ORCHESTRATOR_DATABASE_URL=database,
    )
    s.http.event_hooks["response"] = [RECORDED]
    try:
        yield s
    finally:
        s.close()
        output = s.process.output()
        assert ADMIN not in output and READER not in output and DB_PASSWORD not in output


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def server_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "server", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_another_address_without_a_token_is_refused_at_start(fleet: Fleet) -> None:
    env = {k: v for k, v in fleet.env.items() if not k.startswith("ORCHESTRATOR_SERVER_")}
    # When the server is asked to listen on every address, without a token
    done = server_cli(env, "--host", "0.0.0.0", "--port", "0")
    # Then it exits non-zero at once with one line naming the variable
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "ORCHESTRATOR_SERVER_TOKEN" in lines[0], done.stderr
    assert lines[0].startswith("error:") and "Traceback" not in done.stderr
    # and a read-only token alone is refused too
    alone = server_cli({**env, "ORCHESTRATOR_SERVER_READ_TOKEN": "x" * 20}, "--port", "0")
    assert alone.returncode != 0 and "ORCHESTRATOR_SERVER_TOKEN" in alone.stderr


def test_api_needs_a_bearer_token_and_the_read_token_only_reads(secured: Served) -> None:
    http = secured.http
    body = {
        "flow_name": "served-child",
        "project_name": served.PROJECT,
        "parameters": {"word": "tok"},
    }
    # without a token, or with a wrong one: 401, asking for a bearer token
    for headers in ({}, bearer("wrong"), {"Authorization": f"Basic {ADMIN}"}):
        answer = http.get("/api/flow-runs", headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
    assert http.post("/api/flow-runs", json=body).status_code == 401
    # the read-only token reads, but may not create or cancel
    assert http.get("/api/flow-runs?root=true", headers=bearer(READER)).status_code == 200
    before = len(http.get(f"/api/flow-runs?project={served.PROJECT}&flow=served-child&limit=500",
                          headers=bearer(READER)).json()["runs"])  # fmt: skip
    refused = http.post("/api/flow-runs", json=body, headers=bearer(READER))
    assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
    after = http.get(f"/api/flow-runs?project={served.PROJECT}&flow=served-child&limit=500",
                     headers=bearer(READER)).json()["runs"]  # fmt: skip
    assert len(after) == before
    # the full token creates, and the read-only one may not cancel what it made
    made = http.post("/api/flow-runs", json=body, headers=bearer(ADMIN))
    assert made.status_code == 201, made.text
    run_id = made.json()["id"]
    assert http.post(f"/api/flow-runs/{run_id}/cancel", headers=bearer(READER)).status_code == 403
    info = secured.fleet.client.wait_for_flow_run(run_id, timeout=60)
    assert info.state is State.SUCCESS
    # and the read-only token may watch the events
    stream = EventStream(secured, "", headers=bearer(READER))
    try:
        assert stream.connected.wait(30)
    finally:
        stream.close()
    assert httpx.get(f"{secured.url}/api/events", timeout=10).status_code == 401


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


CLIENTS: list[httpx.Client] = []


def _browser(secured: Served) -> httpx.Client:
    """An HTTP client keeping cookies like a browser (closed after each test)."""
    client = httpx.Client(base_url=secured.url, timeout=30, event_hooks={"response": [RECORDED]})
    CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while CLIENTS:
        CLIENTS.pop().close()


def _login(secured: Served, token: str) -> httpx.Client:
    browser = _browser(secured)
    form = browser.get("/login")
    answer = browser.post("/login", data={"token": token, "csrf": _csrf(form.text), "next": "/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
    return browser


def test_pages_need_a_login_and_forms_a_csrf_token(secured: Served) -> None:
    client = secured.fleet.client
    run_id = client.create_flow_run("served-slow", served.PROJECT, parameters={"seconds": 20})
    anonymous = _browser(secured)
    # without a login, a page sends to the login form, which keeps where it was going
    answer = anonymous.get(f"/runs/{run_id}")
    assert answer.status_code == 303 and answer.headers["location"] == f"/login?next=/runs/{run_id}"
    # a wrong token does not sign in
    form = anonymous.get("/login")
    wrong = anonymous.post("/login", data={"token": "nope", "csrf": _csrf(form.text), "next": "/"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert "orchestrator_session" not in wrong.headers.get("set-cookie", "")
    # a login form without its CSRF token is refused
    assert anonymous.post("/login", data={"token": ADMIN, "next": "/"}).status_code == 403
    # signed in with the read-only token: the run shows, without a cancel button
    reader = _login(secured, READER)
    page = reader.get(f"/runs/{run_id}")
    assert page.status_code == 200 and "served-slow" in page.text
    assert 'action="/runs/' not in page.text
    assert reader.post(f"/runs/{run_id}/cancel", data={"csrf": _csrf(page.text)}).status_code == 403
    # signed in with the full token: a cancel button, which needs the form's CSRF token
    admin = _login(secured, ADMIN)
    page = admin.get(f"/runs/{run_id}")
    assert f'action="/runs/{run_id}/cancel"' in page.text
    assert admin.post(f"/runs/{run_id}/cancel", data={"csrf": "forged" * 8}).status_code == 403
    assert admin.post(f"/runs/{run_id}/cancel", data={}).status_code == 403
    assert client.get_flow_run(run_id, task_runs=False).state is not State.CANCELLED
    done = admin.post(f"/runs/{run_id}/cancel", data={"csrf": _csrf(page.text)})
    assert done.status_code == 303 and done.headers["location"] == f"/runs/{run_id}"
    assert client.get_flow_run(run_id, task_runs=False).state is State.CANCELLED
    # a signed-in browser's cookie alone may not write through the API
    assert admin.post(f"/api/flow-runs/{run_id}/cancel").status_code == 403
    # and logging out forgets the session
    admin.post("/logout", data={"csrf": _csrf(page.text)})
    assert admin.get("/").status_code == 303


def test_no_token_or_password_appears_in_any_response(secured: Served) -> None:
    # Given every page and API answer the tests above saw, and a few more
    admin = _login(secured, ADMIN)
    for path in ("/", "/flows", "/schedules", "/limits", "/docs", "/openapi.json", "/api/flows",
                 "/api/flow-runs", "/api/schedules", "/api/limits", "/runs/nope", "/login"):  # fmt: skip
        admin.get(path)
        secured.http.get(path, headers=bearer(READER))
    # Then none holds a token or the database's password
    everything = "\n".join(RECORDED.seen)
    assert len(RECORDED.seen) > 50
    for secret in (ADMIN, READER, DB_PASSWORD):
        assert secret not in everything


def test_login_in_chromium_then_the_run_page_is_live(secured: Served, browser: Any) -> None:
    client = secured.fleet.client
    run_id = client.create_flow_run("parent-flow", "examples")
    assert client.wait_for_flow_run(run_id, timeout=120).state is State.SUCCESS
    driver = browser
    driver.delete_all_cookies()
    # When the run's page is opened, the login form comes first
    driver.get(f"{secured.url}/runs/{run_id}")
    assert driver.current_url.startswith(f"{secured.url}/login")
    assert driver.find_element(By.NAME, "token").get_attribute("type") == "password"
    driver.find_element(By.NAME, "token").send_keys(READER)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    # Then the run's page opens, live (its event stream is allowed by the session)
    WebDriverWait(driver, 30).until(lambda d: d.current_url == f"{secured.url}/runs/{run_id}")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "live").text == "live")
    assert driver.find_element(By.ID, "root-state").text == "Success"
    assert "read-only" in driver.find_element(By.CSS_SELECTOR, "header .role").text
    assert READER not in driver.page_source


def test_without_tokens_cross_site_writes_and_foreign_hosts_are_refused(server: Served) -> None:
    body = {"flow_name": "served-child", "project_name": served.PROJECT}
    # a page of another site posting to the API (its Origin says so)
    evil = server.http.post("/api/flow-runs", json=body, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["detail"]
    fetched = server.http.post(
        "/api/flow-runs", json=body, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert fetched.status_code == 403
    # a form of another site: no CSRF token
    form = server.http.post("/runs/anything/cancel", data={"x": "1"})
    assert form.status_code == 403
    # a foreign name for this server (DNS rebinding onto 127.0.0.1)
    rebound = server.http.get("/api/flow-runs", headers={"Host": "evil.example"})
    assert rebound.status_code == 400
    # while the same requests of this site pass
    assert server.http.get("/api/flow-runs").status_code == 200
    page = server.http.get("/")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"


def test_the_server_banner_hides_the_database_password(secured: Served) -> None:
    banner = secured.process.output().splitlines()[0]
    assert banner.startswith(f"server on {secured.url} (token auth, read-only token)")
    assert DB_PASSWORD not in banner
    if "postgresql" in banner:
        assert ":***@" in banner
