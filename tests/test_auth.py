"""Accounts over HTTP: login, one-time passwords, throttling, sessions, CSRF, placement."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from smeline import keys
from smeline.auth.models import AuthSession
from smeline.auth.services import token_digest
from smeline.db import utcnow
from tests.conftest import STRONG_PASSWORD, Api, ticket_payload


def _pg(api: Api) -> str:
    url: str = api.client.server.app[keys.SETTINGS].database_url
    return url.replace("postgresql+asyncpg", "postgresql")


async def _fetchval(api: Api, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(_pg(api))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _new_account(api: Api, username: str, role: str = "supervisor", **extra: Any) -> str:
    """Creates an account as the admin and returns its one-time password."""
    payload = {"username": username, "display_name": username, "role": role, **extra}
    status, body = await api.call("POST", "/api/users", api.admin, json=payload)
    assert status == 201, body
    return str(body["one_time_password"])


def _error_id(body: Any) -> str:
    assert set(body) == {"error"}, body
    return str(body["error"]["id"])


# --- login ------------------------------------------------------------------------------


async def test_login_with_the_right_password_returns_a_token_and_the_user(api: Api) -> None:
    status, body = await api.login("root-admin", STRONG_PASSWORD)
    assert status == 200, body
    assert body["user"]["username"] == "root-admin"
    assert body["user"]["role"] == "admin"
    assert body["user"]["must_change_password"] is False
    assert len(body["token"]) >= 32
    assert body["csrf_token"]
    status, me = await api.call("GET", "/api/auth/me", headers=_bearer(body["token"]))
    assert status == 200
    assert me["username"] == "root-admin"


async def test_wrong_password_and_unknown_user_get_the_same_401(api: Api) -> None:
    wrong_status, wrong = await api.login("root-admin", "Not-the-password-1")
    unknown_status, unknown = await api.login("nobody-here", "Not-the-password-1")
    assert wrong_status == unknown_status == 401
    assert _error_id(wrong) == _error_id(unknown) == "login_failed"
    assert wrong["error"]["message"] == unknown["error"]["message"]
    assert "token" not in wrong and "token" not in unknown


async def test_login_with_an_empty_password_is_refused_before_any_check(api: Api) -> None:
    status, body = await api.login("root-admin", "")
    assert status == 422
    assert _error_id(body) == "validation_failed"


# --- one-time passwords -----------------------------------------------------------------


async def test_one_time_password_must_be_changed_before_anything_else(api: Api) -> None:
    otp = await _new_account(api, "li.ming", "agent", window_code="xingning")
    status, body = await api.login("li.ming", otp)
    assert status == 200, body
    assert body["user"]["must_change_password"] is True
    headers = _bearer(body["token"])

    for method, path, payload in (
        ("GET", "/api/tickets", None),
        ("POST", "/api/tickets", ticket_payload()),
        ("GET", "/api/reference", None),
        ("GET", "/api/users", None),
    ):
        status, refused = await api.call(method, path, json=payload, headers=headers)
        assert status == 403, (method, path, refused)
        assert _error_id(refused) == "password_change_required"
    status, me = await api.call("GET", "/api/auth/me", headers=headers)
    assert status == 200 and me["must_change_password"] is True

    status, _ = await api.call(
        "POST",
        "/api/auth/password",
        headers=headers,
        json={"current_password": otp, "new_password": STRONG_PASSWORD},
    )
    assert status == 204
    status, page = await api.call("GET", "/api/tickets", headers=headers)
    assert status == 200, page
    assert (await api.login("li.ming", otp))[0] == 401
    assert (await api.login("li.ming", STRONG_PASSWORD))[0] == 200


@pytest.mark.parametrize(
    ("new_password", "problem"),
    [
        ("Short-1", "string_too_short"),
        ("aaaaaaaaaaaaaaa", "too_simple"),
        ("abababababab12", "too_simple"),
        ("my-zhang.wei-2026", "contains_username"),
    ],
)
async def test_weak_new_password_is_refused_with_422(
    api: Api, new_password: str, problem: str
) -> None:
    otp = await _new_account(api, "zhang.wei")
    _, body = await api.login("zhang.wei", otp)
    headers = _bearer(body["token"])
    status, refused = await api.call(
        "POST",
        "/api/auth/password",
        headers=headers,
        json={"current_password": otp, "new_password": new_password},
    )
    assert status == 422, refused
    assert [d["type"] for d in refused["error"]["details"]] == [problem]
    assert {d["field"] for d in refused["error"]["details"]} == {"new_password"}
    # Nothing changed: the one-time password still works and still has to be replaced.
    status, again = await api.login("zhang.wei", otp)
    assert status == 200 and again["user"]["must_change_password"] is True


async def test_the_new_password_must_differ_from_the_one_time_password(api: Api) -> None:
    otp = await _new_account(api, "chen.jing")
    _, body = await api.login("chen.jing", otp)
    status, refused = await api.call(
        "POST",
        "/api/auth/password",
        headers=_bearer(body["token"]),
        json={"current_password": otp, "new_password": otp},
    )
    assert status == 422
    assert refused["error"]["details"][0]["type"] == "password_reused"


async def test_changing_the_password_needs_the_current_one(api: Api) -> None:
    otp = await _new_account(api, "wang.fang")
    _, body = await api.login("wang.fang", otp)
    status, refused = await api.call(
        "POST",
        "/api/auth/password",
        headers=_bearer(body["token"]),
        json={"current_password": "Wrong-current-9", "new_password": STRONG_PASSWORD},
    )
    assert status == 401
    assert _error_id(refused) == "wrong_password"
    assert (await api.login("wang.fang", STRONG_PASSWORD))[0] == 401


async def test_passwords_are_stored_as_argon2id_hashes(api: Api) -> None:
    otp = await _new_account(api, "huang.lei")
    stored = await _fetchval(
        api, "SELECT password_hash FROM users WHERE username = $1", "huang.lei"
    )
    assert stored.startswith("$argon2id$")
    assert otp not in stored
    _, body = await api.login("huang.lei", otp)
    await api.call(
        "POST",
        "/api/auth/password",
        headers=_bearer(body["token"]),
        json={"current_password": otp, "new_password": STRONG_PASSWORD},
    )
    changed = await _fetchval(
        api, "SELECT password_hash FROM users WHERE username = $1", "huang.lei"
    )
    assert changed.startswith("$argon2id$") and changed != stored
    assert STRONG_PASSWORD not in changed


async def test_changing_the_password_ends_the_other_sessions_but_not_this_one(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    _, other = await api.login(agent.username, STRONG_PASSWORD)
    status, _ = await api.call(
        "POST",
        "/api/auth/password",
        agent,
        json={"current_password": STRONG_PASSWORD, "new_password": "Hakka-tea-9931"},
    )
    assert status == 204
    assert (await api.call("GET", "/api/auth/me", agent))[0] == 200
    status, body = await api.call("GET", "/api/auth/me", headers=_bearer(other["token"]))
    assert status == 401 and _error_id(body) == "session_invalid"


async def test_a_password_reset_ends_sessions_and_asks_for_a_new_password(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    status, body = await api.call("POST", f"/api/users/{agent.id}/reset-password", api.admin)
    assert status == 200, body
    assert (await api.call("GET", "/api/auth/me", agent))[0] == 401
    assert (await api.login(agent.username, STRONG_PASSWORD))[0] == 401
    status, fresh = await api.login(agent.username, body["one_time_password"])
    assert status == 200 and fresh["user"]["must_change_password"] is True


# --- throttling -------------------------------------------------------------------------


async def test_repeated_failed_logins_are_throttled_even_with_the_right_password(
    api: Api,
) -> None:
    agent = await api.user("agent", window_code="xingning")
    limit = api.client.server.app[keys.SETTINGS].login_max_failures
    for _ in range(limit):
        status, body = await api.login(agent.username, "Wrong-password-77")
        assert status == 401 and _error_id(body) == "login_failed"

    resp = await api.client.post(
        "/api/auth/login", json={"username": agent.username, "password": STRONG_PASSWORD}
    )
    assert resp.status == 429
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert _error_id(body) == "login_throttled"
    retry_after = int(resp.headers["Retry-After"])
    assert retry_after > 0
    assert body["error"]["details"]["retry_after_seconds"] == retry_after
    assert "token" not in body
    # Throttling is per account: the admin still logs in from the same address.
    assert (await api.login("root-admin", STRONG_PASSWORD))[0] == 200


async def test_failures_below_the_limit_are_forgotten_after_a_good_login(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    limit = api.client.server.app[keys.SETTINGS].login_max_failures
    for _ in range(limit - 1):
        assert (await api.login(agent.username, "Wrong-password-77"))[0] == 401
    assert (await api.login(agent.username, STRONG_PASSWORD))[0] == 200
    for _ in range(limit - 1):
        assert (await api.login(agent.username, "Wrong-password-77"))[0] == 401
    assert (await api.login(agent.username, STRONG_PASSWORD))[0] == 200


# --- cookie sessions and CSRF -----------------------------------------------------------


def _set_cookies(resp: Any) -> dict[str, str]:
    cookies = {}
    for header in resp.headers.getall("Set-Cookie", []):
        name = header.split("=", 1)[0]
        cookies[name] = header
    return cookies


async def test_login_sets_an_http_only_same_site_session_cookie(api: Api) -> None:
    resp = await api.client.post(
        "/api/auth/login", json={"username": "root-admin", "password": STRONG_PASSWORD}
    )
    assert resp.status == 200
    body = await resp.json()
    cookies = _set_cookies(resp)
    session = cookies["smeline_session"].lower()
    assert f"smeline_session={body['token']}".lower() in session
    assert "httponly" in session
    assert "samesite=strict" in session
    assert "path=/" in session
    # The CSRF cookie is meant to be read by our own scripts.
    csrf = cookies["smeline_csrf"].lower()
    assert body["csrf_token"].lower() in csrf
    assert "httponly" not in csrf
    assert "samesite=strict" in csrf


async def _cookie_login(api: Api) -> str:
    """Logs the admin in with the client's cookie jar only; returns the CSRF token."""
    api.client.session.cookie_jar.clear()
    status, body = await api.login("root-admin", STRONG_PASSWORD)
    assert status == 200
    return str(body["csrf_token"])


