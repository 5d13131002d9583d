"""The server's ASGI app: :func:`create_app` puts together the API routers (``/api``,
OpenAPI docs at ``/docs`` and ``/openapi.json``), the pages, the static files, the
live feed (started and stopped with the app), the error answers (a one-line
``detail`` in JSON for the API, an error page for the pages; never a traceback) and
the shield every response passes: security headers (a Content-Security-Policy
allowing this site's script only) and, without tokens, loopback clients and host
names only.

``orchestrator server`` serves it with uvicorn (``orchestrator.server.app:create_app``
is its factory). May import FastAPI, Starlette, the server's modules, the client,
the backends and the core."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from orchestrator.client import Client
from orchestrator.config import VERSION, ServerAuth, Settings
from orchestrator.errors import (
    BackendUnavailable,
    ConcurrencyLimitError,
    FlowNotFound,
    FlowRunNotFound,
    InvalidCursor,
    OrchestratorError,
    ParameterError,
    RestartRefused,
    ScheduleError,
    SerializationError,
    TaskRunNotFound,
)
from orchestrator.server.api import ROUTERS as API_ROUTERS
from orchestrator.server.auth import Guard, host_name, loopback_name
from orchestrator.server.deps import LoginRequired, Services
from orchestrator.server.feed import Feed
from orchestrator.server.web import ROUTERS as PAGE_ROUTERS
from orchestrator.server.web.render import make_templates, render

STATIC = Path(__file__).resolve().parent / "static"

#: The HTTP status of each of our errors (others: 400).
STATUS: list[tuple[type[OrchestratorError], int]] = [
    (FlowNotFound, 404),
    (FlowRunNotFound, 404),
    (TaskRunNotFound, 404),
    (ParameterError, 422),
    (SerializationError, 422),
    (ScheduleError, 422),
    (ConcurrencyLimitError, 422),
    (InvalidCursor, 400),
    (RestartRefused, 409),
    (BackendUnavailable, 503),
]

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]

#: The policy of the OpenAPI docs page alone: FastAPI's Swagger UI loads from its CDN
#: and starts with an inline script (the page shows no user data).
DOCS_POLICY = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class Shield:
    """Security headers on every response; without tokens, only loopback clients and
    loopback host names (no DNS rebinding onto 127.0.0.1) are served."""

    def __init__(self, app: ASGIApp, open_access: bool) -> None:
        self.app = app
        self.open_access = open_access

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.open_access:
            refusal = _refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return

        headers = SECURITY_HEADERS
        if scope.get("path", "").startswith("/docs"):
            headers = [(b"content-security-policy", DOCS_POLICY), *SECURITY_HEADERS[1:]]

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers") or []) + headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _refusal(scope: MutableMapping[str, Any]) -> Response | None:
    """Why a request may not be served without tokens, as a response (None: it may)."""
    client = scope.get("client")
    if client and not loopback_name(str(client[0])):
        return JSONResponse({"detail": "this server serves loopback clients only"}, 403)
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    if host and not loopback_name(host_name(host)):
        return JSONResponse({"detail": f"unexpected Host header {host[:100]!r}"}, 400)
    return None


def _status(exc: OrchestratorError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _error(request: Request, status: int, detail: str) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": detail}, status_code=status)
    return render(request, "error.html", {"status": status, "detail": detail}, status=status)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(OrchestratorError)
    async def orchestrator_error(request: Request, exc: OrchestratorError) -> Response:
        return _error(request, _status(exc), str(exc) or type(exc).__name__)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        response = _error(request, exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            problems.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", ""))
        return _error(request, 422, "; ".join(problems) or "invalid request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return _error(request, 500, f"unexpected {type(exc).__name__}; see the server's log")


def create_app(
    settings: Settings | None = None, auth: ServerAuth | None = None, client: Client | None = None
) -> FastAPI:
    """The server's app for a configuration (by default, from the environment).

    Args:
        settings: where Redis and the database are.
        auth: the server's tokens (default: ``ORCHESTRATOR_SERVER_TOKEN`` and
            ``ORCHESTRATOR_SERVER_READ_TOKEN``).
        client: the client to serve through (default: one for ``settings``).
    """
    auth = auth or ServerAuth.from_env()
    client = client or Client(settings or Settings.from_env())
    backends = client.backends  # reach Redis and the database now: a clear error at start
    feed = Feed(backends.store, backends.redis)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        feed.start()
        try:
            yield
        finally:
            feed.stop()

    app = FastAPI(
        title="orchestrator",
        version=VERSION,
        description="Flow runs, their trees, logs and live state changes. With "
        "ORCHESTRATOR_SERVER_TOKEN set, send `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.services = Services(client, Guard(auth), feed, make_templates())
    _install_errors(app)
    for router in [*API_ROUTERS, *PAGE_ROUTERS]:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(Shield, open_access=not auth.enabled)
    return app
