"""The agent console's static files at /console/ (smeline/agent_console/static.py).

A fake ``dist/`` in tmp_path stands for Vite's output, so these tests never
need Node.js; the mounted app is checked once through the real application.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from smeline.agent_console.static import add_console_routes, content_security_policy
from smeline.errors import error_middleware

INDEX = (
    '<!doctype html><html lang="zh-CN"><head>'
    '<script type="module" crossorigin src="/console/assets/index-AbC123.js"></script>'
    '<link rel="stylesheet" crossorigin href="/console/assets/index-AbC123.css">'
    '</head><body><div id="app"></div></body></html>'
)
SCRIPT = "console.log('console')\n"


def fake_dist(root: Path) -> Path:
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX, encoding="utf-8")
    (dist / "assets" / "index-AbC123.js").write_text(SCRIPT, encoding="utf-8")
    (dist / "assets" / "index-AbC123.css").write_text("body{margin:0}", encoding="utf-8")
    (dist / ".smeline-build").write_text("stamp", encoding="utf-8")
    (root / "secret.txt").write_text("outside dist", encoding="utf-8")
    return dist


async def console_client(aiohttp_client: Any, dist: Path, **kwargs: Any) -> TestClient[Any, Any]:
    app = web.Application()
    add_console_routes(app, dist, **kwargs)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_without_a_build_the_console_says_in_chinese_to_run_build_web(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await console_client(aiohttp_client, tmp_path / "dist")
    for path in ("/console/", "/console/tickets/12", "/console/assets/index-AbC123.js"):
        response = await client.get(path)
        assert response.status == 503
        assert response.content_type == "text/html"
        text = await response.text()
        assert "坐席工作台尚未构建" in text
        assert "scripts/build-web" in text
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


async def test_a_build_made_while_the_service_runs_is_served_without_a_restart(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await console_client(aiohttp_client, tmp_path / "dist")
    assert (await client.get("/console/")).status == 503
    fake_dist(tmp_path)
    response = await client.get("/console/")
    assert response.status == 200
    assert await response.text() == INDEX


async def test_index_answers_client_side_routes_with_security_headers(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await console_client(aiohttp_client, fake_dist(tmp_path))
    for path in ("/console/", "/console/login", "/console/tickets/42/history"):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == "text/html"
        assert await response.text() == INDEX
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "microphone=(self)" in response.headers["Permissions-Policy"]
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self';" in csp
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        host = f"{client.server.host}:{client.server.port}"
        assert f"connect-src 'self' ws://{host} wss://{host}" in csp
        assert "frame-ancestors 'none'" in csp


async def test_assets_are_served_with_a_year_of_cache_and_gzip_when_built(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    dist = fake_dist(tmp_path)
    client = await console_client(aiohttp_client, dist)
    response = await client.get("/console/assets/index-AbC123.js")
    assert response.status == 200
    assert await response.text() == SCRIPT
    assert response.content_type in ("text/javascript", "application/javascript")
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Content-Security-Policy" not in response.headers

    (dist / "assets" / "index-AbC123.js.gz").write_bytes(gzip.compress(SCRIPT.encode()))
    zipped = await client.get(
        "/console/assets/index-AbC123.js", headers={"Accept-Encoding": "gzip"}
    )
    assert zipped.headers.get("Content-Encoding") == "gzip"
    assert await zipped.text() == SCRIPT


@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/missing-123.js",
        "/console/assets/../../secret.txt",
        "/console/assets/%2e%2e/%2e%2e/secret.txt",
        "/console/assets/..%2f..%2fsecret.txt",
        "/console/assets/",
        "/console/assets/.hidden",
    ],
)
async def test_a_missing_or_hostile_asset_path_is_a_json_404_never_html(
    aiohttp_client: Any, tmp_path: Path, path: str
) -> None:
    app = web.Application(middlewares=[error_middleware])
    add_console_routes(app, fake_dist(tmp_path))
    client = await aiohttp_client(app)
    response = await client.get(path)
    assert response.status == 404
    assert response.content_type == "application/json"
    assert "outside dist" not in await response.text()


async def test_dotfiles_and_files_outside_dist_are_never_served(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await console_client(aiohttp_client, fake_dist(tmp_path))
    for path in ("/console/.smeline-build", "/console/../secret.txt", "/console/%2e%2e/secret.txt"):
        response = await client.get(path)
        text = await response.text()
        assert "stamp" not in text and "outside dist" not in text, path


async def test_the_root_and_bare_prefix_redirect_to_the_console(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await console_client(aiohttp_client, fake_dist(tmp_path))
    for path in ("/", "/console"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "/console/"


async def test_a_hostile_host_header_adds_nothing_to_the_policy(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await console_client(aiohttp_client, fake_dist(tmp_path))
    response = await client.get("/console/", headers={"Host": "evil.example; script-src *"})
    csp = response.headers["Content-Security-Policy"]
    assert "evil" not in csp
    assert "connect-src 'self';" in csp


async def test_an_outside_sip_websocket_can_be_allowed_but_not_a_policy_injection(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await console_client(
        aiohttp_client, fake_dist(tmp_path), connect_sources=["wss://pbx.example:8089/ws"]
    )
    response = await client.get("/console/")
    assert "wss://pbx.example:8089/ws" in response.headers["Content-Security-Policy"]
    with pytest.raises(ValueError):
        add_console_routes(web.Application(), tmp_path, connect_sources=["wss://x; script-src *"])


def test_the_policy_allows_nothing_inline_and_no_other_origin() -> None:
    policy = dict(
        part.strip().split(" ", 1) for part in content_security_policy().split(";") if part.strip()
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["object-src"] == "'none'"


async def test_the_service_mounts_the_console(client: TestClient[Any, Any]) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/console/"
    console = await client.get("/console/")
    # Built or not (this test does not build it), the page is HTML with its policy.
    assert console.status in (200, 503)
    assert console.content_type == "text/html"
    assert "script-src 'self'" in console.headers["Content-Security-Policy"]
    # The API keeps its JSON 404s.
    missing = await client.get("/api/nothing-here")
    assert missing.status == 404
    assert missing.content_type == "application/json"


# --- the portal chat widget at /widget/ ----------------------------------------------

LOADER = "(function(){/* loads /widget/assets/widget-Zz9.js */})();\n"
BUNDLE = "console.log('widget')\n"


def fake_widget(dist: Path) -> Path:
    widget = dist / "widget"
    (widget / "assets").mkdir(parents=True)
    (widget / "chat.js").write_text(LOADER, encoding="utf-8")
    (widget / "assets" / "widget-Zz9.js").write_text(BUNDLE, encoding="utf-8")
    with gzip.open(widget / "assets" / "widget-Zz9.js.gz", "wb") as f:
        f.write(BUNDLE.encode())
    (widget / ".hidden").write_text("no", encoding="utf-8")
    return widget


async def test_the_widget_loader_is_a_script_any_portal_may_load_revalidated_within_minutes(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    dist = fake_dist(tmp_path)
    fake_widget(dist)
    client = await console_client(aiohttp_client, dist)
    response = await client.get("/widget/chat.js", headers={"Origin": "https://portal.example"})
    assert response.status == 200
    assert await response.text() == LOADER
    assert response.content_type in ("text/javascript", "application/javascript")
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # A script, not a page: no frame or CSP headers of the console's HTML.
    assert "Content-Security-Policy" not in response.headers


async def test_the_widget_bundle_is_cached_for_a_year_and_gzipped_when_accepted(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    dist = fake_dist(tmp_path)
    fake_widget(dist)
    client = await console_client(aiohttp_client, dist)
    response = await client.get(
        "/widget/assets/widget-Zz9.js", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert gzip.decompress(await response.read()).decode() == BUNDLE


@pytest.mark.parametrize(
    "path",
    [
        "/widget/assets/nothing.js",
        "/widget/assets/%2e%2e/%2e%2e/index.html",
        "/widget/assets/..%2f..%2f..%2fsecret.txt",
        "/widget/assets/.hidden",
        "/widget/assets/",
        "/widget/index.html",
    ],
)
async def test_a_missing_or_hostile_widget_path_is_a_json_404(
    aiohttp_client: Any, tmp_path: Path, path: str
) -> None:
    dist = fake_dist(tmp_path)
    fake_widget(dist)
    app = web.Application(middlewares=[error_middleware])
    add_console_routes(app, dist)
    client = await aiohttp_client(app)
    response = await client.get(path)
    assert response.status == 404
    assert response.content_type == "application/json"
    text = await response.text()
    assert "outside dist" not in text and "no" != text and "widget" not in text


async def test_without_a_widget_build_the_loader_says_so_as_harmless_javascript(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    app = web.Application(middlewares=[error_middleware])
    add_console_routes(app, fake_dist(tmp_path))
    client = await aiohttp_client(app)
    response = await client.get("/widget/chat.js")
    assert response.status == 503
    assert response.content_type == "text/javascript"
    assert response.headers["Cache-Control"] == "no-store"
    assert "scripts/build-web" in await response.text()
    assert (await client.get("/widget/assets/widget-Zz9.js")).status == 404


async def test_the_service_mounts_the_widget(client: TestClient[Any, Any]) -> None:
    response = await client.get("/widget/chat.js")
    # Built or not, it is JavaScript any portal may load.
    assert response.status in (200, 503)
    assert response.content_type in ("text/javascript", "application/javascript")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