async def _count(api: Api, table: str) -> int:
    return int(await _fetchval(api, f'SELECT count(*) FROM "{table}"'))  # noqa: S608


async def test_cookie_write_without_csrf_header_is_refused(api: Api) -> None:
    await _cookie_login(api)
    assert (await api.call("GET", "/api/auth/me"))[0] == 200  # reads need no CSRF header
    before = await _count(api, "tickets")
    status, body = await api.call("POST", "/api/tickets", json=ticket_payload())
    assert status == 403 and _error_id(body) == "csrf_failed"
    status, body = await api.call(
        "POST", "/api/tickets", json=ticket_payload(), headers={"X-CSRF-Token": "forged"}
    )
    assert status == 403 and _error_id(body) == "csrf_failed"
    assert await _count(api, "tickets") == before


async def test_cookie_write_with_the_csrf_header_works(api: Api) -> None:
    csrf = await _cookie_login(api)
    status, body = await api.call(
        "POST", "/api/tickets", json=ticket_payload(), headers={"X-CSRF-Token": csrf}
    )
    assert status == 201, body


async def test_a_csrf_token_of_another_session_does_not_fit(api: Api) -> None:
    _, other = await api.login("root-admin", STRONG_PASSWORD)
    await _cookie_login(api)
    status, body = await api.call(
        "POST", "/api/tickets", json=ticket_payload(), headers={"X-CSRF-Token": other["csrf_token"]}
    )
    assert status == 403 and _error_id(body) == "csrf_failed"


