"""Serving the built agent console at ``/console/`` (docs/console.md).

The single-page app is a few hashed files under ``web/dist/assets/`` plus
``index.html``. Assets never change under their name, so they are cached for a
year; ``index.html`` is revalidated every time and answers every other path
under ``/console/`` so that client-side routes survive a reload. When the app
has not been built the console says so, in Chinese, instead of a bare 404.

The portal chat widget is served at ``/widget/`` (docs/widget.md): ``chat.js``, the
stable name portals embed, is a loader revalidated often; the bundle it names
carries a content hash and is cached for a year. Both are classic scripts that
any origin may load (the portal pages are elsewhere).

The HTML carries a Content-Security-Policy that lets the page load and connect
to nothing but its own origin (plus the SIP WebSocket when it lives
elsewhere): the deployment must work on a closed network and nothing is
fetched from a CDN, a font service or a public STUN server.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from smeline import keys
from smeline.errors import NotFound

logger = logging.getLogger(__name__)

PREFIX = "/console/"
DIST_DIR = Path(__file__).resolve().parent / "web" / "dist"
ASSETS = "assets/"

ASSET_CACHE = "public, max-age=31536000, immutable"
HTML_CACHE = "no-cache"

WIDGET_PREFIX = "/widget/"
WIDGET_LOADER = "chat.js"
# Short: a new release reaches the portals' visitors within minutes, and the
# loader is a few hundred bytes.
WIDGET_LOADER_CACHE = "public, max-age=300"
WIDGET_NOT_BUILT = "/* smeline: the chat widget has not been built: run scripts/build-web */\n"

_HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")
_CONNECT_SOURCE = re.compile(
    r"^(?:wss?|https?)://[A-Za-z0-9.\-\[\]:]{1,300}(?:/[A-Za-z0-9._~/-]*)?$"
)

NOT_BUILT_PAGE = """<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>坐席工作台尚未构建</title></head>
<body>
<h1>坐席工作台尚未构建</h1>
<p>服务已经在运行，但浏览器端的坐席工作台还没有构建。</p>
<p>请在项目目录下运行 <code>scripts/build-web</code>（需要 Node.js 与 npm），然后刷新本页。</p>
<p>接口服务不受影响：<a href="/api/health">/api/health</a></p>
</body>
</html>
"""


def content_security_policy(
    websocket_origins: Iterable[str] = (), extra_connect: Iterable[str] = ()
) -> str:
    """The policy of the console's HTML.

    ``style-src`` is ``'self'`` only: Vue and Element Plus set styles through
    the CSSOM (``element.style``), which CSP does not govern, and the build
    emits no inline ``<style>``. Element Plus's stylesheet draws the select
    check mark with an SVG ``data:`` URL, hence ``img-src data:``.
    """
    connect = ["'self'", *websocket_origins, *extra_connect]
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "media-src 'self'",
        f"connect-src {' '.join(dict.fromkeys(connect))}",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
    return "; ".join(directives)


def _same_origin_websockets(request: web.Request) -> list[str]:
    """ws:// and wss:// of the console's own host: older browsers (CSP 2) do not
    count them as 'self'. The public URL wins over the Host header behind a proxy."""
    settings = request.app.get(keys.SETTINGS)
    host = ""
    if settings is not None and settings.public_url:
        host = urlsplit(settings.public_url).netloc
    if not host:
        host = request.host
    if not _HOST.fullmatch(host):
        return []
    return [f"ws://{host}", f"wss://{host}"]


def _html_headers(request: web.Request, extra_connect: tuple[str, ...]) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(
            _same_origin_websockets(request), extra_connect
        ),
        "Cache-Control": HTML_CACHE,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        # The softphone needs the microphone; nothing needs the camera or location.
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    }


def _file_under(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a regular file inside ``root``; no dot segments or NULs."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = relative.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    candidate = root.joinpath(*parts)
    try:
        resolved = candidate.resolve()
        if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
            return None
    except (OSError, ValueError):
        return None
    return resolved


def add_console_routes(
    app: web.Application, dist_dir: Path = DIST_DIR, *, connect_sources: Iterable[str] = ()
) -> None:
    """Serve the built console from ``dist_dir`` at ``/console/``; ``/`` redirects there.

    ``connect_sources``: further origins the page may connect to, e.g. the SIP
    WebSocket when it is not proxied through the console's own origin.
    """
    extra = tuple(connect_sources)
    for source in extra:
        if not _CONNECT_SOURCE.fullmatch(source):
            raise ValueError(f"not a connect source for the CSP: {source!r}")

    async def to_console(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX)

    async def console(request: web.Request) -> web.StreamResponse:
        # Looked up on every request: building while the service runs needs no restart.
        index = dist_dir / "index.html"
        if not index.is_file():
            return web.Response(
                text=NOT_BUILT_PAGE,
                status=503,
                content_type="text/html",
                headers=_html_headers(request, extra),
            )
        tail = request.match_info.get("tail", "")
        if tail.startswith(ASSETS):
            asset = _file_under(dist_dir, tail)
            if asset is None:
                # Never index.html for a missing script: the browser would run HTML as JS.
                raise NotFound("No such asset", error_id="not_found")
            return web.FileResponse(
                asset, headers={"Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"}
            )
        other = _file_under(dist_dir, tail) if tail else None
        if other is not None and other.name != "index.html":
            return web.FileResponse(
                other, headers={"Cache-Control": HTML_CACHE, "X-Content-Type-Options": "nosniff"}
            )
        return web.FileResponse(index, headers=_html_headers(request, extra))

    app.router.add_get("/", to_console)
    app.router.add_get("/console", to_console)
    app.router.add_get(PREFIX, console)
    app.router.add_get(PREFIX + "{tail:.*}", console)
    add_widget_routes(app, dist_dir / "widget")


def _widget_headers(cache: str) -> dict[str, str]:
    # Loaded by <script src> from the portals' pages: any origin may use it
    # (CORP cross-origin also for portals that isolate themselves with COEP).
    return {
        "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }


def add_widget_routes(app: web.Application, widget_dir: Path) -> None:
    """Serve the chat widget's build (``dist/widget``) at ``/widget/``."""

    async def loader(request: web.Request) -> web.StreamResponse:
        path = widget_dir / WIDGET_LOADER
        if not path.is_file():
            # Still JavaScript: the portal page runs it harmlessly and the
            # operator reads why in the browser's console.
            return web.Response(
                text=WIDGET_NOT_BUILT,
                status=503,
                content_type="text/javascript",
                headers=_widget_headers("no-store"),
            )
        return web.FileResponse(path, headers=_widget_headers(WIDGET_LOADER_CACHE))

    async def asset(request: web.Request) -> web.StreamResponse:
        found = _file_under(widget_dir, ASSETS + request.match_info["tail"])
        if found is None:
            raise NotFound("No such asset", error_id="not_found")
        return web.FileResponse(found, headers=_widget_headers(ASSET_CACHE))

    app.router.add_get(WIDGET_PREFIX + WIDGET_LOADER, loader)
    app.router.add_get(WIDGET_PREFIX + ASSETS + "{tail:.*}", asset)
