"""Fixtures of the server tests: one ``orchestrator server`` process per database
(started on a free loopback port over the session's fleet of real workers), the
seed's Flow-of-Flows and the test flows registered, an HTTP client for it, and one
headless Chromium (Debian's ``chromium`` and ``chromium-driver``) for the page tests.
Screenshots go to ``ORCHESTRATOR_TEST_ARTIFACTS`` (default ``test-artifacts/``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.loader import flows_in
from orchestrator.processes import ServerProcess
from tests.conftest import ROOT, Fleet
from tests.flows import children, served

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("ORCHESTRATOR_TEST_ARTIFACTS") or ROOT / "test-artifacts")


class Served:
    """A running ``orchestrator server`` and the fleet it serves."""

    def __init__(self, fleet: Fleet, process: ServerProcess, env: dict[str, str]) -> None:
        self.fleet = fleet
        self.process = process
        self.env = env
        self.url = process.url
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def close(self) -> None:
        """Stop the server."""
        self.http.close()
        self.process.stop()


def start_server(fleet: Fleet, log_path: Path, **env: str) -> Served:
    """Start ``orchestrator server`` on a free loopback port for ``fleet``."""
    full = {**fleet.env, **env, "PYTHONUNBUFFERED": "1"}
    process = ServerProcess(full, port=0, log_path=log_path, extra=["--log-level", "warning"])
    try:
        process.wait_ready(timeout=60)
    except Exception as exc:
        process.stop()
        raise AssertionError(f"{exc}\n{process.output()}") from exc
    return Served(fleet, process, full)


def register_flows(fleet: Fleet) -> None:
    """The seed's flows (examples/, project "examples"), the server tests' flows and
    the StartFlowRun tests' (a parent whose child fails)."""
    for listing in ("seed_flows.py", "flow_of_flows.py"):
        for flow in flows_in(str(ROOT / "examples" / listing)):
            fleet.client.register(flow, "examples")
    for flow in served.FLOWS:
        fleet.client.register(flow, served.PROJECT)
    for flow in children.CHILDREN + children.PARENTS:
        fleet.client.register(flow, children.PROJECT)


@pytest.fixture(scope="session")
def server(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server without tokens (loopback only) per database, shared by the tests."""
    register_flows(fleet)
    log = tmp_path_factory.mktemp("server") / "server.log"
    s = start_server(fleet, log)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium driven by Selenium, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver")
    profile = tempfile.mkdtemp(prefix="orchestrator-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1100",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: object, name: str) -> Path:
    """Save the whole page (beyond the window's height) as ``ARTIFACTS/name.png``."""
    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = driver.execute_script(  # type: ignore[attr-defined]
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 6000), "scale": 1},
        },
    )
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


class EventStream:
    """``GET /api/events`` read in a thread: each ``state`` event's JSON, in order."""

    def __init__(
        self, served: Served, query: str = "", headers: dict[str, str] | None = None
    ) -> None:
        import queue
        import threading

        self.events: queue.Queue[dict[str, object]] = queue.Queue()
        self.seen: list[dict[str, object]] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=served.url, timeout=httpx.Timeout(30, read=20))
        self._headers = headers or {}
        self._query = query
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._read_events()
        except (httpx.HTTPError, OSError, ValueError):
            if not self._stop.is_set():
                raise

    def _read_events(self) -> None:
        import json

        with self._client.stream("GET", f"/api/events{self._query}", headers=self._headers) as r:
            self.status = r.status_code
            data: list[str] = []
            kind = ""
            for line in r.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data.append(line.split(":", 1)[1].strip())
                elif line == "" and data:
                    if kind == "state":
                        self.events.put(json.loads("\n".join(data)))
                    data, kind = [], ""

    def wait_for(self, predicate: object, timeout: float = 90) -> dict[str, object]:
        """The first event (seen before or arriving within ``timeout``) matching ``predicate``."""
        import queue
        import time

        for ev in self.seen:
            if predicate(ev):  # type: ignore[operator]
                return ev
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(ev)
            if predicate(ev):  # type: ignore[operator]
                return ev
        raise AssertionError(f"no such event within {timeout:g}s; seen: {self.seen}")

    def close(self) -> None:
        """Stop reading."""
        self._stop.set()
        self._client.close()