async def test_a_non_ascii_csrf_header_is_refused_not_a_crash(api: Api) -> None:
    await _cookie_login(api)
    status, body = await api.call(
        "POST", "/api/tickets", json=ticket_payload(), headers={"X-CSRF-Token": "令牌é"}
    )
    assert status == 403 and _error_id(body) == "csrf_failed"


async def test_bearer_writes_need_no_csrf_header(api: Api) -> None:
    api.client.session.cookie_jar.clear()
    status, body = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert status == 201, body


async def test_cookie_logout_needs_the_csrf_header_and_clears_the_cookie(api: Api) -> None:
    csrf = await _cookie_login(api)
    status, body = await api.call("POST", "/api/auth/logout")
    assert status == 403 and _error_id(body) == "csrf_failed"
    resp = await api.client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 204
    assert "smeline_session" in _set_cookies(resp)
    status, body = await api.call("GET", "/api/auth/me")
    assert status == 401


# --- session lifetime -------------------------------------------------------------------


async def test_logout_invalidates_the_token(api: Api) -> None:
    api.client.session.cookie_jar.clear()
    _, first = await api.login("root-admin", STRONG_PASSWORD)
    _, second = await api.login("root-admin", STRONG_PASSWORD)
    api.client.session.cookie_jar.clear()
    status, _ = await api.call("POST", "/api/auth/logout", headers=_bearer(first["token"]))
    assert status == 204
    status, body = await api.call("GET", "/api/auth/me", headers=_bearer(first["token"]))
    assert status == 401 and _error_id(body) == "session_invalid"
    # Only that session ended.
    assert (await api.call("GET", "/api/auth/me", headers=_bearer(second["token"])))[0] == 200


