"""Authentication of every ``/api`` request: bearer token or session cookie + CSRF."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from smeline.auth.permissions import Principal
from smeline.auth.services import AuthService
from smeline.db import utcnow
from smeline.errors import Forbidden, Unauthorized

SESSION_COOKIE = "smeline_session"
CSRF_COOKIE = "smeline_csrf"
CSRF_HEADER = "X-CSRF-Token"
PRINCIPAL_KEY = web.RequestKey("principal", Principal)

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Reachable while a one-time password is still in use.
_PASSWORD_CHANGE_PATHS = {"/api/auth/me", "/api/auth/password", "/api/auth/logout"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def principal_of(request: web.Request) -> Principal:
    principal = request.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise Unauthorized("Authentication required")
    return principal


def make_auth_middleware(auth: AuthService, public_routes: set[tuple[str, str]]) -> Middleware:
    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Unknown paths and methods fall through to their 404 / 405 JSON errors.
        if not request.path.startswith("/api/") or request.match_info.http_exception:
            return await handler(request)
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        if (request.method, canonical) in public_routes:
            return await handler(request)

        header = request.headers.get("Authorization", "")
        via_cookie = False
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        else:
            token = request.cookies.get(SESSION_COOKIE, "")
            via_cookie = True
        if not token or len(token) > 256:
            raise Unauthorized("Authentication required")
        found = await auth.authenticate(token, now=utcnow())
        if found is None:
            raise Unauthorized("Session expired or unknown", error_id="session_invalid")
        # Cookies ride along with cross-site requests; a header an attacker's page
        # cannot read or set proves the request comes from our own app.
        if via_cookie and request.method not in _SAFE_METHODS:
            if not auth.csrf_matches(found.csrf_token, request.headers.get(CSRF_HEADER)):
                raise Forbidden("CSRF token missing or wrong", error_id="csrf_failed")
        if found.principal.must_change_password and request.path not in _PASSWORD_CHANGE_PATHS:
            raise Forbidden(
                "Change the one-time password first", error_id="password_change_required"
            )
        request[PRINCIPAL_KEY] = found.principal
        return await handler(request)

    return auth_middleware
