"""The expert pool over HTTP: administrators manage it, the desk sees who can
be asked now for a category."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from smeline import keys
from smeline.app import create_app
from smeline.config import Settings
from smeline.db import utcnow
from smeline.expert_pool.schemas import WEEKDAYS
from smeline.expert_pool.services import ExpertService
from tests.conftest import Api, row_counts

ALWAYS = {day: [["00:00", "24:00"]] for day in WEEKDAYS}
NEVER: dict[str, list[list[str]]] = {}  # a schedule without a single day


@pytest.fixture
async def pool(settings: Settings, aiohttp_client: Any) -> Api:
    app = create_app(settings, background=False)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    api = Api(client)
    await api.bootstrap_admin()
    return api


def expert_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "王律师",
        "phone": "+86 138 0013 8000",
        "specialties": ["legal", "financing"],
        "schedule": ALWAYS,
    }
    payload.update(overrides)
    return payload


async def create(api: Api, **overrides: Any) -> dict[str, Any]:
    status, body = await api.call(
        "POST", "/api/experts", api.admin, json=expert_payload(**overrides)
    )
    assert status == 201, body
    return body  # type: ignore[no-any-return]


async def test_admin_adds_an_expert_and_the_desk_lists_it(pool: Api) -> None:
    body = await create(pool)
    assert body["phone_key"] == "13800138000"  # normalised, as routing keys are
    assert body["specialties"] == ["financing", "legal"]
    assert body["active"] is True and body["last_consulted_at"] is None
    agent = await pool.user("agent", window_code="xingning")
    status, listed = await pool.call("GET", "/api/experts", agent)
    assert status == 200 and [e["id"] for e in listed["items"]] == [body["id"]]


@pytest.mark.parametrize("role", ["agent", "supervisor", "county_admin", "expert"])
async def test_only_administrators_change_the_pool(pool: Api, role: str) -> None:
    expert = await create(pool)
    placement = {"agent": {"window_code": "xingning"}, "county_admin": {"county_code": "441481"}}
    actor = await pool.user(role, **placement.get(role, {}))
    before = await row_counts(pool)
    status, _ = await pool.call("POST", "/api/experts", actor, json=expert_payload())
    assert status == 403
    status, _ = await pool.call(
        "PATCH", f"/api/experts/{expert['id']}", actor, json={"active": False}
    )
    assert status == 403
    assert await row_counts(pool) == before


async def test_experts_and_agencies_do_not_see_the_pool(pool: Api) -> None:
    for role in ("expert", "agency", "analyst"):
        actor = await pool.user(role)
        status, _ = await pool.call("GET", "/api/experts", actor)
        assert status == 403
        status, _ = await pool.call("GET", "/api/experts/available?category=legal", actor)
        assert status == 403


async def test_patch_changes_only_what_is_given_and_null_schedule_means_business_hours(
    pool: Api,
) -> None:
    expert = await create(pool)
    status, body = await pool.call(
        "PATCH",
        f"/api/experts/{expert['id']}",
        pool.admin,
        json={"specialties": ["legal"], "schedule": {"tue": [["19:00", "21:00"]]}},
    )
    assert status == 200, body
    assert body["specialties"] == ["legal"] and body["name"] == "王律师"
    assert body["schedule"] == {"tue": [["19:00", "21:00"]]}
    status, body = await pool.call(
        "PATCH", f"/api/experts/{expert['id']}", pool.admin, json={"schedule": None}
    )
    assert status == 200 and body["schedule"] is None and body["specialties"] == ["legal"]
    status, body = await pool.call(
        "PATCH", "/api/experts/999999", pool.admin, json={"active": False}
    )
    assert status == 404 and body["error"]["id"] == "expert_not_found"


@pytest.mark.parametrize(
    "overrides",
    [
        {"specialties": ["astrology"]},
        {"specialties": []},
        {"phone": "not a number"},
        {"phone": 13800138000},
        {"name": ""},
        {"schedule": {"mon": [["09:00", "08:00"]]}},
        {"schedule": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
        {"schedule": {"mon": [["25:00", "26:00"]]}},
        {"schedule": {"mon": [["9:00", "12:00"]]}},
        {"schedule": {"mon": [["24:00", "24:00"]]}},
        {"schedule": {"moon": [["09:00", "12:00"]]}},
        {"schedule": {"mon": [["09:00"]]}},
        {"unknown": True},
        {"active": "yes"},
    ],
)
async def test_bad_expert_input_is_refused_and_changes_nothing(
    pool: Api, overrides: dict[str, Any]
) -> None:
    before = await row_counts(pool)
    status, body = await pool.call(
        "POST", "/api/experts", pool.admin, json=expert_payload(**overrides)
    )
    assert status == 422, body
    assert await row_counts(pool) == before


async def test_availability_shows_who_can_be_asked_now_fairest_first(pool: Api) -> None:
    busy = await create(pool, name="忙碌")
    off = await create(pool, name="下班", schedule=NEVER)
    other = await create(pool, name="财务", specialties=["financing"])
    free = await create(pool, name="空闲")
    retired = await create(pool, name="退休")
    await pool.call("PATCH", f"/api/experts/{retired['id']}", pool.admin, json={"active": False})
    app = pool.client.server.app
    experts = ExpertService(sessionmaker=app[keys.SESSIONMAKER])
    await experts.start_consultation(
        linkedid="call-1",
        target_kind="expert",
        target_ref=str(busy["id"]),
        expert_id=busy["id"],
        agent_user_id=None,
        at=utcnow(),
    )
    agent = await pool.user("agent", window_code="xingning")
    status, body = await pool.call("GET", "/api/experts/available?category=legal", agent)
    assert status == 200, body
    assert body["suggested_expert_id"] == free["id"]
    reasons = {e["id"]: e["reasons"] for e in body["experts"]}
    assert reasons == {
        free["id"]: [],
        busy["id"]: ["on_call"],
        off["id"]: ["off_schedule"],
        other["id"]: ["no_specialty"],
        retired["id"]: ["inactive"],
    }
    assert body["experts"][0]["id"] == free["id"] and body["experts"][0]["available"]


@pytest.mark.parametrize("query", ["", "?category=astrology", "?category=legal&x=1"])
async def test_availability_needs_a_known_category(pool: Api, query: str) -> None:
    agent = await pool.user("agent", window_code="xingning")
    status, body = await pool.call("GET", f"/api/experts/available{query}", agent)
    assert status == 422, body