async def test_a_deactivated_users_token_stops_working(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    api.client.session.cookie_jar.clear()
    assert (await api.call("GET", "/api/tickets", agent))[0] == 200
    status, body = await api.call(
        "PATCH", f"/api/users/{agent.id}", api.admin, json={"active": False}
    )
    assert status == 200 and body["active"] is False
    status, body = await api.call("GET", "/api/tickets", agent)
    assert status == 401 and _error_id(body) == "session_invalid"
    status, body = await api.login(agent.username, STRONG_PASSWORD)
    assert status == 401 and _error_id(body) == "login_failed"


async def test_an_expired_session_is_rejected(api: Api) -> None:
    assert api.admin is not None
    api.client.session.cookie_jar.clear()
    token = "expired-session-token-for-tests-0123456789"
    now = utcnow()
    async with api.client.server.app[keys.SESSIONMAKER]() as db:
        db.add(
            AuthSession(
                token_hash=token_digest(token),
                csrf_token="csrf",
                user_id=api.admin.id,
                created_at=now - timedelta(hours=13),
                expires_at=now - timedelta(seconds=1),
            )
        )
        await db.commit()
    status, body = await api.call("GET", "/api/auth/me", headers=_bearer(token))
    assert status == 401 and _error_id(body) == "session_invalid"


async def test_a_session_ends_when_its_lifetime_is_over(api: Api) -> None:
    _, body = await api.login("root-admin", STRONG_PASSWORD)
    auth = api.client.server.app[keys.AUTH]
    ttl = timedelta(hours=api.client.server.app[keys.SETTINGS].session_ttl_hours)
    assert await auth.authenticate(body["token"], now=utcnow()) is not None
    assert await auth.authenticate(body["token"], now=utcnow() + ttl + timedelta(seconds=1)) is None


async def test_requests_without_a_token_or_with_a_made_up_one_get_401(api: Api) -> None:
    api.client.session.cookie_jar.clear()
    status, body = await api.call("GET", "/api/auth/me")
    assert status == 401 and _error_id(body) == "not_authenticated"
    status, body = await api.call("GET", "/api/auth/me", headers=_bearer("made-up"))
    assert status == 401 and _error_id(body) == "session_invalid"
    status, body = await api.call("GET", "/api/auth/me", headers=_bearer("x" * 300))
    assert status == 401


# --- accounts: placement and uniqueness -------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"role": "county_admin"}, "county_code"),
        ({"role": "county_admin", "county_code": "441400"}, "county_code"),
        ({"role": "county_admin", "county_code": "999999"}, "county_code"),
        ({"role": "agent"}, "window_code"),
        ({"role": "agent", "window_code": "nowhere"}, "window_code"),
        ({"role": "expert", "county_code": "441481"}, "county_code"),
        ({"role": "agency", "window_code": "xingning"}, "window_code"),
        ({"role": "supervisor", "county_code": "441481"}, "county_code"),
    ],
)
async def test_role_placement_is_checked_when_an_account_is_created(
    api: Api, payload: dict[str, str], field: str
) -> None:
    before = await _count(api, "users")
    status, body = await api.call(
        "POST",
        "/api/users",
        api.admin,
        json={"username": "placed", "display_name": "Placed", **payload},
    )
    assert status == 422, body
    assert field in {d["field"] for d in body["error"]["details"]}
    assert await _count(api, "users") == before


