"""Bad input at every write endpoint: refused with a JSON error, never a 500, nothing stored."""

from __future__ import annotations

import itertools
from typing import Any

import asyncpg

from smeline import keys
from tests.conftest import STRONG_PASSWORD, Api, row_counts, ticket_payload

VALID_CREDIT_CODE = "91350100M000100Y43"


def assert_error(
    status: int,
    body: Any,
    expected: int,
    error_id: str | None = None,
    field: str | None = None,
    where: str = "",
) -> None:
    assert status == expected, (where, status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, (where, body)
    error = body["error"]
    assert {"id", "message"} <= set(error) <= {"id", "message", "details"}, (where, error)
    assert isinstance(error["id"], str) and isinstance(error["message"], str), where
    if error_id is not None:
        assert error["id"] == error_id, (where, error)
    if field is not None:
        named = {str(d["field"]).split(".")[0] for d in error["details"]}
        assert field in named, (where, error)


async def open_ticket(api: Api, **overrides: Any) -> dict[str, Any]:
    status, ticket = await api.call(
        "POST", "/api/tickets", api.admin, json=ticket_payload(**overrides)
    )
    assert status == 201, ticket
    return ticket


async def send_raw(
    api: Api, method: str, path: str, data: bytes, content_type: str | None, auth: bool = True
) -> tuple[int, Any]:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if auth:
        assert api.admin is not None
        headers.update(api.admin.headers)
    resp = await api.client.request(method, path, data=data, headers=headers)
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


# --- field-level problems, per endpoint -------------------------------------------------

LONG = "长" * 201


def _without(name: str) -> dict[str, Any]:
    payload = ticket_payload()
    del payload[name]
    return payload


CREATE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("priority as a number", ticket_payload(priority=5), "priority"),
    ("assignee as a string", ticket_payload(assignee_id="3"), "assignee_id"),
    ("assignee as a boolean", ticket_payload(assignee_id=True), "assignee_id"),
    ("assignee as a float", ticket_payload(assignee_id=3.0), "assignee_id"),
    ("assignee zero", ticket_payload(assignee_id=0), "assignee_id"),
    ("assignee beyond bigint", ticket_payload(assignee_id=10**20), "assignee_id"),
    ("assignee nobody", ticket_payload(assignee_id=987654), "assignee_id"),
    ("subject as a list", ticket_payload(subject=["咨询"]), "subject"),
    ("phone as a number", ticket_payload(contact_phone=13800001234), "contact_phone"),
    ("links as a string", ticket_payload(links="call"), "links"),
    ("link of an unknown kind", ticket_payload(links=[{"kind": "fax", "ref": "1"}]), "links"),
    ("missing subject", _without("subject"), "subject"),
    ("missing description", _without("description"), "description"),
    ("missing source", _without("source"), "source"),
    ("missing category", _without("category_code"), "category_code"),
    ("unknown field", ticket_payload(urgent=True), "urgent"),
    ("null subject", ticket_payload(subject=None), "subject"),
    ("null source", ticket_payload(source=None), "source"),
    ("null priority", ticket_payload(priority=None), "priority"),
    ("null links", ticket_payload(links=None), "links"),
    ("blank subject", ticket_payload(subject="   "), "subject"),
    ("oversized subject", ticket_payload(subject=LONG), "subject"),
    ("oversized description", ticket_payload(description="x" * 20_001), "description"),
    ("oversized enterprise", ticket_payload(enterprise_name=LONG), "enterprise_name"),
    ("too many links", ticket_payload(links=[{"kind": "call", "ref": "1"}] * 21), "links"),
    ("unknown priority", ticket_payload(priority="critical"), "priority"),
    ("unknown source", ticket_payload(source="fax"), "source"),
    ("unknown service mode", ticket_payload(service_mode="remote"), "service_mode"),
    ("bad phone", ticket_payload(contact_phone="call me maybe"), "contact_phone"),
    ("bad email", ticket_payload(contact_email="li@"), "contact_email"),
    ("NUL in text", ticket_payload(subject="咨询\u0000贷款"), "subject"),
    (
        "credit code check character",
        ticket_payload(credit_code="91350100M000100Y44"),
        "credit_code",
    ),
    ("credit code too short", ticket_payload(credit_code="91350100M000100Y4"), "credit_code"),
    ("credit code too long", ticket_payload(credit_code="91350100M000100Y431"), "credit_code"),
    ("credit code with I", ticket_payload(credit_code="91350100I000100Y43"), "credit_code"),
    ("credit code with O", ticket_payload(credit_code="91350100M0O0100Y43"), "credit_code"),
    (
        "credit code full-width",
        ticket_payload(credit_code="９１３５０１００Ｍ０００１００Ｙ４３"),
        "credit_code",
    ),
    ("unknown category", ticket_payload(category_code="astrology"), "category_code"),
    ("unknown county", ticket_payload(county_code="999999"), "county_code"),
    ("malformed county", ticket_payload(county_code="4414"), "county_code"),
    ("unknown window", ticket_payload(window_code="nowhere"), "window_code"),
    ("unknown channel", ticket_payload(channel_code="pigeon"), "channel_code"),
]


