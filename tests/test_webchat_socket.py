"""Web chat over socket.io (smeline/webchat/socket.py and the chat routes of
smeline/realtime/bridge.py): python-socketio clients against the service,
real PostgreSQL, real Redis for the two-process test.

"Hears nothing" is never proved by waiting: a marker pushed after the event
under test must arrive first, then what the socket heard is checked.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from smeline import keys
from smeline.app import create_app
from smeline.realtime.rooms import AGENT_NAMESPACE, VISITOR_NAMESPACE, agent_room, chat_room
from smeline.realtime.server import Realtime
from smeline.webchat.socket import (
    ChatAssignedOut,
    ChatEndedOut,
    ChatQueueOut,
    ChatStateOut,
    ChatTypingOut,
    FetchedOut,
    MessageOut,
    SentOut,
)
from tests.conftest import REDIS_URL, Actor, Api, make_settings
from tests.polling import until, until_async
from tests.socket_rig import Service, Sock, Sockets

WORKDAY = datetime(2025, 3, 12, 2, 0, tzinfo=UTC)  # 10:00 in Meizhou, a Wednesday
XINGNING_IP = "198.51.100.70"  # the example range of 兴宁


def running_from(base: datetime) -> Callable[[], datetime]:
    started = time.monotonic()
    return lambda: base + timedelta(seconds=time.monotonic() - started)


async def start_service(
    aiohttp_client: Any,
    database_url: str,
    *,
    bootstrap: bool = True,
    bus_channel: str | None = None,
    **overrides: Any,
) -> Service:
    app = create_app(make_settings(database_url, **overrides), background=False)
    if bus_channel is not None:
        # Our own bus channel: other test runs on this Redis do not reach us.
        app[keys.BUS].channel = bus_channel  # type: ignore[attr-defined]
    client = await aiohttp_client(app)
    api = Api(client)
    if bootstrap:
        await api.bootstrap_admin()
    service = Service(client=client, api=api)
    service.chat.clock = running_from(WORKDAY)
    return service


@pytest.fixture
async def svc(database_url: str, aiohttp_client: Any) -> Service:
    return await start_service(aiohttp_client, database_url)


async def console(service: Service, sockets: Sockets, agent: Actor, *, window: str) -> Sock:
    """An agent's console: online for chat, following their window's queue."""
    sock = await sockets.staff(service.url, AGENT_NAMESPACE, agent)
    joined = await sock.call("window.join", {"window_code": window})
    assert joined["ok"], joined

    async def online() -> bool:
        return (await service.chat.seat(agent.id)).online

    await until_async(online, what="the agent online for chat")
    return sock


async def start_chat(service: Service, ip: str, **form: Any) -> dict[str, Any]:
    payload = {"name": "李先生", "company": "兴宁市某某电子有限公司", "category_code": "financing"}
    payload.update(form)
    status, body = await service.api.call(
        "POST", "/api/chat/start", json=payload, headers={"X-Forwarded-For": ip}
    )
    assert status == 201, body
    return body


async def visitor(service: Service, sockets: Sockets, started: dict[str, Any]) -> Sock:
    return await sockets.connect(service.url, VISITOR_NAMESPACE, auth={"token": started["token"]})


def messages(sock: Sock, *, client_id: str | None = None) -> list[dict[str, Any]]:
    found = [MessageOut.model_validate(m) for m in sock.received("chat.message")]
    return [
        m.model_dump(mode="json") for m in found if client_id is None or m.client_id == client_id
    ]


async def mark(realtime: Realtime, sock: Sock, room: str) -> None:
    """Push a marker to ``room`` and wait until ``sock`` has it."""
    n = len(sock.received("test.marker"))
    await realtime.emit("test.marker", {"n": n}, namespace=sock.namespace, rooms=[room])
    await until(lambda: len(sock.received("test.marker")) > n, what="the marker")


# --- the conversation ----------------------------------------------------------------------


async def test_visitor_and_agent_talk_over_sockets_without_duplicates(
    svc: Service, sockets: Sockets
) -> None:
    agent = await svc.api.user("agent", window_code="xingning")
    desk = await console(svc, sockets, agent, window="xingning")
    started = await start_chat(svc, XINGNING_IP)
    assert started["state"] == "assigned"
    chat_id = started["chat_id"]
    # The screen pop of the chat, to this agent.
    await until(lambda: desk.received("chat.assigned"), what="the screen pop")
    pop = ChatAssignedOut.model_validate(desk.received("chat.assigned")[0])
    assert (pop.chat_id, pop.window_code, pop.routing_reason) == (chat_id, "xingning", "ip")
    assert (pop.visitor_name, pop.county_code) == ("李先生", "441481")

    widget = await visitor(svc, sockets, started)
    ack = await widget.call("chat.send", {"client_id": "v-1", "body": "想咨询贷款贴息"})
    assert ack["ok"], ack
    sent = SentOut.model_validate(ack["data"]).message
    assert (sent.chat_id, sent.sender_kind, sent.body) == (chat_id, "visitor", "想咨询贷款贴息")
    await until(lambda: messages(desk, client_id="v-1"), what="the agent hears the visitor")
    assert messages(desk, client_id="v-1") == [sent.model_dump(mode="json")]

    reply = await desk.call(
        "chat.reply", {"chat_id": chat_id, "client_id": "a-1", "body": "您好，请讲"}
    )
    assert reply["ok"], reply
    answer = SentOut.model_validate(reply["data"]).message
    assert (answer.sender_kind, answer.sender_name) == ("agent", agent.username)
    await until(lambda: messages(widget, client_id="a-1"), what="the visitor hears the agent")
    assert messages(widget, client_id="a-1") == [answer.model_dump(mode="json")]

    # A resend (the ack was lost) is the same line, stored and pushed once.
    again = await widget.call("chat.send", {"client_id": "v-1", "body": "想咨询贷款贴息"})
    assert SentOut.model_validate(again["data"]).message == sent
    replay = await desk.call(
        "chat.reply", {"chat_id": chat_id, "client_id": "a-1", "body": "您好，请讲"}
    )
    assert SentOut.model_validate(replay["data"]).message == answer
    await mark(svc.realtime, desk, agent_room(agent.id))
    await mark(svc.realtime, widget, chat_room(chat_id))
    assert len(messages(desk, client_id="v-1")) == 1
    assert len(messages(widget, client_id="a-1")) == 1
    fetched = FetchedOut.model_validate((await widget.call("chat.fetch", {"since": 0}))["data"])
    assert [m.client_id for m in fetched.messages].count("v-1") == 1
    assert fetched.state.state == "assigned" and fetched.state.agent_name == agent.username

    # Typing is pushed, never stored.
    assert (await widget.call("chat.typing", {"typing": True}))["ok"]
    await until(lambda: desk.received("chat.typing"), what="the agent sees typing")
    assert ChatTypingOut.model_validate(desk.received("chat.typing")[0]) == ChatTypingOut(
        chat_id=chat_id, sender_kind="visitor", typing=True
    )
    assert (await desk.call("chat.typing", {"chat_id": chat_id, "typing": True}))["ok"]
    await until(lambda: widget.received("chat.typing"), what="the visitor sees typing")
    after = FetchedOut.model_validate((await widget.call("chat.fetch", {"since": 0}))["data"])
    assert after.last_seq == fetched.last_seq

    # The agent closes: both sides hear the end.
    status, body = await svc.api.call("POST", f"/api/chats/{chat_id}/close", agent)
    assert status == 200, body
    await until(lambda: widget.received("chat.ended"), what="the visitor hears the end")
    await until(lambda: desk.received("chat.ended"), what="the agent hears the end")
    assert ChatEndedOut.model_validate(widget.received("chat.ended")[0]) == ChatEndedOut(
        chat_id=chat_id, reason="agent_closed"
    )
    states = [ChatStateOut.model_validate(s) for s in widget.received("chat.state")]
    assert states[-1].state == "ended"
    ended = await widget.call("chat.send", {"client_id": "v-2", "body": "还在吗"})
    assert not ended["ok"] and ended["error"]["code"] == "chat_ended"


async def test_after_a_dropped_connection_fetch_returns_exactly_what_was_missed(
    svc: Service, sockets: Sockets
) -> None:
    agent = await svc.api.user("agent", window_code="xingning")
    desk = await console(svc, sockets, agent, window="xingning")
    started = await start_chat(svc, XINGNING_IP)
    chat_id = started["chat_id"]
    widget = await visitor(svc, sockets, started)
    assert (await widget.call("chat.send", {"client_id": "v-1", "body": "在吗"}))["ok"]
    first = await desk.call("chat.reply", {"chat_id": chat_id, "client_id": "a-1", "body": "在"})
    await until(lambda: messages(widget, client_id="a-1"), what="the first reply")
    seen = max(m["seq"] for m in messages(widget))
    assert seen == first["data"]["message"]["seq"]
    await widget.client.disconnect()

    missed = []
    for n in (2, 3):
        ack = await desk.call(
            "chat.reply", {"chat_id": chat_id, "client_id": f"a-{n}", "body": f"第{n}条"}
        )
        missed.append(ack["data"]["message"])

    back = await visitor(svc, sockets, started)
    fetched = FetchedOut.model_validate((await back.call("chat.fetch", {"since": seen}))["data"])
    assert [m.model_dump(mode="json") for m in fetched.messages] == missed
    assert fetched.last_seq == missed[-1]["seq"]
    # The agent's console re-fetches the same way.
    agent_view = await desk.call("chat.fetch", {"chat_id": chat_id, "since": seen})
    assert agent_view["data"]["messages"] == missed


async def test_queue_counts_reach_the_window_and_positions_reach_the_waiting_visitors(
    svc: Service, sockets: Sockets
) -> None:
    agent = await svc.api.user("agent", window_code="xingning")
    await svc.chat.set_capacity(agent.id, 1, now=svc.chat.now())
    desk = await console(svc, sockets, agent, window="xingning")
    served = await start_chat(svc, XINGNING_IP)
    waiting = await start_chat(svc, XINGNING_IP, name="王女士")
    assert (served["state"], waiting["state"]) == ("assigned", "queued")
    widget = await visitor(svc, sockets, waiting)
    state = await widget.call("chat.fetch", {"since": 0})
    assert state["data"]["state"] == {
        "chat_id": waiting["chat_id"],
        "state": "queued",
        "queue_position": 1,
        "agent_name": None,
    }
    await until(
        lambda: any(q["waiting"] == 1 for q in desk.received("chat.queue")),
        what="the window's queue count",
    )
    queue = ChatQueueOut.model_validate(desk.received("chat.queue")[-1])
    assert queue.window_code == "xingning"
    # The first chat ends and is wrapped up (docs/wrapup.md): the waiting one
    # is assigned, its visitor is told who.
    status, body = await svc.api.call("POST", f"/api/chats/{served['chat_id']}/close", agent)
    assert status == 200, body
    status, body = await svc.api.call(
        "POST",
        "/api/contacts/wrapups",
        agent,
        json={
            "contact_kind": "chat",
            "chat_id": served["chat_id"],
            "enterprise_name": "兴宁市某某电子有限公司",
            "category_code": "financing",
            "service_mode": "online",
            "result": "resolved",
        },
    )
    assert status == 201, body
    await until(
        lambda: any(s["state"] == "assigned" for s in widget.received("chat.state")),
        what="the visitor hears the assignment",
    )
    assigned = [ChatStateOut.model_validate(s) for s in widget.received("chat.state")]
    assert assigned[-1].agent_name == agent.username
    await until(
        lambda: ChatQueueOut.model_validate(desk.received("chat.queue")[-1]).waiting == 0,
        what="the queue empties",
    )


# --- who hears what -------------------------------------------------------------------------


async def test_an_agent_of_another_window_hears_nothing_and_cannot_touch_the_chat(
    svc: Service, sockets: Sockets
) -> None:
    xingning = await svc.api.user("agent", window_code="xingning")
    meijiang = await svc.api.user("agent", window_code="meijiang")
    desk = await console(svc, sockets, xingning, window="xingning")
    other = await console(svc, sockets, meijiang, window="meijiang")
    started = await start_chat(svc, XINGNING_IP)
    chat_id = started["chat_id"]
    widget = await visitor(svc, sockets, started)
    assert (await widget.call("chat.send", {"client_id": "v-1", "body": "你好"}))["ok"]
    await desk.call("chat.reply", {"chat_id": chat_id, "client_id": "a-1", "body": "您好"})
    await until(lambda: messages(widget, client_id="a-1"), what="the reply")
    await until(lambda: messages(desk, client_id="a-1"), what="the echo to the agent")
    await mark(svc.realtime, other, agent_room(meijiang.id))
    assert [n for n in other.names() if n.startswith("chat.") and n != "chat.queue"] == []
    # Nor can they read, write or type into it.
    for event, payload in (
        ("chat.fetch", {"chat_id": chat_id, "since": 0}),
        ("chat.reply", {"chat_id": chat_id, "client_id": "x-1", "body": "越权"}),
        ("chat.typing", {"chat_id": chat_id, "typing": True}),
    ):
        ack = await other.call(event, payload)
        assert not ack["ok"] and ack["error"]["code"] == "chat_not_found", (event, ack)
    fetched = await widget.call("chat.fetch", {"since": 0})
    assert "x-1" not in [m["client_id"] for m in fetched["data"]["messages"]]


async def test_a_visitor_token_opens_its_own_chat_only(svc: Service, sockets: Sockets) -> None:
    agent = await svc.api.user("agent", window_code="xingning")
    desk = await console(svc, sockets, agent, window="xingning")
    first = await start_chat(svc, XINGNING_IP)
    second = await start_chat(svc, XINGNING_IP, name="王女士")
    one = await visitor(svc, sockets, first)
    two = await visitor(svc, sockets, second)
    # No event takes a chat id from a visitor: naming another chat is a bad request.
    for event, payload in (
        ("chat.fetch", {"since": 0, "chat_id": second["chat_id"]}),
        ("chat.send", {"client_id": "v-9", "body": "偷看", "chat_id": second["chat_id"]}),
    ):
        ack = await one.call(event, payload)
        assert not ack["ok"] and ack["error"]["code"] == "bad_request", ack
    assert (await two.call("chat.send", {"client_id": "v-2", "body": "第二位访客"}))["ok"]
    await desk.call(
        "chat.reply", {"chat_id": second["chat_id"], "client_id": "a-2", "body": "您好"}
    )
    await until(lambda: messages(two, client_id="a-2"), what="the second visitor's reply")
    await mark(svc.realtime, one, chat_room(first["chat_id"]))
    assert {m["chat_id"] for m in messages(one)} <= {first["chat_id"]}
    fetched = await one.call("chat.fetch", {"since": 0})
    assert {m["chat_id"] for m in fetched["data"]["messages"]} == {first["chat_id"]}


# --- bad input and limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "event", "payload"),
    [
        ("visitor", "chat.send", {}),
        ("visitor", "chat.send", {"client_id": "v-1"}),
        ("visitor", "chat.send", {"client_id": "v-1", "body": ""}),
        ("visitor", "chat.send", {"client_id": "v 1", "body": "空格"}),
        ("visitor", "chat.send", {"client_id": "x" * 65, "body": "太长"}),
        ("visitor", "chat.send", {"client_id": "v-1", "body": "响铃\x07"}),
        ("visitor", "chat.send", {"client_id": "v-1", "body": 42}),
        ("visitor", "chat.send", {"client_id": "v-1", "body": "你好", "extra": 1}),
        ("visitor", "chat.send", ["v-1", "你好"]),
        ("visitor", "chat.fetch", {"since": -1}),
        ("visitor", "chat.fetch", {"since": "0"}),
        ("visitor", "chat.typing", {"typing": "yes"}),
        ("agent", "chat.reply", {"chat_id": "1", "client_id": "a-1", "body": "好"}),
        ("agent", "chat.reply", {"chat_id": 0, "client_id": "a-1", "body": "好"}),
        ("agent", "chat.fetch", {"chat_id": 1}),
        ("agent", "chat.typing", {"chat_id": 1, "typing": 1}),
    ],
)
async def test_bad_payloads_get_bad_request_and_store_nothing(
    svc: Service, sockets: Sockets, namespace: str, event: str, payload: Any
) -> None:
    agent = await svc.api.user("agent", window_code="xingning")
    desk = await console(svc, sockets, agent, window="xingning")
    started = await start_chat(svc, XINGNING_IP)
    widget = await visitor(svc, sockets, started)
    sock = widget if namespace == "visitor" else desk
    ack = await sock.call(event, payload)
    assert ack["ok"] is False and ack["error"]["code"] == "bad_request", ack
    assert "Traceback" not in str(ack)
    fetched = await widget.call("chat.fetch", {"since": 0})
    assert [m["sender_kind"] for m in fetched["data"]["messages"]] == ["system"]


async def test_web_chat_limits_give_the_same_clear_errors_through_the_ack(
    svc: Service, sockets: Sockets
) -> None:
    agent = await svc.api.user("agent", window_code="xingning")
    await console(svc, sockets, agent, window="xingning")
    started = await start_chat(svc, XINGNING_IP)
    widget = await visitor(svc, sockets, started)
    too_long = "长" * (svc.chat.options.message_max_chars + 1)
    ack = await widget.call("chat.send", {"client_id": "v-long", "body": too_long})
    assert not ack["ok"] and ack["error"]["code"] == "message_too_long", ack
    # One line a second per side: a quick second line is over the limit.
    svc.chat.options = dataclasses.replace(svc.chat.options, messages_per_second=1)
    codes = []
    for n in range(4):
        ack = await widget.call("chat.send", {"client_id": f"v-{n}", "body": f"第{n}条"})
        codes.append("ok" if ack["ok"] else ack["error"]["code"])
    assert "chat_rate_limited" in codes
    fetched = await widget.call("chat.fetch", {"since": 0})
    stored = [m["client_id"] for m in fetched["data"]["messages"] if m["sender_kind"] == "visitor"]
    assert "v-long" not in stored
    assert len(stored) == codes.count("ok")


async def test_a_burst_of_events_beyond_the_socket_limit_is_rate_limited(
    database_url: str, aiohttp_client: Any, sockets: Sockets
) -> None:
    service = await start_service(
        aiohttp_client, database_url, realtime_event_burst=5, realtime_events_per_second=0.5
    )
    agent = await service.api.user("agent", window_code="xingning")
    await console(service, sockets, agent, window="xingning")
    started = await start_chat(service, XINGNING_IP)
    widget = await visitor(service, sockets, started)
    acks = [await widget.call("chat.typing", {"typing": n % 2 == 0}) for n in range(8)]
    refused = [a for a in acks if not a["ok"]]
    assert refused and {a["error"]["code"] for a in refused} == {"rate_limited"}
    assert all(a["ok"] for a in acks[:5])
    # The socket stays open.
    assert widget.client.connected


# --- two processes sharing Redis ------------------------------------------------------------


async def test_a_chat_started_on_one_process_is_answered_by_an_agent_on_another(
    database_url: str, aiohttp_client: Any, sockets: Sockets
) -> None:
    tag = uuid4().hex
    shared: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "realtime_channel": f"smeline-test:socketio:{tag}",
        "bus_channel": f"smeline-test:events:{tag}",
    }
    first = await start_service(aiohttp_client, database_url, **shared)
    second = await start_service(aiohttp_client, database_url, bootstrap=False, **shared)
    agent = await first.api.user("agent", window_code="xingning")
    desk_on_second = await console(second, sockets, agent, window="xingning")
    started = await start_chat(first, XINGNING_IP)
    assert started["state"] == "assigned"
    chat_id = started["chat_id"]
    await until(lambda: desk_on_second.received("chat.assigned"), within=10, what="screen pop")
    widget_on_first = await visitor(first, sockets, started)
    body = f"跨进程-{tag}"
    ack = await widget_on_first.call("chat.send", {"client_id": "v-1", "body": body})
    assert ack["ok"], ack
    await until(lambda: messages(desk_on_second, client_id="v-1"), within=10, what="B hears A")
    reply = await desk_on_second.call(
        "chat.reply", {"chat_id": chat_id, "client_id": "a-1", "body": f"收到-{tag}"}
    )
    assert reply["ok"], reply
    await until(lambda: messages(widget_on_first, client_id="a-1"), within=10, what="A hears B")
    assert (await widget_on_first.call("chat.typing", {"typing": True}))["ok"]
    await until(lambda: desk_on_second.received("chat.typing"), within=10, what="typing A→B")
    # Each push once, though both processes heard the bus event.
    await mark(first.realtime, widget_on_first, chat_room(chat_id))
    await mark(first.realtime, desk_on_second, agent_room(agent.id))
    assert [m["body"] for m in messages(desk_on_second, client_id="v-1")] == [body]
    assert len(messages(widget_on_first, client_id="a-1")) == 1
    assert len(desk_on_second.received("chat.assigned")) == 1
