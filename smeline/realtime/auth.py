"""Who is on the other end of a socket: staff by session, visitors by chat token.

Staff authenticate exactly as on the REST API: the ``smeline_session`` cookie
the browser already holds, or the bearer token in the connect payload
(``auth={"token": ...}``). The socket handshake needs no CSRF token (it
changes nothing; every later event is checked on its own), but a browser's
``Origin`` must be the service's own: that is what stops another site's page
from opening a socket with the agent's cookie (cross-site WebSocket
hijacking). Visitors come from the portal pages that embed the chat widget,
so their origins are the configured allow-list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any, Protocol
from urllib.parse import urlsplit

from smeline.auth.middleware import SESSION_COOKIE
from smeline.auth.permissions import Principal
from smeline.auth.services import AuthService
from smeline.db import utcnow
from smeline.realtime.events import ErrorCode, SocketError

logger = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Refused(Exception):
    """A connection or event that is not allowed; becomes a socket.io refusal
    or an ``error`` event carrying :class:`SocketError`."""

    def __init__(self, code: str, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def error(self, event: str | None = None) -> SocketError:
        return SocketError(code=self.code, message=self.message, event=event, details=self.details)


class VisitorIdentity(Protocol):
    """A web-chat visitor as the chat service knows them."""

    @property
    def chat_id(self) -> int | str: ...

    @property
    def visitor_id(self) -> int | str: ...


class VisitorAuthenticator(Protocol):
    """Implemented by the web-chat service: the visitor token it issued at
    ``POST /api/chat/start`` → the one chat it opens, or None."""

    async def authenticate(self, token: str) -> VisitorIdentity | None: ...


class TimedVisitorAuthenticator(Protocol):
    """The same, for a service that takes the current time (``ChatService``)."""

    async def authenticate(self, token: str, *, now: datetime) -> VisitorIdentity | None: ...


class VisitorsNow:
    """Adapts a :class:`TimedVisitorAuthenticator` to :class:`VisitorAuthenticator`."""

    def __init__(
        self, inner: TimedVisitorAuthenticator, *, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._inner = inner
        self._now = now

    async def authenticate(self, token: str) -> VisitorIdentity | None:
        return await self._inner.authenticate(token, now=self._now())


class NoVisitors:
    """Until the web-chat service is wired in, every visitor is refused."""

    async def authenticate(self, token: str) -> VisitorIdentity | None:
        return None


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case, default ports dropped; None
    when ``value`` is not an http(s) origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class OriginPolicy:
    """Which browser origins may open a socket.

    The service's own origin is ``public_url`` when configured, and always
    the origin the request itself names (``Host``, with ``X-Forwarded-Proto``
    from a TLS proxy): a browser sets ``Host`` to the site it really talks to,
    so a foreign page never matches. A request without ``Origin`` is not from
    a browser page (browsers send it on every WebSocket handshake and every
    cross-origin request) and is judged by its credentials alone.
    """

    def __init__(self, *, public_url: str | None, visitor_origins: Iterable[str]) -> None:
        self._public = normalise_origin(public_url) if public_url else None
        self._visitor_origins = frozenset(
            o for o in (normalise_origin(v) for v in visitor_origins) if o is not None
        )

    def own_origins(self, environ: Mapping[str, Any]) -> set[str]:
        own: set[str] = set()
        if self._public is not None:
            own.add(self._public)
        host = environ.get("HTTP_HOST")
        if isinstance(host, str) and host:
            scheme = _request_scheme(environ)
            origin = normalise_origin(f"{scheme}://{host}")
            if origin is not None:
                own.add(origin)
        return own

    def transport_allows(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        """The engine.io handshake: own origins and the visitors' portals."""
        return self._allows(origin, environ, self._visitor_origins)

    def staff_allows(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        return self._allows(origin, environ, frozenset())

    def visitor_allows(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        return self._allows(origin, environ, self._visitor_origins)

    def _allows(
        self, origin: str | None, environ: Mapping[str, Any], extra: frozenset[str]
    ) -> bool:
        if origin is None:
            return True
        normalised = normalise_origin(origin)
        if normalised is None:
            return False  # "null" (sandboxed frames, file:) and anything malformed
        return normalised in extra or normalised in self.own_origins(environ)


def _request_scheme(environ: Mapping[str, Any]) -> str:
    forwarded = environ.get("HTTP_X_FORWARDED_PROTO")
    if isinstance(forwarded, str) and forwarded:
        return forwarded.split(",")[0].strip().lower()
    request = environ.get("aiohttp.request")
    scheme = getattr(request, "scheme", None)
    return scheme if isinstance(scheme, str) else "http"


def origin_of(environ: Mapping[str, Any]) -> str | None:
    origin = environ.get("HTTP_ORIGIN")
    return origin if isinstance(origin, str) else None


def token_from_payload(auth: Any) -> str | None:
    """``{"token": "..."}`` from the connect payload, or None."""
    if not isinstance(auth, dict):
        return None
    token = auth.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


def session_cookie(environ: Mapping[str, Any]) -> str | None:
    request = environ.get("aiohttp.request")
    cookies = getattr(request, "cookies", None)
    value: Any = None
    if isinstance(cookies, Mapping):
        value = cookies.get(SESSION_COOKIE)
    else:
        raw = environ.get("HTTP_COOKIE")
        if isinstance(raw, str):
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(raw)
            except CookieError:
                return None
            morsel = jar.get(SESSION_COOKIE)
            value = morsel.value if morsel is not None else None
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_LENGTH:
        return None
    return value


class StaffGate:
    """Staff sessions for the socket layer, through :class:`AuthService` (and
    its :class:`SessionCache`, so logout and deactivation are seen here as
    soon as the REST API sees them)."""

    def __init__(self, *, auth: AuthService, now: Callable[[], datetime] = utcnow) -> None:
        self._auth = auth
        self._now = now

    async def principal(self, token: str) -> Principal | None:
        found = await self._auth.authenticate(token, now=self._now())
        if found is None:
            return None
        return found.principal

    async def connect(self, environ: Mapping[str, Any], auth: Any) -> tuple[str, Principal]:
        """The token and principal of a staff connection; :class:`Refused` otherwise."""
        token = token_from_payload(auth) or session_cookie(environ)
        if token is None:
            raise Refused(ErrorCode.AUTHENTICATION_REQUIRED, "Authentication required")
        principal = await self.principal(token)
        if principal is None:
            raise Refused(
                ErrorCode.AUTHENTICATION_REQUIRED,
                "Session expired or unknown",
                details={"reason": "session_invalid"},
            )
        if principal.must_change_password:
            raise Refused(
                ErrorCode.FORBIDDEN,
                "Change the one-time password first",
                details={"reason": "password_change_required"},
            )
        return token, principal