async def test_opening_a_work_order_with_bad_fields_is_refused(api: Api) -> None:
    for name, payload, field in CREATE_CASES:
        before = await row_counts(api)
        status, body = await api.call("POST", "/api/tickets", api.admin, json=payload)
        assert_error(status, body, 422, field=field, where=name)
        assert await row_counts(api) == before, name


UPDATE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("priority as a number", {"priority": 5}, "priority"),
    ("subject as a list", {"subject": ["a", "b"]}, "subject"),
    ("null subject", {"subject": None}, "subject"),
    ("null category", {"category_code": None}, "category_code"),
    ("null priority", {"priority": None}, "priority"),
    ("null links", {"links": None}, "links"),
    ("unknown field", {"status": "closed"}, "status"),
    ("oversized subject", {"subject": LONG}, "subject"),
    ("oversized note", {"priority": "high", "note": "x" * 5_001}, "note"),
    ("credit code check character", {"credit_code": "91350100M000100Y44"}, "credit_code"),
    ("unknown category", {"category_code": "astrology"}, "category_code"),
    ("unknown channel", {"channel_code": "pigeon"}, "channel_code"),
    ("bad email", {"contact_email": "<script>@x"}, "contact_email"),
    ("NUL in text", {"description": "\u0000"}, "description"),
]


async def test_changing_a_work_order_with_bad_fields_is_refused(api: Api) -> None:
    ticket = await open_ticket(api)
    for name, payload, field in UPDATE_CASES:
        before = await row_counts(api)
        status, body = await api.call(
            "PATCH", f"/api/tickets/{ticket['id']}", api.admin, json=payload
        )
        assert_error(status, body, 422, field=field, where=name)
        assert await row_counts(api) == before, name
    _, after = await api.call("GET", f"/api/tickets/{ticket['id']}", api.admin)
    after["sla"]["resolution"].pop("elapsed_business_minutes")
    ticket["sla"]["resolution"].pop("elapsed_business_minutes")
    assert after == ticket


ACTION_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown action", {"action": "explode"}, "action"),
    ("action as a number", {"action": 5}, "action"),
    ("null action", {"action": None}, "action"),
    ("missing action", {"note": "x"}, "action"),
    ("unknown field", {"action": "wait_customer", "force": True}, "force"),
    ("assignee as a string", {"action": "assign", "assignee_id": "3"}, "assignee_id"),
    ("assignee beyond bigint", {"action": "assign", "assignee_id": 10**20}, "assignee_id"),
    ("assign without assignee", {"action": "assign"}, "assignee_id"),
    ("assign to nobody", {"action": "assign", "assignee_id": 987654}, "assignee_id"),
    ("transfer target as a list", {"action": "transfer", "to_user_id": [1]}, "to_user_id"),
    ("transfer beyond bigint", {"action": "transfer", "to_user_id": 10**20}, "to_user_id"),
    ("transfer without target", {"action": "transfer"}, "to_user_id"),
    ("transfer to nobody", {"action": "transfer", "to_user_id": 987654}, "to_user_id"),
    ("resolve without resolution", {"action": "resolve"}, "resolution"),
    ("resolve with empty resolution", {"action": "resolve", "resolution": ""}, "resolution"),
    ("oversized note", {"action": "wait_customer", "note": "x" * 5_001}, "note"),
    ("NUL in note", {"action": "wait_customer", "note": "a\u0000"}, "note"),
]


async def test_bad_actions_are_refused(api: Api) -> None:
    ticket = await open_ticket(api)
    status, started = await api.call(
        "POST", f"/api/tickets/{ticket['id']}/actions", api.admin, json={"action": "start"}
    )
    assert status == 200
    for name, payload, field in ACTION_CASES:
        before = await row_counts(api)
        status, body = await api.call(
            "POST", f"/api/tickets/{ticket['id']}/actions", api.admin, json=payload
        )
        assert_error(status, body, 422, field=field, where=name)
        assert await row_counts(api) == before, name
    _, after = await api.call("GET", f"/api/tickets/{ticket['id']}", api.admin)
    assert (after["status"], after["updated_at"]) == ("in_progress", started["updated_at"])


