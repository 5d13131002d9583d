"""What every route of the server shares: :class:`Services` (the client, the guard,
the live feed and the templates, one set per app) and the FastAPI dependencies that
check a request's role: :func:`reader` and :func:`writer` for the API (401 without a
valid token, 403 for the read-only token or a cross-site write), :func:`page_reader`
and :func:`page_writer` for the pages (a redirect to the login, a CSRF check).

May import FastAPI and Starlette, the sibling modules auth and feed, the client and
the core."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates

from orchestrator.client import Client
from orchestrator.server.auth import ADMIN, Guard, Role, csrf_ok, same_origin
from orchestrator.server.feed import Feed


@dataclass
class Services:
    """The server's parts, one set per app.

    Attributes:
        client: reads and changes runs (the same Client the CLI uses).
        guard: the tokens and what they allow.
        feed: the live state changes.
        templates: the pages' Jinja2 templates.
    """

    client: Client
    guard: Guard
    feed: Feed
    templates: Jinja2Templates


class LoginRequired(Exception):
    """A page was asked for without a login; the app redirects to ``/login``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def services(request: Request) -> Services:
    """The app's :class:`Services`."""
    found: Services = request.app.state.services
    return found


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def reader(request: Request) -> Role:
    """An API request that may look: a valid token (or a login), or no tokens set.

    Raises:
        HTTPException: 401 without a valid token.
    """
    guard = services(request).guard
    role = guard.role(request)
    if role is None:
        sent, _ = guard.bearer(request)
        raise _unauthorized(
            "invalid token" if sent else "send Authorization: Bearer <ORCHESTRATOR_SERVER_TOKEN>"
        )
    request.state.role = role
    return role


def writer(request: Request) -> Role:
    """An API request that may create and cancel: the full token; a login only with
    the ``X-CSRF-Token`` header; without tokens, only from this site.

    Raises:
        HTTPException: 401 without a valid token, 403 for the read-only token or a
            request from another site.
    """
    role = reader(request)
    if role != ADMIN:
        raise HTTPException(403, "the read-only token may not create or cancel runs")
    guard = services(request).guard
    sent, _ = guard.bearer(request)
    if guard.enabled and not sent and not csrf_ok(request, request.headers.get("x-csrf-token")):
        raise HTTPException(403, "a signed-in browser must send the X-CSRF-Token header")
    if not guard.enabled and not same_origin(request):
        raise HTTPException(403, "cross-site requests may not create or cancel runs")
    return role


def page_reader(request: Request) -> Role:
    """A page request that may look (a login when tokens are set).

    Raises:
        LoginRequired: not signed in.
    """
    role = services(request).guard.role(request)
    if role is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(quote(target, safe="/?=&"))
    request.state.role = role
    return role


async def page_writer(request: Request) -> Role:
    """A form post that may change something: signed in as admin, with the form's
    CSRF token matching its cookie, from this site.

    Raises:
        LoginRequired: not signed in.
        HTTPException: 403 for the read-only role or a bad CSRF token.
    """
    role = page_reader(request)
    form = await request.form()
    token = form.get("csrf")
    if not csrf_ok(request, token if isinstance(token, str) else None) or not same_origin(request):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page")
    if role != ADMIN:
        raise HTTPException(403, "signed in with the read-only token: you may not change runs")
    return role
