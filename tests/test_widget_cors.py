"""The portal widget may call the visitor API from the portal's origin, and
nothing else crosses origins."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from smeline.app import create_app
from tests.conftest import make_settings

PORTAL = "https://portal.example.cn"
FORM = {"name": "张三", "company": "梅州某某公司", "category_code": "information"}


async def _client(database_url: str, aiohttp_client: Any) -> TestClient[Any, Any]:
    settings = make_settings(database_url, realtime_allowed_origins=[PORTAL])
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, background=False))
    return client


async def test_the_portal_may_start_a_chat_and_read_errors(
    database_url: str, aiohttp_client: Any
) -> None:
    client = await _client(database_url, aiohttp_client)
    pre = await client.options(
        "/api/chat/start",
        headers={
            "Origin": PORTAL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "X-Chat-Token" in pre.headers["Access-Control-Allow-Headers"]
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    started = await client.post("/api/chat/start", json=FORM, headers={"Origin": PORTAL})
    assert started.status == 201, await started.text()
    assert started.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "Access-Control-Allow-Credentials" not in started.headers  # tokens, never cookies
    bad = await client.post("/api/chat/start", json={"name": ""}, headers={"Origin": PORTAL})
    assert bad.status == 422
    assert bad.headers["Access-Control-Allow-Origin"] == PORTAL  # the widget reads the error


async def test_other_origins_and_staff_paths_get_no_cross_origin_access(
    database_url: str, aiohttp_client: Any
) -> None:
    client = await _client(database_url, aiohttp_client)
    other = await client.post(
        "/api/chat/start", json=FORM, headers={"Origin": "https://evil.example.com"}
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    pre = await client.options(
        "/api/chat/start",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert pre.status != 204 and "Access-Control-Allow-Origin" not in pre.headers
    for path in ("/api/chats", "/api/tickets", "/api/auth/me"):
        resp = await client.get(path, headers={"Origin": PORTAL})
        assert "Access-Control-Allow-Origin" not in resp.headers, path
