"""Signing in to the pages when the server has tokens: ``/login`` takes a token (the
full one or the read-only one; the form posts its CSRF token too) and sets a signed
session cookie holding the role and its expiry, never the token; ``/logout`` clears it.

May import FastAPI, the server's auth, deps and render modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.server.auth import SESSION_COOKIE, SESSION_SECONDS, csrf_ok, same_origin
from orchestrator.server.deps import services
from orchestrator.server.web.render import render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Where to go after the login: a path on this site only (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    """The login form (straight on to the pages when the server has no tokens)."""
    if not services(request).guard.enabled:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the token; on success set the session cookie and go on."""
    guard = services(request).guard
    if not csrf_ok(request, csrf) or not same_origin(request):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page")
    role = guard.role_of_token(token) if guard.enabled else "admin"
    if role is None:
        context = {"next": _safe_next(next), "error": "That token is not valid."}
        return render(request, "login.html", context, status=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        guard.session(role),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """Forget the session."""
    if not csrf_ok(request, csrf):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