COMMENT_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown kind", {"kind": "shout", "body": "你好"}, "kind"),
    ("missing body", {"kind": "note"}, "body"),
    ("missing kind", {"body": "你好"}, "kind"),
    ("empty body", {"kind": "note", "body": ""}, "body"),
    ("blank body", {"kind": "note", "body": " \n\t "}, "body"),
    ("oversized body", {"kind": "reply", "body": "x" * 20_001}, "body"),
    ("body as a number", {"kind": "note", "body": 5}, "body"),
    ("body as a list", {"kind": "note", "body": ["a"]}, "body"),
    ("null body", {"kind": "note", "body": None}, "body"),
    ("unknown field", {"kind": "note", "body": "x", "author_id": 1}, "author_id"),
    ("NUL in body", {"kind": "note", "body": "\u0000"}, "body"),
]


async def test_bad_comments_are_refused(api: Api) -> None:
    ticket = await open_ticket(api)
    for name, payload, field in COMMENT_CASES:
        before = await row_counts(api)
        status, body = await api.call(
            "POST", f"/api/tickets/{ticket['id']}/comments", api.admin, json=payload
        )
        assert_error(status, body, 422, field=field, where=name)
        assert await row_counts(api) == before, name


def _user(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "username": "xn.agent",
        "display_name": "兴宁坐席",
        "role": "analyst",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not ...}


USER_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("username as a number", _user(username=5), "username"),
    ("username as a list", _user(username=["a"]), "username"),
    ("username with a space", _user(username="li ming"), "username"),
    ("username with markup", _user(username="<b>x</b>"), "username"),
    ("username too short", _user(username="ab"), "username"),
    ("username too long", _user(username="a" * 65), "username"),
    ("missing display name", _user(display_name=...), "display_name"),
    ("missing role", _user(role=...), "role"),
    ("null role", _user(role=None), "role"),
    ("unknown role", _user(role="root"), "role"),
    ("display name too long", _user(display_name="名" * 101), "display_name"),
    ("unknown field", _user(password="chosen-by-me-123"), "password"),
    ("active is not settable here", _user(active=False), "active"),
    ("bad phone", _user(phone="twelve"), "phone"),
    ("bad email", _user(email="x@"), "email"),
    ("county too long", _user(role="county_admin", county_code="4414810"), "county_code"),
    ("unknown county", _user(role="county_admin", county_code="999999"), "county_code"),
    ("county as a number", _user(role="county_admin", county_code=441481), "county_code"),
    ("unknown window", _user(role="agent", window_code="nowhere"), "window_code"),
    ("NUL in name", _user(display_name="李\u0000明"), "display_name"),
]


async def test_bad_accounts_are_refused(api: Api) -> None:
    for name, payload, field in USER_CASES:
        before = await row_counts(api)
        status, body = await api.call("POST", "/api/users", api.admin, json=payload)
        assert_error(status, body, 422, field=field, where=name)
        assert await row_counts(api) == before, name


LOGIN_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("username as a number", {"username": 5, "password": STRONG_PASSWORD}, "username"),
    ("username as a list", {"username": ["root-admin"], "password": "x"}, "username"),
    ("password as a number", {"username": "root-admin", "password": 123456}, "password"),
    ("missing password", {"username": "root-admin"}, "password"),
    ("missing username", {"password": STRONG_PASSWORD}, "username"),
    ("null password", {"username": "root-admin", "password": None}, "password"),
    ("unknown field", {"username": "root-admin", "password": "x", "remember": True}, "remember"),
    ("username too long", {"username": "a" * 65, "password": "x"}, "username"),
    ("password too long", {"username": "root-admin", "password": "x" * 257}, "password"),
    ("NUL in username", {"username": "root-admin\u0000", "password": "x"}, "username"),
]


async def test_bad_logins_are_refused_without_counting_as_failures(api: Api) -> None:
    for name, payload, field in LOGIN_CASES:
        before = await row_counts(api)
        status, body = await api.call("POST", "/api/auth/login", json=payload)
        assert_error(status, body, 422, field=field, where=name)
        assert await row_counts(api) == before, name


# --- body-level problems, at every write endpoint ---------------------------------------