async def test_county_admin_and_agent_are_created_with_their_placement(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/api/users",
        api.admin,
        json={
            "username": "xn-admin",
            "display_name": "兴宁管理员",
            "role": "county_admin",
            "county_code": "441481",
        },
    )
    assert status == 201, body
    assert (body["user"]["county_code"], body["user"]["window_code"]) == ("441481", None)
    status, body = await api.call(
        "POST",
        "/api/users",
        api.admin,
        json={
            "username": "xn-agent",
            "display_name": "兴宁坐席",
            "role": "agent",
            "window_code": "xingning",
        },
    )
    assert status == 201, body
    assert (body["user"]["county_code"], body["user"]["window_code"]) == (None, "xingning")


async def test_a_duplicate_username_is_a_409(api: Api) -> None:
    await _new_account(api, "zhou.min")
    before = await _count(api, "users")
    status, body = await api.call(
        "POST",
        "/api/users",
        api.admin,
        json={"username": "zhou.min", "display_name": "另一个", "role": "analyst"},
    )
    assert status == 409, body
    assert _error_id(body) == "username_taken"
    assert await _count(api, "users") == before


async def test_a_password_is_taken_exactly_as_typed_including_spaces(api: Api) -> None:
    user = await api.user("agent", window_code="xingning")
    spaced = "  Hakka tulou 1949  "
    status, _ = await api.call(
        "POST",
        "/api/auth/password",
        user,
        json={"current_password": STRONG_PASSWORD, "new_password": spaced},
    )
    assert status == 204
    status, _ = await api.login(user.username, spaced.strip())
    assert status == 401
    status, _ = await api.login(user.username, spaced)
    assert status == 200


async def test_a_logout_on_one_process_reaches_another_within_the_session_cache_time(
    settings: Any, aiohttp_client: Any
) -> None:
    import time as time_module

    from smeline.app import create_app
    from tests.conftest import make_settings

    short = make_settings(settings.database_url, session_cache_seconds=0.3)
    api_a = Api(await aiohttp_client(create_app(short, background=False)))
    client_b = await aiohttp_client(create_app(short, background=False))
    admin = await api_a.bootstrap_admin()
    resp = await client_b.get("/api/auth/me", headers=admin.headers)
    assert resp.status == 200  # now cached in process B
    status, _ = await api_a.call("POST", "/api/auth/logout", admin)
    assert status == 204
    status, _ = await api_a.call("GET", "/api/auth/me", admin)
    assert status == 401  # process A forgets at once
    deadline = time_module.monotonic() + 5
    while True:
        resp = await client_b.get("/api/auth/me", headers=admin.headers)
        if resp.status == 401:
            break
        assert time_module.monotonic() < deadline, "process B kept a logged-out session"
