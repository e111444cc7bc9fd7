"""Cross-origin access for the portal chat widget.

The widget runs on the portals' pages (``realtime_allowed_origins``) and calls
the visitor API (``/api/chat/…``) on smeline's origin. Only those paths, only
those origins, no credentials (visitors carry their chat token in
``X-Chat-Token``, never a cookie), and only the methods and headers the
widget uses. Everything else stays same-origin. Outermost middleware, so that
error answers carry the headers too (the widget must read a 422 or 429).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

VISITOR_PREFIX = "/api/chat/"
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, X-Chat-Token"
MAX_AGE_SECONDS = "600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_widget_cors_middleware(
    origins: Collection[str],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    allowed = frozenset(origins)

    @web.middleware
    async def widget_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or origin not in allowed or not request.path.startswith(VISITOR_PREFIX):
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = MAX_AGE_SECONDS
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
                _allow(response, origin)
                raise
        _allow(response, origin)
        return response

    return widget_cors


def _allow(response: web.StreamResponse, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