WRITES = [
    ("POST", "/api/tickets"),
    ("PATCH", "/api/tickets/{id}"),
    ("POST", "/api/tickets/{id}/actions"),
    ("POST", "/api/tickets/{id}/comments"),
    ("POST", "/api/users"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/telephony/agents/me/login"),
    ("POST", "/api/telephony/agents/me/state"),
    ("POST", "/api/telephony/agents/1/pause"),
    ("POST", "/api/telephony/calls/cctest-1.0/spy"),
    ("POST", "/api/telephony/calls/cctest-1.0/transfer"),
]


def _bodies(max_body: int) -> list[tuple[str, bytes, str | None, int, str | None]]:
    oversized = b'{"subject": "' + b"x" * (max_body + 1) + b'"}'
    return [
        ("oversized", oversized, "application/json", 413, "body_too_large"),
        ("not JSON", b"{subject: hello", "application/json", 400, "invalid_json"),
        ("empty", b"", "application/json", 400, "invalid_json"),
        ("not UTF-8", b'{"subject": "\xff\xfe"}', "application/json", 400, "invalid_json"),
        ("nested too deep", b"[" * 100_000, "application/json", 400, "invalid_json"),
        (
            "object nested too deep",
            b'{"links": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            "application/json",
            400,
            "invalid_json",
        ),
        ("array", b"[]", "application/json", 422, "validation_failed"),
        (
            "array of objects",
            b'[{"action": "start"}]',
            "application/json",
            422,
            "validation_failed",
        ),
        ("string", b'"hello"', "application/json", 422, "validation_failed"),
        ("null", b"null", "application/json", 422, "validation_failed"),
        ("text content type", b"{}", "text/plain", 415, "unsupported_media_type"),
        ("form content type", b"a=1", "application/x-www-form-urlencoded", 415, None),
        ("no content type", b"{}", None, 415, "unsupported_media_type"),
    ]


async def test_malformed_bodies_get_a_json_error_and_change_nothing(api: Api) -> None:
    ticket = await open_ticket(api)
    max_body = api.client.server.app[keys.SETTINGS].max_body_bytes
    for case, data, content_type, expected, error_id in _bodies(max_body):
        for method, path in WRITES:
            before = await row_counts(api)
            status, body = await send_raw(
                api,
                method,
                path.format(id=ticket["id"]),
                data,
                content_type,
                auth=path != "/api/auth/login",
            )
            where = f"{case}: {method} {path}"
            assert_error(status, body, expected, error_id=error_id, where=where)
            assert await row_counts(api) == before, where


# --- unified social credit codes --------------------------------------------------------


async def test_a_lower_case_credit_code_is_accepted_and_stored_upper_case(api: Api) -> None:
    ticket = await open_ticket(api, credit_code=" 91350100m000100y43 ")
    assert ticket["credit_code"] == VALID_CREDIT_CODE
    url = api.client.server.app[keys.SETTINGS].database_url
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        stored = await conn.fetchval("SELECT credit_code FROM tickets WHERE id = $1", ticket["id"])
    finally:
        await conn.close()
    assert stored == VALID_CREDIT_CODE
    other = await open_ticket(api)
    status, changed = await api.call(
        "PATCH",
        f"/api/tickets/{other['id']}",
        api.admin,
        json={"credit_code": VALID_CREDIT_CODE.lower()},
    )
    assert status == 200 and changed["credit_code"] == VALID_CREDIT_CODE


# --- hostile text -----------------------------------------------------------------------

HOSTILE = {
    "subject": "<script>alert(1)</script>",
    "description": "'; DROP TABLE tickets; --",
    "enterprise_name": "Robert'); DROP TABLE users;-- 有限公司",
    "contact_name": '<img src=x onerror="alert(1)">',
}


async def test_hostile_text_is_stored_and_returned_verbatim_as_json(api: Api) -> None:
    ticket = await open_ticket(api, **HOSTILE)
    assert api.admin is not None
    resp = await api.client.get(f"/api/tickets/{ticket['id']}", headers=api.admin.headers)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert "text/html" not in resp.headers.get("Content-Type", "")
    got = await resp.json()
    for name, value in HOSTILE.items():
        assert got[name] == value
    status, comment = await api.call(
        "POST",
        f"/api/tickets/{ticket['id']}/comments",
        api.admin,
        json={"kind": "note", "body": HOSTILE["description"]},
    )
    assert status == 201 and comment["body"] == HOSTILE["description"]
    status, page = await api.call(
        "GET", "/api/tickets", api.admin, params={"q": HOSTILE["description"]}
    )
    assert status == 200 and page["items"] == []
    status, page = await api.call("GET", "/api/tickets", api.admin)
    assert [t["subject"] for t in page["items"]] == [HOSTILE["subject"]]
    assert (await row_counts(api))["users"] == 1


# --- path ids and query parameters ------------------------------------------------------

BAD_IDS = [
    "abc",
    "-1",
    "0",
    "1.5",
    "1e3",
    "%D9%A1",
    "99999999999999999999999",
    "999999999999999999",
]


async def test_non_numeric_or_huge_ids_in_the_path_are_404(api: Api) -> None:
    await open_ticket(api)
    before = await row_counts(api)
    for bad_id, (method, path, payload) in itertools.product(
        BAD_IDS,
        (
            ("GET", "/api/tickets/{}", None),
            ("GET", "/api/tickets/{}/history", None),
            ("GET", "/api/tickets/{}/comments", None),
            ("PATCH", "/api/tickets/{}", {"priority": "high"}),
            ("POST", "/api/tickets/{}/actions", {"action": "start"}),
            ("POST", "/api/tickets/{}/comments", {"kind": "note", "body": "x"}),
            ("POST", "/api/tickets/{}/shares", {"county_code": "441402"}),
            ("GET", "/api/users/{}", None),
            ("PATCH", "/api/users/{}", {"display_name": "x"}),
            ("POST", "/api/users/{}/reset-password", None),
            ("GET", "/api/tickets/by-ref/{}", None),
        ),
    ):
        status, body = await api.call(method, path.format(bad_id), api.admin, json=payload)
        assert_error(status, body, 404, where=f"{method} {path.format(bad_id)}")
    assert await row_counts(api) == before


BAD_QUERIES = [
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("limit=-1", "limit"),
    ("limit=abc", "limit"),
    ("limit=1&limit=2", "limit"),
    ("unknown=1", "unknown"),
    ("cursor=abc", "cursor"),
    ("cursor=-5", "cursor"),
    ("cursor=" + "9" * 30, "cursor"),
    ("assignee_id=abc", "assignee_id"),
    ("assignee_id=" + "9" * 30, "assignee_id"),
    ("status=bogus", "status"),
    ("county_code=12", "county_code"),
    ("priority=5", "priority"),
    ("due_before=2026-01-01T00:00", "due_before"),
    ("due_before=0001-01-01T00:00:00%2B14:00", "due_before"),
    ("due_before=9999-12-31T23:59:59-14:00", "due_before"),
    ("created_from=2026-13-01", "created_from"),
    ("created_from=0001-01-01", "created_from"),
    ("created_to=9999-12-31", "created_to"),
    ("q=%00", "q"),
    ("q=" + "x" * 101, "q"),
]


async def test_bad_query_parameters_on_the_work_order_list_are_422(api: Api) -> None:
    await open_ticket(api)
    for query, field in BAD_QUERIES:
        status, body = await api.call("GET", f"/api/tickets?{query}", api.admin)
        assert_error(status, body, 422, field=field, where=query)


async def test_bad_query_parameters_on_the_user_list_are_422(api: Api) -> None:
    for query, field in (
        ("role=root", "role"),
        ("active=maybe", "active"),
        ("county_code=%00", "county_code"),
        ("nickname=x", "nickname"),
    ):
        status, body = await api.call("GET", f"/api/users?{query}", api.admin)
        assert_error(status, body, 422, field=field, where=query)


async def test_a_cursor_from_the_list_pages_through_it(api: Api) -> None:
    ids = [(await open_ticket(api))["id"] for _ in range(3)]
    status, page = await api.call("GET", "/api/tickets?limit=2", api.admin)
    assert status == 200 and [t["id"] for t in page["items"]] == ids[:0:-1]
    status, rest = await api.call(
        "GET", "/api/tickets", api.admin, params={"limit": "2", "cursor": page["next_cursor"]}
    )
    assert status == 200 and [t["id"] for t in rest["items"]] == ids[:1]
    assert rest["next_cursor"] is None


async def test_a_method_the_route_does_not_have_is_a_json_405(api: Api) -> None:
    status, body = await api.call("DELETE", "/api/tickets", api.admin)
    assert_error(status, body, 405, error_id="method_not_allowed")


async def test_bad_share_targets_are_refused(api: Api) -> None:
    ticket = await open_ticket(api)
    before = await row_counts(api)
    for payload, field in (
        ({"county_code": "999999"}, "county_code"),
        ({"county_code": "44148"}, "county_code"),
        ({"user_id": "2"}, "user_id"),
        ({"user_id": 10**20}, "user_id"),
        ({"user_id": 987654}, "user_id"),
        ({}, "user_id"),
        ({"user_id": 1, "county_code": "441402"}, "user_id"),
    ):
        status, body = await api.call(
            "POST", f"/api/tickets/{ticket['id']}/shares", api.admin, json=payload
        )
        assert_error(status, body, 422, field=field, where=str(payload)[:60])
    assert await row_counts(api) == before
