"""Web chat over the REST API: a visitor starts, is routed, talks, leaves a
message or rates; an agent lists, accepts, replies, transfers, closes.

Routing depends on the hour: the service's clock is set to a business day
(Wednesday 12 March 2025, 10:00 in Meizhou), moving on with real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from smeline import keys
from smeline.bus import Envelope
from smeline.portal_bridge.models import Member
from smeline.reference.models import Window
from smeline.routing.models import CallerProfile
from smeline.webchat.models import ChatMessage
from smeline.webchat.services import ChatService
from smeline.webchat.setup import CHAT_SERVICE
from tests.conftest import Actor, Api, row_counts

WORKDAY = datetime(2025, 3, 12, 2, 0, tzinfo=UTC)  # 10:00 Asia/Shanghai, a Wednesday
NIGHT = datetime(2025, 3, 12, 14, 0, tzinfo=UTC)  # 22:00

XINGNING_IP = "198.51.100.70"  # the example range of 兴宁 (RFC 5737 documentation network)
MEIZHOU_IP = "14.21.0.5"  # 梅州市 in ip2region's data, not in the table
OUTSIDE_IP = "113.96.0.1"  # 广州市


def running_from(base: datetime) -> Callable[[], datetime]:
    started = time.monotonic()
    return lambda: base + timedelta(seconds=time.monotonic() - started)


def chat_service(api: Api) -> ChatService:
    return api.client.server.app[CHAT_SERVICE]


@pytest.fixture
def chat(api: Api) -> ChatService:
    svc = chat_service(api)
    svc.clock = running_from(WORKDAY)
    return svc


@pytest.fixture
def events(api: Api) -> list[Envelope]:
    seen: list[Envelope] = []

    async def collect(envelope: Envelope) -> None:
        if envelope.name.startswith("chat."):
            seen.append(envelope)

    api.client.server.app[keys.BUS].subscribe(collect)
    return seen


async def online_agent(api: Api, window: str, **kw: Any) -> Actor:
    agent = await api.user("agent", window_code=window, **kw)
    svc = chat_service(api)
    await svc.agent_online(agent.id, now=svc.now())
    return agent


def form(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "李先生",
        "company": "兴宁市某某电子有限公司",
        "phone": "13800001234",
        "category_code": "financing",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


async def start(api: Api, ip: str | None = None, **overrides: Any) -> dict[str, Any]:
    headers = {"X-Forwarded-For": ip} if ip else {}
    status, body = await api.call(
        "POST", "/api/chat/start", json=form(**overrides), headers=headers
    )
    assert status == 201, body
    return body


def visitor(started: dict[str, Any]) -> dict[str, str]:
    return {"X-Chat-Token": started["token"]}


async def say(api: Api, started: dict[str, Any], client_id: str, body: str) -> tuple[int, Any]:
    return await api.call(
        "POST",
        f"/api/chat/{started['chat_id']}/messages",
        json={"client_id": client_id, "body": body},
        headers=visitor(started),
    )


# --- routing ---------------------------------------------------------------------------------


async def test_visitor_in_xingnings_ip_range_reaches_the_xingning_agent_only(
    api: Api, chat: ChatService, events: list[Envelope]
) -> None:
    xingning = await online_agent(api, "xingning")
    meijiang = await online_agent(api, "meijiang")
    started = await start(api, ip=XINGNING_IP, phone=None)
    assert started["routing_reason"] == "ip"
    assert (started["window_code"], started["county_code"]) == ("xingning", "441481")
    assert started["state"] == "assigned" and not started["overflowed"]
    assigned = [e for e in events if e.name == "chat.assigned"]
    assert [e.payload["agent_id"] for e in assigned] == [xingning.id]
    # The meijiang agent neither sees it nor can open it.
    status, page = await api.call("GET", "/api/chats", meijiang)
    assert status == 200 and page["items"] == []
    status, body = await api.call("GET", f"/api/chats/{started['chat_id']}", meijiang)
    assert status == 404 and body["error"]["id"] == "chat_not_found"
    status, page = await api.call("GET", "/api/chats", xingning, params={"mine": "true"})
    assert [c["id"] for c in page["items"]] == [started["chat_id"]]
    assert page["items"][0]["visitor_ip"] == XINGNING_IP


async def test_meizhou_address_outside_the_table_goes_to_the_city(
    api: Api, chat: ChatService
) -> None:
    await online_agent(api, "city")
    await online_agent(api, "xingning")
    started = await start(api, ip=MEIZHOU_IP, phone=None)
    assert (started["routing_reason"], started["window_code"]) == ("city_default", "city")
    assert started["ip_area"] == "meizhou"


async def test_outside_address_goes_to_the_city(api: Api, chat: ChatService) -> None:
    await online_agent(api, "city")
    started = await start(api, ip=OUTSIDE_IP, phone=None)
    assert (started["routing_reason"], started["window_code"]) == ("city_default", "city")
    assert started["ip_area"] == "outside"


async def test_an_untrusted_peer_cannot_choose_its_address(api: Api, chat: ChatService) -> None:
    await online_agent(api, "city")
    await online_agent(api, "xingning")
    # A client's own X-Forwarded-For behind the proxy: the proxy appends the
    # real peer, and only the hop nearest us that is not a proxy counts.
    started = await start(api, ip=f"{XINGNING_IP}, {OUTSIDE_IP}", phone=None)
    assert started["ip_area"] == "outside" and started["window_code"] == "city"


async def test_member_then_form_then_phone_then_address(api: Api, chat: ChatService) -> None:
    for window in ("wuhua", "meijiang", "pingyuan", "xingning"):
        await online_agent(api, window)
    async with chat._sessionmaker() as db, db.begin():
        member = Member(name="会员", county_code="441424", phone_key="")
        db.add(member)
        db.add(CallerProfile(phone_key="13800001234", county_code="441426", source="ivr"))
        await db.flush()
        member_id = member.id
    cases = [
        ({"member_id": member_id, "county_code": "441402"}, "member", "wuhua"),
        ({"county_code": "441402"}, "form", "meijiang"),
        ({}, "caller_profile", "pingyuan"),
        ({"phone": None}, "ip", "xingning"),
    ]
    for overrides, reason, window in cases:
        started = await start(api, ip=XINGNING_IP, **overrides)
        assert (started["routing_reason"], started["window_code"]) == (reason, window), overrides


async def test_a_window_out_of_hours_or_without_agents_overflows_to_the_city(
    api: Api, chat: ChatService
) -> None:
    await online_agent(api, "city")
    # Nobody online in 兴宁.
    started = await start(api, county_code="441481")
    assert (started["window_code"], started["wanted_window_code"]) == ("city", "xingning")
    assert started["overflowed"]
    # An agent online, but the window's own hours are over.
    await online_agent(api, "xingning")
    async with chat._sessionmaker() as db, db.begin():
        await db.execute(
            update(Window).where(Window.code == "xingning").values(hours=[["08:00", "09:00"]])
        )
    await api.client.server.app[keys.REFERENCE].load()
    started = await start(api, county_code="441481")
    assert (started["window_code"], started["overflowed"]) == ("city", True)


async def test_all_closed_means_leave_a_message_and_get_a_work_order_reference(
    api: Api, chat: ChatService, events: list[Envelope]
) -> None:
    await online_agent(api, "city")
    chat.clock = running_from(NIGHT)
    started = await start(api, county_code="441481")
    assert started["closed"] and started["state"] == "ended"
    assert started["queue_position"] is None
    path = f"/api/chat/{started['chat_id']}/leave-message"
    status, left = await api.call(
        "POST", path, json={"body": "想咨询贷款贴息，请回电。"}, headers=visitor(started)
    )
    assert status == 201, left
    assert left["state"] == "left_message" and len(left["ticket_ref"]) == 8
    status, ticket = await api.call("GET", f"/api/tickets/by-ref/{left['ticket_ref']}", api.admin)
    assert status == 200, ticket
    assert ticket["source"] == "web_chat" and ticket["window_code"] == "xingning"
    assert ticket["links"] == [{"kind": "chat", "ref": str(started["chat_id"])}]
    assert "想咨询贷款贴息" in ticket["description"]
    # Asking again files nothing new.
    before = await row_counts(api)
    status, again = await api.call(
        "POST", path, json={"body": "再说一遍"}, headers=visitor(started)
    )
    assert status == 200 and again["ticket_ref"] == left["ticket_ref"]
    assert await row_counts(api) == before
    status, seen = await api.call(
        "GET", f"/api/chat/{started['chat_id']}", headers=visitor(started)
    )
    assert seen["ticket_ref"] == left["ticket_ref"]
    assert [e.name for e in events] == ["chat.ended"]


async def test_waiting_visitors_see_their_queue_position(api: Api, chat: ChatService) -> None:
    agent = await online_agent(api, "city")
    svc = chat_service(api)
    await svc.set_capacity(agent.id, 1, now=svc.now())
    first = await start(api, ip=OUTSIDE_IP)
    second = await start(api, ip=OUTSIDE_IP)
    third = await start(api, ip=OUTSIDE_IP)
    assert first["state"] == "assigned"
    assert (second["queue_position"], third["queue_position"]) == (1, 2)
    status, body = await api.call("GET", f"/api/chat/{third['chat_id']}", headers=visitor(third))
    assert status == 200 and body["queue_position"] == 2 and body["state"] == "queued"
    # The waiting visitor gives up and leaves a message: the queue moves up.
    status, _ = await api.call(
        "POST",
        f"/api/chat/{second['chat_id']}/leave-message",
        json={"body": "不等了，请回电"},
        headers=visitor(second),
    )
    assert status == 201
    status, body = await api.call("GET", f"/api/chat/{third['chat_id']}", headers=visitor(third))
    assert body["queue_position"] == 1


# --- messages --------------------------------------------------------------------------------


async def test_a_resent_message_is_stored_once_and_refetched_after_a_seq(
    api: Api, chat: ChatService, events: list[Envelope]
) -> None:
    await online_agent(api, "xingning")
    started = await start(api, ip=XINGNING_IP)
    status, first = await say(api, started, "v-1", "你好，想问贴息")
    assert status == 201, first
    status, again = await say(api, started, "v-1", "你好，想问贴息")
    assert status == 200 and again["seq"] == first["seq"]
    status, second = await say(api, started, "v-2", "第二句")
    assert status == 201 and second["seq"] == first["seq"] + 1
    path = f"/api/chat/{started['chat_id']}/messages"
    status, page = await api.call("GET", path, params={"since": "0"}, headers=visitor(started))
    assert status == 200
    kinds = [(m["sender_kind"], m["body"]) for m in page["items"]]
    assert ("visitor", "你好，想问贴息") in kinds and kinds[-1] == ("visitor", "第二句")
    assert page["last_seq"] == second["seq"]
    status, tail = await api.call(
        "GET", path, params={"since": str(first["seq"])}, headers=visitor(started)
    )
    assert [m["client_id"] for m in tail["items"]] == ["v-2"]
    visitor_lines = [
        e for e in events if e.name == "chat.message" and e.payload["sender_kind"] == "visitor"
    ]
    assert [e.payload["client_id"] for e in visitor_lines] == ["v-1", "v-2"]


async def test_a_visitor_token_opens_its_own_chat_and_no_other(api: Api, chat: ChatService) -> None:
    await online_agent(api, "city")
    mine = await start(api, ip=OUTSIDE_IP)
    other = await start(api, ip=OUTSIDE_IP)
    await say(api, other, "o-1", "别人的秘密")
    before = await row_counts(api)
    other_id = other["chat_id"]
    for method, sub, payload in (
        ("GET", "", None),
        ("GET", "/messages", None),
        ("POST", "/messages", {"client_id": "x-1", "body": "偷看"}),
        ("POST", "/leave-message", {"body": "冒名"}),
        ("POST", "/rating", {"satisfaction": "dissatisfied"}),
        ("POST", "/end", None),
    ):
        status, body = await api.call(
            method, f"/api/chat/{other_id}{sub}", json=payload, headers=visitor(mine)
        )
        assert status == 404, (method, sub, body)
        assert body["error"]["id"] == "chat_not_found"
        status, body = await api.call(method, f"/api/chat/{other_id}{sub}", json=payload)
        assert status == 401 and body["error"]["id"] == "chat_token_required"
        status, body = await api.call(
            method, f"/api/chat/{other_id}{sub}", json=payload, headers={"X-Chat-Token": "x" * 43}
        )
        assert status == 401 and body["error"]["id"] == "chat_token_invalid"
    # A staff login is no visitor token either.
    status, body = await api.call("GET", f"/api/chat/{other_id}", api.admin)
    assert status == 401
    assert await row_counts(api) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"client_id": "a", "body": ""}, "body"),
        ({"client_id": "a", "body": "响铃\x07"}, "body"),
        ({"client_id": "a", "body": "\x1b[31m红色"}, "body"),
        ({"client_id": "a", "body": 42}, "body"),
        ({"client_id": "a b", "body": "x"}, "client_id"),
        ({"client_id": "a" * 65, "body": "x"}, "client_id"),
        ({"body": "x"}, "client_id"),
        ({"client_id": "a", "body": "x", "html": "<b>"}, "html"),
    ],
)
async def test_bad_messages_get_a_clear_error_and_store_nothing(
    api: Api, chat: ChatService, payload: dict[str, Any], field: str
) -> None:
    await online_agent(api, "city")
    started = await start(api, ip=OUTSIDE_IP)
    before = await row_counts(api)
    status, body = await api.call(
        "POST", f"/api/chat/{started['chat_id']}/messages", json=payload, headers=visitor(started)
    )
    assert status == 422, body
    assert body["error"]["id"] == "validation_failed"
    assert field in {d["field"] for d in body["error"]["details"]}
    assert await row_counts(api) == before


async def test_newlines_and_tabs_are_text_and_html_is_kept_as_typed(
    api: Api, chat: ChatService
) -> None:
    await online_agent(api, "city")
    started = await start(api, ip=OUTSIDE_IP)
    status, line = await say(api, started, "t-1", "第一行\r\n\t<script>alert(1)</script>")
    assert status == 201, line
    # Stored as text; rendering it safely is the browser's job.
    assert line["body"] == "第一行\n\t<script>alert(1)</script>"


async def test_message_length_and_rate_limits_answer_clearly(api: Api, chat: ChatService) -> None:
    await online_agent(api, "city")
    started = await start(api, ip=OUTSIDE_IP)
    limit = chat.options.message_max_chars
    status, body = await say(api, started, "long", "长" * (limit + 1))
    assert status == 422 and body["error"]["id"] == "message_too_long"
    status, _ = await say(api, started, "fits", "长" * limit)
    assert status == 201
    # The clock stands still: every line falls in the same second.
    chat.clock = lambda: WORKDAY + timedelta(hours=1)
    statuses = []
    for i in range(chat.options.messages_per_second + 1):
        status, body = await say(api, started, f"burst-{i}", f"第{i}句")
        statuses.append(status)
    assert statuses == [201] * chat.options.messages_per_second + [429]
    assert body["error"]["id"] == "chat_rate_limited"
    # A resend of a stored line is not a new line: no limit applies.
    status, _ = await say(api, started, "burst-0", "第0句")
    assert status == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "名" * 65}, "name"),
        ({"name": "换\n行"}, "name"),
        ({"name": 7}, "name"),
        ({"phone": "13800001234; DROP"}, "phone"),
        ({"county_code": "4414811"}, "county_code"),
        ({"county_code": "110101"}, "county_code"),  # a real code, not Meizhou's
        ({"category_code": "astrology"}, "category_code"),
        ({"member_id": 0}, "member_id"),
        ({"member_id": "12"}, "member_id"),
        ({"admin": True}, "admin"),
    ],
)
async def test_a_bad_pre_chat_form_is_refused_and_leaves_nothing(
    api: Api, chat: ChatService, overrides: dict[str, Any], field: str
) -> None:
    before = await row_counts(api)
    status, body = await api.call("POST", "/api/chat/start", json={**form(), **overrides})
    assert status == 422, body
    assert field in {d["field"] for d in body["error"]["details"]}
    assert await row_counts(api) == before


async def test_non_json_bodies_are_refused(api: Api, chat: ChatService) -> None:
    status, body = await api.call("POST", "/api/chat/start", data=b"name=x")
    assert status == 415 and body["error"]["id"] == "unsupported_media_type"
    status, body = await api.call(
        "POST", "/api/chat/start", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and body["error"]["id"] == "invalid_json"


async def test_starting_many_chats_from_one_address_is_throttled(
    api: Api, chat: ChatService
) -> None:
    chat.options = type(chat.options)(starts_per_ip_per_minute=2)
    await start(api, ip=OUTSIDE_IP)
    await start(api, ip=OUTSIDE_IP)
    status, body = await api.call(
        "POST", "/api/chat/start", json=form(), headers={"X-Forwarded-For": OUTSIDE_IP}
    )
    assert status == 429 and body["error"]["id"] == "chat_start_throttled"
    await start(api, ip=MEIZHOU_IP)  # another address is not affected


# --- agents ----------------------------------------------------------------------------------


async def test_agent_takes_replies_and_closes_and_the_visitor_rates(
    api: Api, chat: ChatService, events: list[Envelope]
) -> None:
    holder = await online_agent(api, "xingning")
    await chat.set_capacity(holder.id, 1, now=chat.now())
    await start(api, ip=XINGNING_IP)  # takes the holder's only slot
    agent = await api.user("agent", window_code="xingning")
    started = await start(api, ip=XINGNING_IP)
    chat_id = started["chat_id"]
    assert started["state"] == "queued"
    status, queue = await api.call("GET", "/api/chats", agent, params={"state": "queued"})
    assert [c["id"] for c in queue["items"]] == [chat_id]
    assert queue["items"][0]["phone"] == "13800001234"
    status, taken = await api.call("POST", f"/api/chats/{chat_id}/accept", agent)
    assert status == 200, taken
    assert (taken["state"], taken["agent_id"]) == ("assigned", agent.id)
    status, body = await api.call("POST", f"/api/chats/{chat_id}/accept", agent)
    assert status == 409 and body["error"]["id"] == "chat_not_queued"
    reply = {"client_id": "a-1", "body": "您好，请讲。"}
    status, line = await api.call("POST", f"/api/chats/{chat_id}/messages", agent, json=reply)
    assert status == 201 and line["sender_name"] == agent.username
    status, again = await api.call("POST", f"/api/chats/{chat_id}/messages", agent, json=reply)
    assert status == 200 and again["seq"] == line["seq"]
    # Another agent of the window sees the chat but cannot speak in it.
    status, body = await api.call(
        "POST", f"/api/chats/{chat_id}/messages", holder, json={"client_id": "h", "body": "插话"}
    )
    assert status == 409 and body["error"]["id"] == "chat_not_yours"
    status, page = await api.call(
        "GET", f"/api/chat/{chat_id}/messages", params={"since": "0"}, headers=visitor(started)
    )
    assert ("agent", "您好，请讲。") in [(m["sender_kind"], m["body"]) for m in page["items"]]
    status, closed = await api.call("POST", f"/api/chats/{chat_id}/close", agent)
    assert status == 200 and closed["state"] == "ended"
    assert closed["satisfaction"] == "no_answer" and closed["first_agent_reply_at"]
    status, body = await say(api, started, "late", "还在吗")
    assert status == 409 and body["error"]["id"] == "chat_ended"
    rating = {"satisfaction": "satisfied", "comment": "很耐心"}
    status, rated = await api.call(
        "POST", f"/api/chat/{chat_id}/rating", json=rating, headers=visitor(started)
    )
    assert status == 200 and rated["satisfaction"] == "satisfied"
    status, body = await api.call(
        "POST", f"/api/chat/{chat_id}/rating", json=rating, headers=visitor(started)
    )
    assert status == 409 and body["error"]["id"] == "chat_already_rated"
    names = [e.name for e in events if e.payload["chat_id"] == chat_id]
    assert names[0] == "chat.queued" and "chat.assigned" in names
    assert names[-2:] == ["chat.ended", "chat.rated"]


async def test_a_visitor_who_leaves_without_rating_counts_as_no_answer(
    api: Api, chat: ChatService
) -> None:
    await online_agent(api, "city")
    started = await start(api, ip=OUTSIDE_IP)
    status, ended = await api.call(
        "POST", f"/api/chat/{started['chat_id']}/end", headers=visitor(started)
    )
    assert status == 200 and (ended["state"], ended["satisfaction"]) == ("ended", "no_answer")
    status, body = await api.call(
        "POST",
        f"/api/chat/{started['chat_id']}/rating",
        json={"satisfaction": "great"},
        headers=visitor(started),
    )
    assert status == 422


async def test_a_chat_nobody_served_cannot_be_rated(api: Api, chat: ChatService) -> None:
    chat.clock = running_from(NIGHT)
    started = await start(api)
    status, body = await api.call(
        "POST",
        f"/api/chat/{started['chat_id']}/rating",
        json={"satisfaction": "satisfied"},
        headers=visitor(started),
    )
    assert status == 409 and body["error"]["id"] == "chat_not_rateable"


async def test_transfer_to_another_agent_and_to_another_window(
    api: Api, chat: ChatService, events: list[Envelope]
) -> None:
    first = await online_agent(api, "xingning")
    started = await start(api, ip=XINGNING_IP)
    chat_id = started["chat_id"]
    second = await api.user("agent", window_code="xingning")
    status, moved = await api.call(
        "POST", f"/api/chats/{chat_id}/transfer", first, json={"to_user_id": second.id}
    )
    assert status == 200, moved
    assert moved["agent_id"] == second.id
    handed = [e for e in events if e.name == "chat.assigned"][-1]
    assert (handed.payload["agent_id"], handed.payload["previous_agent_id"]) == (
        second.id,
        first.id,
    )
    # The first agent no longer holds it.
    status, body = await api.call("POST", f"/api/chats/{chat_id}/close", first)
    assert status == 403 and body["error"]["id"] == "chat_not_yours"
    city = await online_agent(api, "city")
    status, moved = await api.call(
        "POST", f"/api/chats/{chat_id}/transfer", second, json={"window_code": "city"}
    )
    assert status == 200, moved
    assert (moved["window_code"], moved["agent_id"], moved["state"]) == (
        "city",
        city.id,
        "assigned",
    )
    for bad in ({}, {"to_user_id": city.id, "window_code": "city"}, {"window_code": "atlantis"}):
        before = await row_counts(api)
        status, body = await api.call("POST", f"/api/chats/{chat_id}/transfer", city, json=bad)
        assert status == 422, (bad, body)
        assert await row_counts(api) == before


async def test_an_agent_at_capacity_cannot_accept_more(api: Api, chat: ChatService) -> None:
    agent = await api.user("agent", window_code="city")
    await chat.set_capacity(agent.id, 1, now=chat.now())
    holder = await online_agent(api, "city")
    await chat.set_capacity(holder.id, 1, now=chat.now())
    await start(api, ip=OUTSIDE_IP)  # the holder's
    one = await start(api, ip=OUTSIDE_IP)
    two = await start(api, ip=OUTSIDE_IP)
    status, _ = await api.call("POST", f"/api/chats/{one['chat_id']}/accept", agent)
    assert status == 200
    status, body = await api.call("POST", f"/api/chats/{two['chat_id']}/accept", agent)
    assert status == 409 and body["error"]["id"] == "chat_capacity_full"
    status, seat = await api.call("GET", "/api/chats/seat", agent)
    assert seat == {
        "user_id": agent.id,
        "capacity": 1,
        "online": False,
        "active_chats": 1,
        "last_chat_at": seat["last_chat_at"],
    }


async def test_admins_edit_the_ip_table_and_routing_follows(api: Api, chat: ChatService) -> None:
    await online_agent(api, "dabu")
    status, ranges = await api.call("GET", "/api/webchat/ip-ranges", api.admin)
    assert status == 200 and all(r["example"] for r in ranges["items"])
    assert {"198.51.100.64/27", "441481"} <= {
        v for r in ranges["items"] for v in (r["cidr"], r["county_code"])
    }
    status, added = await api.call(
        "POST",
        "/api/webchat/ip-ranges",
        api.admin,
        json={"cidr": "14.21.0.7/24", "county_code": "441422", "note": "大埔政务网"},
    )
    assert status == 201 and added["cidr"] == "14.21.0.0/24" and not added["example"]
    started = await start(api, ip=MEIZHOU_IP, phone=None)
    assert (started["routing_reason"], started["window_code"]) == ("ip", "dabu")
    status, body = await api.call(
        "POST",
        "/api/webchat/ip-ranges",
        api.admin,
        json={"cidr": "14.21.0.0/24", "county_code": "441422"},
    )
    assert status == 409 and body["error"]["id"] == "ip_range_exists"
    for bad in (
        {"cidr": "14.21.0.300/24", "county_code": "441422"},
        {"cidr": "x", "county_code": "1"},
    ):
        status, body = await api.call("POST", "/api/webchat/ip-ranges", api.admin, json=bad)
        assert status == 422, body
    status, _ = await api.call("DELETE", f"/api/webchat/ip-ranges/{added['id']}", api.admin)
    assert status == 204
    started = await start(api, ip=MEIZHOU_IP, phone=None)
    assert started["routing_reason"] == "city_default"


async def test_canned_replies_of_my_window_and_for_all(api: Api, chat: ChatService) -> None:
    for window, title in ((None, "问候"), ("xingning", "兴宁地址"), ("meijiang", "梅江地址")):
        status, body = await api.call(
            "POST",
            "/api/webchat/canned-replies",
            api.admin,
            json={"window_code": window, "title": title, "body": f"{title}的内容"},
        )
        assert status == 201, body
    agent = await api.user("agent", window_code="xingning")
    status, page = await api.call("GET", "/api/webchat/canned-replies", agent)
    assert [r["title"] for r in page["items"]] == ["问候", "兴宁地址"]


async def test_chat_events_are_registered_with_typed_payloads(api: Api) -> None:
    registry = api.client.server.app[keys.EVENT_REGISTRY]
    schemas = registry.json_schemas()
    for name in ("chat.queued", "chat.assigned", "chat.message", "chat.ended", "chat.rated"):
        assert name in schemas
    assigned = schemas["chat.assigned"]
    assert "agent_id" in assigned["required"]
    assert assigned["properties"]["agent_id"]["type"] == "integer"
    for schema in schemas.values():
        assert "phone" not in schema.get("properties", {})
        assert "token" not in schema.get("properties", {})


async def test_system_lines_tell_the_visitor_who_took_the_chat(api: Api, chat: ChatService) -> None:
    agent = await online_agent(api, "xingning")
    started = await start(api, ip=XINGNING_IP)
    async with chat._sessionmaker() as db:
        lines = list(
            await db.scalars(
                select(ChatMessage.body).where(ChatMessage.chat_id == started["chat_id"])
            )
        )
    assert lines == [f"{agent.username}已接入，为您服务。"]
