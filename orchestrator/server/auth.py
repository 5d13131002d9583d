"""Who may do what on the server: the roles a request carries (a bearer token for the
API, a signed session cookie for the pages after a login), the CSRF token of the
forms (a random cookie each form posts back), and the checks that keep cross-site
requests out when no token is set.

Roles: ``admin`` (``ORCHESTRATOR_SERVER_TOKEN``, or anyone when no token is set and
the server listens on loopback only) may look, create and cancel; ``read``
(``ORCHESTRATOR_SERVER_READ_TOKEN``) may only look. The session cookie holds the role
and its expiry, signed with a key derived from the tokens (never a token itself).

May import the standard library, Starlette's request type and the core's config."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Literal

from starlette.requests import Request

from orchestrator.config import ServerAuth

Role = Literal["admin", "read"]
ADMIN: Role = "admin"
READ: Role = "read"

SESSION_COOKIE = "orchestrator_session"
CSRF_COOKIE = "orchestrator_csrf"
#: How long a login lasts, in seconds.
SESSION_SECONDS = 12 * 3600

_HOST = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^:]+)(?::\d+)?$")


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port (IPv6 without brackets)."""
    m = _HOST.match(header.strip())
    return (m.group("host") if m else header).strip("[]").lower()


def loopback_name(name: str) -> bool:
    """Whether a host name names this machine's loopback (``localhost``, ``127.x``, ``::1``)."""
    return name == "localhost" or name == "::1" or name.startswith("127.")


class Guard:
    """The server's tokens and what they allow.

    Args:
        auth: the tokens (none: no login, loopback only).
    """

    def __init__(self, auth: ServerAuth) -> None:
        self.auth = auth
        if auth.token:
            material = f"orchestrator-session\0{auth.token}\0{auth.read_token or ''}"
            self._key = hashlib.sha256(material.encode()).digest()
        else:
            self._key = secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        """True when requests must carry a token or a login."""
        return self.auth.enabled

    def role_of_token(self, presented: str) -> Role | None:
        """The role a presented token grants (compared in constant time)."""
        given = presented.encode()
        role: Role | None = None
        if self.auth.token and hmac.compare_digest(given, self.auth.token.encode()):
            role = ADMIN
        if self.auth.read_token and hmac.compare_digest(given, self.auth.read_token.encode()):
            role = READ
        return role

    def bearer(self, request: Request) -> tuple[bool, Role | None]:
        """(whether an ``Authorization: Bearer`` header came, the role it grants)."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return False, None
        return True, self.role_of_token(value.strip())

    def session(self, role: Role, now: float | None = None) -> str:
        """A session cookie value for ``role``, valid for :data:`SESSION_SECONDS`."""
        expiry = int((time.time() if now is None else now) + SESSION_SECONDS)
        body = f"{role}.{expiry}"
        return f"{body}.{self._sign(body)}"

    def session_role(self, request: Request) -> Role | None:
        """The role of the request's session cookie, if it is genuine and fresh."""
        value = request.cookies.get(SESSION_COOKIE, "")
        role, _, rest = value.partition(".")
        expiry, _, signature = rest.partition(".")
        if role not in (ADMIN, READ) or not expiry.isdigit():
            return None
        if not hmac.compare_digest(signature, self._sign(f"{role}.{expiry}")):
            return None
        if int(expiry) < time.time():
            return None
        return ADMIN if role == ADMIN else READ

    def role(self, request: Request) -> Role | None:
        """The request's role: anyone is admin without tokens; else its bearer token's
        role, or its session's (None: not signed in, or a wrong token)."""
        if not self.enabled:
            return ADMIN
        sent, role = self.bearer(request)
        if sent:
            return role
        return self.session_role(request)

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF token, and True when it is new (the response must set it)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) >= 32:
        return current, False
    return secrets.token_urlsafe(32), True


def csrf_ok(request: Request, presented: str | None) -> bool:
    """Whether a form's (or header's) CSRF token matches the request's cookie."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    if len(expected) < 32 or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def same_origin(request: Request) -> bool:
    """False when the browser says a request comes from another site: its
    ``Sec-Fetch-Site`` is neither ``same-origin`` nor ``none``, or (from browsers
    without it) its ``Origin`` names another host or is ``null``. True for requests
    that say neither (scripts, curl): CSRF needs a browser."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin != "null" and origin.split("://", 1)[-1].rstrip("/").lower() == host.lower()
