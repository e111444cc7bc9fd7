"""Wrap-ups (smeline/contacts): what an agent records after each call or
chat, the rule that it comes before the next contact, and a work order opened
from a contact in one call. Over the REST API, real PostgreSQL.

The services' clocks are set to a business day (web chat routes by opening
hours), moving on with real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from smeline import keys
from smeline.app import create_app
from smeline.contacts.services import ContactService
from smeline.contacts.setup import CONTACTS
from smeline.migrate import upgrade
from smeline.portal_bridge.models import Enterprise
from smeline.telephony.models import CallRecord
from smeline.webchat.services import ChatService
from smeline.webchat.setup import CHAT_SERVICE
from tests.conftest import Actor, Api, make_settings, row_counts, ticket_payload

WORKDAY = datetime(2025, 3, 12, 2, 0, tzinfo=UTC)  # 10:00 in Meizhou, a Wednesday
XINGNING_IP = "198.51.100.70"  # the example range of 兴宁


def running_from(base: datetime) -> Callable[[], datetime]:
    started = time.monotonic()
    return lambda: base + timedelta(seconds=time.monotonic() - started)


def services(api: Api) -> tuple[ChatService, ContactService]:
    app = api.client.server.app
    return app[CHAT_SERVICE], app[CONTACTS]


def on_a_workday(api: Api) -> Api:
    chat, contacts = services(api)
    chat.clock = contacts.clock = running_from(WORKDAY)
    return api


@pytest.fixture
def desk(api: Api) -> Api:
    return on_a_workday(api)


_calls = 0


async def answered_call(
    api: Api,
    agent: Actor,
    *,
    joint: bool = False,
    ended_ago: timedelta = timedelta(minutes=1),
    category_code: str | None = "financing",
    county_code: str = "441481",
    window: str = "xingning",
) -> str:
    global _calls
    _calls += 1
    linkedid = f"1741744800.{_calls}"
    _, contacts = services(api)
    ended = contacts.now() - ended_ago
    async with api.client.server.app[keys.SESSIONMAKER]() as db, db.begin():
        db.add(
            CallRecord(
                linkedid=linkedid,
                direction="inbound",
                caller_number="13800001234",
                caller_name="",
                county_code=county_code,
                category_code=category_code,
                windows=[window],
                queues=[window],
                started_at=ended - timedelta(minutes=4),
                queued_at=ended - timedelta(minutes=4),
                answered_at=ended - timedelta(minutes=3),
                ended_at=ended,
                talk_seconds=180,
                agent_interface=f"PJSIP/agent-{agent.id}",
                agent_user_id=agent.id,
                answered_window=window,
                outcome="answered",
                joint=joint,
            )
        )
    return linkedid


async def online_agent(api: Api, window: str = "xingning") -> Actor:
    agent = await api.user("agent", window_code=window)
    chat, _ = services(api)
    await chat.agent_online(agent.id, now=chat.now())
    return agent


async def start_chat(api: Api, **form: Any) -> dict[str, Any]:
    payload = {
        "name": "李先生",
        "company": "兴宁市某某电子有限公司",
        "phone": "13800001234",
        "category_code": "financing",
    }
    payload.update(form)
    status, body = await api.call(
        "POST", "/api/chat/start", json=payload, headers={"X-Forwarded-For": XINGNING_IP}
    )
    assert status == 201, body
    return body


async def served_and_closed_chat(api: Api, agent: Actor) -> int:
    started = await start_chat(api)
    assert started["state"] == "assigned", started
    chat_id = started["chat_id"]
    status, body = await api.call(
        "POST",
        f"/api/chat/{chat_id}/messages",
        json={"client_id": "v-1", "body": "想咨询贷款贴息的条件"},
        headers={"X-Chat-Token": started["token"]},
    )
    assert status == 201, body
    status, body = await api.call(
        "POST",
        f"/api/chats/{chat_id}/messages",
        agent,
        json={"client_id": "a-1", "body": "需要营业执照和近一年的流水"},
    )
    assert status == 201, body
    status, body = await api.call("POST", f"/api/chats/{chat_id}/close", agent)
    assert status == 200, body
    return int(chat_id)


def wrapup_of_call(linkedid: str, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "contact_kind": "call",
        "linkedid": linkedid,
        "enterprise_name": "兴宁市某某电子有限公司",
        "category_code": "financing",
        "service_mode": "online",
        "result": "resolved",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


async def pending(api: Api, agent: Actor) -> dict[str, Any]:
    status, body = await api.call("GET", "/api/contacts/wrapups/pending", agent)
    assert status == 200, body
    return body


# --- what is pending ---------------------------------------------------------------------


async def test_pending_lists_my_answered_calls_and_ended_chats_newest_first(desk: Api) -> None:
    agent = await online_agent(desk)
    colleague = await desk.user("agent", window_code="xingning")
    chat_id = await served_and_closed_chat(desk, agent)
    older = await answered_call(desk, agent, ended_ago=timedelta(minutes=30))
    await answered_call(desk, colleague)
    # Long ago: outside wrapup_pending_hours, no longer owed.
    await answered_call(desk, agent, ended_ago=timedelta(hours=13))
    mine = await pending(desk, agent)
    assert mine["required"] is True
    assert [(i["contact_kind"], i["chat_id"], i["linkedid"]) for i in mine["items"]] == [
        ("chat", chat_id, None),
        ("call", None, older),
    ]
    chat_item = mine["items"][0]
    assert chat_item["visitor_name"] == "李先生" and chat_item["county_code"] == "441481"
    assert chat_item["enterprise_name"] == "兴宁市某某电子有限公司"
    assert mine["items"][1]["caller"] == "13800001234"
    status, body = await desk.call(
        "POST", "/api/contacts/wrapups", agent, json=wrapup_of_call(older)
    )
    assert status == 201, body
    assert [i["chat_id"] for i in (await pending(desk, agent))["items"]] == [chat_id]


# --- recording one ------------------------------------------------------------------------


async def test_a_wrapup_is_recorded_once_per_contact_and_agent(desk: Api) -> None:
    agent = await desk.user("agent", window_code="xingning")
    linkedid = await answered_call(desk, agent)
    status, body = await desk.call(
        "POST", "/api/contacts/wrapups", agent, json=wrapup_of_call(linkedid)
    )
    assert status == 201, body
    assert body["contact_kind"] == "call" and body["linkedid"] == linkedid
    assert (body["agent_user_id"], body["window_code"], body["county_code"]) == (
        agent.id,
        "xingning",
        "441481",
    )
    assert (body["service_mode"], body["result"], body["ticket_id"]) == ("online", "resolved", None)
    before = await row_counts(desk)
    status, again = await desk.call(
        "POST", "/api/contacts/wrapups", agent, json=wrapup_of_call(linkedid, result="resolved")
    )
    assert status == 409 and again["error"]["id"] == "wrapup_exists", again
    assert await row_counts(desk) == before


async def test_an_escalated_call_is_joint_and_nothing_else(desk: Api) -> None:
    agent = await desk.user("agent", window_code="xingning")
    linkedid = await answered_call(desk, agent, joint=True)
    assert (await pending(desk, agent))["items"][0]["joint"] is True
    before = await row_counts(desk)
    for mode in ("online", "offline"):
        status, body = await desk.call(
            "POST", "/api/contacts/wrapups", agent, json=wrapup_of_call(linkedid, service_mode=mode)
        )
        assert status == 422, body
        assert body["error"]["details"][0]["type"] == "joint_fixed"
    assert await row_counts(desk) == before
    payload = wrapup_of_call(linkedid)
    del payload["service_mode"]
    status, body = await desk.call("POST", "/api/contacts/wrapups", agent, json=payload)
    assert status == 201 and body["service_mode"] == "joint", body


async def test_a_plain_contact_needs_its_service_mode(desk: Api) -> None:
    agent = await desk.user("agent", window_code="xingning")
    linkedid = await answered_call(desk, agent)
    payload = wrapup_of_call(linkedid)
    del payload["service_mode"]
    status, body = await desk.call("POST", "/api/contacts/wrapups", agent, json=payload)
    assert status == 422 and body["error"]["details"][0]["field"] == "service_mode", body
    status, body = await desk.call(
        "POST", "/api/contacts/wrapups", agent, json=wrapup_of_call(linkedid, service_mode="joint")
    )
    assert status == 201 and body["service_mode"] == "joint", body


async def test_a_portal_enterprise_may_be_linked_when_it_exists(desk: Api) -> None:
    agent = await desk.user("agent", window_code="xingning")
    async with desk.client.server.app[keys.SESSIONMAKER]() as db, db.begin():
        enterprise = Enterprise(name="兴宁市某某电子有限公司", county_code="441481")
        db.add(enterprise)
        await db.flush()
        enterprise_id = enterprise.id
    first = await answered_call(desk, agent)
    status, body = await desk.call(
        "POST",
        "/api/contacts/wrapups",
        agent,
        json=wrapup_of_call(first, enterprise_id=enterprise_id + 1000),
    )
    assert status == 422 and body["error"]["details"][0]["field"] == "enterprise_id", body
    status, body = await desk.call(
        "POST",
        "/api/contacts/wrapups",
        agent,
        json=wrapup_of_call(first, enterprise_id=enterprise_id),
    )
    assert status == 201 and body["enterprise_id"] == enterprise_id, body


async def test_an_agent_cannot_wrap_up_someone_elses_contact(desk: Api) -> None:
    agent = await online_agent(desk)
    other = await desk.user("agent", window_code="xingning")
    supervisor = await desk.user("supervisor")
    chat_id = await served_and_closed_chat(desk, agent)
    linkedid = await answered_call(desk, agent)
    before = await row_counts(desk)
    for actor in (other, supervisor):
        for payload in (
            wrapup_of_call(linkedid),
            wrapup_of_call(None, contact_kind="chat", chat_id=chat_id),
            wrapup_of_call("1741744800.999999"),  # no such call at all
        ):
            status, body = await desk.call("POST", "/api/contacts/wrapups", actor, json=payload)
            assert status == 404 and body["error"]["id"] == "contact_not_found", body
        status, body = await desk.call(
            "POST",
            "/api/contacts/ticket",
            actor,
            json={"contact_kind": "call", "linkedid": linkedid},
        )
        assert status == 404 and body["error"]["id"] == "contact_not_found", body
    assert await row_counts(desk) == before
    assert (await pending(desk, other))["items"] == []


@pytest.mark.parametrize(
    "change",
    [
        {"contact_kind": "visit"},
        {"contact_kind": "chat"},  # a chat named by linkedid
        {"chat_id": 5},  # both
        {"linkedid": None},
        {"linkedid": "../../etc/passwd"},
        {"linkedid": "x" * 65},
        {"enterprise_name": ""},
        {"enterprise_name": "企" * 201},
        {"enterprise_name": "兴宁\x1b[31m电子"},
        {"enterprise_name": "两行\n名称"},
        {"enterprise_name": 42},
        {"category_code": "nope"},
        {"category_code": "Financing!"},
        {"service_mode": "remote"},
        {"result": "done"},
        {"result": "ticket"},  # without the work order
        {"ticket_id": 1},  # resolved with a work order
        {"ticket_id": "1", "result": "ticket"},
        {"enterprise_id": 0},
        {"surprise": True},
    ],
)
async def test_bad_wrapups_get_a_clear_error_and_write_nothing(
    desk: Api, change: dict[str, Any]
) -> None:
    agent = await desk.user("agent", window_code="xingning")
    linkedid = await answered_call(desk, agent)
    payload = wrapup_of_call(linkedid)
    payload.update(change)
    payload = {k: v for k, v in payload.items() if v is not None}
    before = await row_counts(desk)
    status, body = await desk.call("POST", "/api/contacts/wrapups", agent, json=payload)
    assert status == 422, body
    assert set(body) == {"error"} and body["error"]["details"], body
    assert await row_counts(desk) == before


async def test_non_json_bodies_are_refused(desk: Api) -> None:
    agent = await desk.user("agent", window_code="xingning")
    for data, headers in (
        ("not json", {"Content-Type": "application/json"}),
        ("[]", {"Content-Type": "application/json"}),
        ('{"contact_kind": "call"}', {"Content-Type": "text/plain"}),
    ):
        status, body = await desk.call(
            "POST", "/api/contacts/wrapups", agent, data=data, headers=headers
        )
        assert status in (400, 415, 422) and "error" in body, body


# --- the rule: before the next contact ----------------------------------------------------


async def test_an_agent_owing_a_wrapup_gets_no_new_chat_until_it_is_in(desk: Api) -> None:
    agent = await online_agent(desk)
    chat_id = await served_and_closed_chat(desk, agent)
    # The automatic assignment skips them: the next chat waits.
    waiting = await start_chat(desk, name="王女士")
    assert waiting["state"] == "queued", waiting
    # And they cannot take it by hand.
    before = await row_counts(desk)
    status, body = await desk.call("POST", f"/api/chats/{waiting['chat_id']}/accept", agent)
    assert status == 409 and body["error"]["id"] == "wrapup_required", body
    assert body["error"]["details"] == {"pending": 1}
    assert await row_counts(desk) == before
    # Another agent of the window is free.
    colleague = await desk.user("agent", window_code="xingning")
    status, body = await desk.call("POST", f"/api/chats/{waiting['chat_id']}/accept", colleague)
    assert status == 200, body
    # Nor can the chat be handed over to them.
    before = await row_counts(desk)
    handover = {"to_user_id": agent.id}
    url = f"/api/chats/{waiting['chat_id']}/transfer"
    status, body = await desk.call("POST", url, colleague, json=handover)
    assert status == 409 and body["error"]["id"] == "wrapup_required", body
    assert await row_counts(desk) == before
    # Once the wrap-up is in, the next waiting chat is theirs.
    third = await start_chat(desk, name="张先生")
    assert third["state"] == "queued"
    status, body = await desk.call(
        "POST",
        "/api/contacts/wrapups",
        agent,
        json=wrapup_of_call(None, contact_kind="chat", chat_id=chat_id),
    )
    assert status == 201, body
    status, view = await desk.call("GET", f"/api/chats/{third['chat_id']}", agent)
    assert status == 200 and view["state"] == "assigned" and view["agent_id"] == agent.id, view


async def test_an_agent_owing_a_wrapup_cannot_say_ready_on_the_phone(desk: Api) -> None:
    agent = await desk.user("agent", window_code="xingning")
    linkedid = await answered_call(desk, agent)
    status, body = await desk.call(
        "POST", "/api/telephony/agents/me/state", agent, json={"action": "ready"}
    )
    assert status == 409 and body["error"]["id"] == "wrapup_required", body
    # A pause is always allowed (here: no Asterisk, so 503 — but not 409).
    status, body = await desk.call(
        "POST", "/api/telephony/agents/me/state", agent, json={"action": "pause", "reason": "x"}
    )
    assert status == 503, body
    status, body = await desk.call(
        "POST", "/api/contacts/wrapups", agent, json=wrapup_of_call(linkedid)
    )
    assert status == 201, body
    status, body = await desk.call(
        "POST", "/api/telephony/agents/me/state", agent, json={"action": "ready"}
    )
    assert status == 503 and body["error"]["id"] == "telephony_not_configured", body


async def test_a_window_may_make_the_wrapup_optional(
    database_url: str, aiohttp_client: Any
) -> None:
    settings = make_settings(database_url, wrapup_optional_windows=["xingning"])
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, background=False))
    api = Api(client)
    await api.bootstrap_admin()
    on_a_workday(api)
    agent = await online_agent(api)
    await served_and_closed_chat(api, agent)
    await answered_call(api, agent)
    mine = await pending(api, agent)
    assert mine["required"] is False and len(mine["items"]) == 2
    assert all(item["required"] is False for item in mine["items"])
    nxt = await start_chat(api, name="王女士")
    assert nxt["state"] == "assigned", nxt
    status, body = await api.call(
        "POST", "/api/telephony/agents/me/state", agent, json={"action": "ready"}
    )
    assert status == 503, body  # not 409: only Asterisk is missing here


# --- a work order from the contact --------------------------------------------------------


async def test_a_work_order_opened_from_a_chat_carries_its_transcript_and_link(
    desk: Api,
) -> None:
    agent = await online_agent(desk)
    chat_id = await served_and_closed_chat(desk, agent)
    before = await row_counts(desk)
    status, ticket = await desk.call(
        "POST", "/api/contacts/ticket", agent, json={"contact_kind": "chat", "chat_id": chat_id}
    )
    assert status == 201, ticket
    assert ticket["source"] == "web_chat"
    assert (ticket["category_code"], ticket["county_code"]) == ("financing", "441481")
    assert ticket["enterprise_name"] == "兴宁市某某电子有限公司"
    assert ticket["contact_name"] == "李先生" and ticket["contact_phone"] == "13800001234"
    assert {"kind": "chat", "ref": str(chat_id)} in ticket["links"]
    assert "想咨询贷款贴息的条件" in ticket["description"]
    assert "需要营业执照和近一年的流水" in ticket["description"]
    assert (await row_counts(desk))["tickets"] == before["tickets"] + 1
    # The wrap-up cites it: result "ticket".
    status, body = await desk.call(
        "POST",
        "/api/contacts/wrapups",
        agent,
        json=wrapup_of_call(
            None, contact_kind="chat", chat_id=chat_id, result="ticket", ticket_id=ticket["id"]
        ),
    )
    assert status == 201 and body["ticket_id"] == ticket["id"], body


async def test_a_work_order_opened_from_an_escalated_call_is_joint_and_links_the_call(
    desk: Api,
) -> None:
    agent = await desk.user("agent", window_code="xingning")
    linkedid = await answered_call(desk, agent, joint=True)
    status, ticket = await desk.call(
        "POST",
        "/api/contacts/ticket",
        agent,
        json={"contact_kind": "call", "linkedid": linkedid, "enterprise_name": "某某电子"},
    )
    assert status == 201, ticket
    assert ticket["source"] == "phone" and ticket["service_mode"] == "joint"
    assert ticket["window_code"] == "xingning" and ticket["enterprise_name"] == "某某电子"
    assert {"kind": "call", "ref": linkedid} in ticket["links"]
    assert linkedid in ticket["description"]
    # A call without a category needs one.
    bare = await answered_call(desk, agent, category_code=None)
    status, body = await desk.call(
        "POST", "/api/contacts/ticket", agent, json={"contact_kind": "call", "linkedid": bare}
    )
    assert status == 422 and body["error"]["details"][0]["field"] == "category_code", body
    status, body = await desk.call(
        "POST",
        "/api/contacts/ticket",
        agent,
        json={"contact_kind": "call", "linkedid": bare, "category_code": "legal"},
    )
    assert status == 201 and body["category_code"] == "legal", body


async def test_a_wrapup_cites_only_a_work_order_of_that_contact_in_my_scope(desk: Api) -> None:
    agent = await desk.user("agent", window_code="xingning")
    linkedid = await answered_call(desk, agent)
    # A 兴宁 work order about something else, and one of 梅江 the agent cannot see.
    status, unrelated = await desk.call("POST", "/api/tickets", agent, json=ticket_payload())
    assert status == 201, unrelated
    status, elsewhere = await desk.call(
        "POST",
        "/api/tickets",
        desk.admin,
        json=ticket_payload(county_code="441402", links=[{"kind": "call", "ref": linkedid}]),
    )
    assert status == 201, elsewhere
    before = await row_counts(desk)
    for ticket_id, kind in (
        (unrelated["id"], "not_linked"),
        (elsewhere["id"], "unknown"),
        (elsewhere["id"] + 1000, "unknown"),
    ):
        status, body = await desk.call(
            "POST",
            "/api/contacts/wrapups",
            agent,
            json=wrapup_of_call(linkedid, result="ticket", ticket_id=ticket_id),
        )
        assert status == 422, body
        assert body["error"]["details"][0] == {
            "field": "ticket_id",
            "type": kind,
            "message": body["error"]["details"][0]["message"],
        }
    assert await row_counts(desk) == before


async def test_roles_without_the_desk_have_no_wrapups(desk: Api) -> None:
    for role in ("expert", "agency", "analyst", "editor"):
        actor = await desk.user(role)
        status, body = await desk.call("GET", "/api/contacts/wrapups/pending", actor)
        assert status == 403, body


async def test_the_rule_and_the_wrapup_work_on_sqlite(tmp_path: Path, aiohttp_client: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/wrapups.db"
    await upgrade(url)
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(make_settings(url), background=False)
    )
    api = Api(client)
    await api.bootstrap_admin()
    on_a_workday(api)
    agent = await online_agent(api)
    chat_id = await served_and_closed_chat(api, agent)
    waiting = await start_chat(api, name="王女士")
    assert waiting["state"] == "queued"
    status, body = await api.call("POST", f"/api/chats/{waiting['chat_id']}/accept", agent)
    assert status == 409 and body["error"]["id"] == "wrapup_required", body
    assert [i["chat_id"] for i in (await pending(api, agent))["items"]] == [chat_id]
    status, body = await api.call(
        "POST",
        "/api/contacts/wrapups",
        agent,
        json=wrapup_of_call(None, contact_kind="chat", chat_id=chat_id),
    )
    assert status == 201, body
    status, body = await api.call(
        "POST",
        "/api/contacts/wrapups",
        agent,
        json=wrapup_of_call(None, contact_kind="chat", chat_id=chat_id),
    )
    assert status == 409 and body["error"]["id"] == "wrapup_exists", body
    status, view = await api.call("GET", f"/api/chats/{waiting['chat_id']}", agent)
    assert view["state"] == "assigned" and view["agent_id"] == agent.id, view
