"""An expert invited into a web chat: hears it on /agent, reads its history,
writes in it under their own name, leaves; the chat is joint in the wrap-up;
an expert reads no chat they were not invited to. And the transfer targets
of a window (agents with their free capacity)."""

from __future__ import annotations

from typing import Any

import pytest

from smeline.contacts.setup import CONTACTS
from smeline.realtime.rooms import AGENT_NAMESPACE
from smeline.webchat.socket import MessageOut
from tests.conftest import Actor
from tests.polling import until
from tests.socket_rig import Service, Sock, Sockets
from tests.test_webchat_socket import XINGNING_IP, console, start_chat, visitor


@pytest.fixture
async def svc(database_url: str, aiohttp_client: Any) -> Service:
    from tests.test_webchat_socket import start_service

    return await start_service(aiohttp_client, database_url)


def lines(sock: Sock, *, kind: str | None = None) -> list[MessageOut]:
    found = [MessageOut.model_validate(m) for m in sock.received("chat.message")]
    return [m for m in found if kind is None or m.sender_kind == kind]


async def served(svc: Service) -> tuple[Actor, dict[str, Any]]:
    agent = await svc.api.user("agent", window_code="xingning")
    await svc.chat.agent_online(agent.id, now=svc.chat.now())
    started = await start_chat(svc, XINGNING_IP)
    assert started["state"] == "assigned", started
    return agent, started


async def invite(svc: Service, agent: Actor, chat_id: int, expert: Actor) -> tuple[int, Any]:
    return await svc.api.call(
        "POST", f"/api/chats/{chat_id}/experts", agent, json={"user_id": expert.id}
    )


async def test_an_invited_expert_hears_reads_and_writes_and_the_visitor_sees_their_name(
    svc: Service, sockets: Sockets
) -> None:
    agent = await svc.api.user("agent", window_code="xingning")
    desk = await console(svc, sockets, agent, window="xingning")
    started = await start_chat(svc, XINGNING_IP)
    chat_id = started["chat_id"]
    widget = await visitor(svc, sockets, started)
    ack = await widget.call("chat.send", {"client_id": "v-1", "body": "融资担保怎么申请？"})
    assert ack["ok"], ack

    expert = await svc.api.user("expert", username="expert-chen")
    other_expert = await svc.api.user("expert")
    pane = await sockets.staff(svc.url, AGENT_NAMESPACE, expert)
    other_pane = await sockets.staff(svc.url, AGENT_NAMESPACE, other_expert)
    # An expert's console has no window room.
    refused = await pane.call("window.join", {"window_code": "xingning"})
    assert not refused["ok"] and refused["error"]["code"] == "forbidden"

    status, body = await invite(svc, agent, chat_id, expert)
    assert status == 201 and body["joint"] is True, body
    await until(lambda: pane.received("chat.invited"), what="the expert's invitation")
    invited = pane.received("chat.invited")[0]
    assert (invited["chat_id"], invited["visitor_name"]) == (chat_id, "李先生")
    # The history, over the socket and over REST.
    fetched = await pane.call("chat.fetch", {"chat_id": chat_id, "since": 0})
    assert fetched["ok"], fetched
    assert "融资担保怎么申请？" in [m["body"] for m in fetched["data"]["messages"]]
    status, page = await svc.api.call("GET", f"/api/chats/{chat_id}/messages", expert)
    assert status == 200 and page["items"][-1]["body"].startswith("专家")

    said = await pane.call(
        "chat.reply", {"chat_id": chat_id, "client_id": "e-1", "body": "您好，我是融资顾问。"}
    )
    assert said["ok"], said
    await until(lambda: lines(widget, kind="expert"), what="the visitor hears the expert")
    heard = lines(widget, kind="expert")[0]
    assert (heard.sender_name, heard.body) == (
        (await svc.chat.display_name(expert.id)),
        "您好，我是融资顾问。",
    )
    await until(lambda: lines(desk, kind="expert"), what="the agent hears the expert")
    # The visitor's next line reaches the expert too; the other expert hears nothing.
    await widget.call("chat.send", {"client_id": "v-2", "body": "好的"})
    await until(lambda: [m for m in lines(pane) if m.client_id == "v-2"], what="expert hears")
    assert other_pane.received("chat.message") == []
    assert other_pane.received("chat.invited") == []

    # Leaving: the expert's console drops the chat; they can no longer read it.
    status, _ = await svc.api.call("DELETE", f"/api/chats/{chat_id}/experts/{expert.id}", expert)
    assert status == 204
    await until(lambda: pane.received("chat.ended"), what="the expert's console drops it")
    assert pane.received("chat.ended")[0] == {"chat_id": chat_id, "reason": "expert_left"}
    status, body = await svc.api.call("GET", f"/api/chats/{chat_id}/messages", expert)
    assert status == 403 and body["error"]["id"] == "chat_not_invited"


async def test_an_expert_reads_no_chat_they_were_not_invited_to(svc: Service) -> None:
    agent, started = await served(svc)
    chat_id = started["chat_id"]
    expert = await svc.api.user("expert")
    for method, path, body in (
        ("GET", f"/api/chats/{chat_id}", None),
        ("GET", f"/api/chats/{chat_id}/messages", None),
        ("POST", f"/api/chats/{chat_id}/messages", {"client_id": "e-1", "body": "偷看"}),
        ("POST", f"/api/chats/{chat_id}/experts", {"user_id": expert.id}),
    ):
        status, answer = await svc.api.call(method, path, expert, json=body)
        assert status == 403, (method, path, answer)
    status, page = await svc.api.call("GET", "/api/chats/invited", expert)
    assert status == 200 and page["items"] == []
    status, page = await svc.api.call("GET", "/api/chats", expert)
    assert status == 403
    # Invited to another chat: still not this one.
    other = await start_chat(svc, XINGNING_IP, name="王女士")
    await svc.chat.set_capacity(agent.id, 5, now=svc.chat.now())
    await svc.api.call("POST", f"/api/chats/{other['chat_id']}/accept", agent)
    status, body = await invite(svc, agent, other["chat_id"], expert)
    assert status == 201, body
    status, page = await svc.api.call("GET", "/api/chats/invited", expert)
    assert [c["id"] for c in page["items"]] == [other["chat_id"]]
    assert page["items"][0]["phone"] != "13800001234"  # experts see no phone numbers
    status, _ = await svc.api.call("GET", f"/api/chats/{chat_id}/messages", expert)
    assert status == 403


async def test_only_an_expert_can_be_invited_once_by_the_chats_agent(svc: Service) -> None:
    agent, started = await served(svc)
    chat_id = started["chat_id"]
    expert = await svc.api.user("expert")
    colleague = await svc.api.user("agent", window_code="xingning")
    status, body = await invite(svc, agent, chat_id, colleague)  # an agent, not an expert
    assert status == 422 and body["error"]["details"][0]["type"] == "not_expert"
    status, body = await invite(svc, colleague, chat_id, expert)
    assert status == 403 and body["error"]["id"] == "chat_not_yours"
    status, body = await invite(svc, agent, chat_id, expert)
    assert status == 201
    status, body = await invite(svc, agent, chat_id, expert)
    assert status == 409 and body["error"]["id"] == "chat_expert_already"
    # The agent lets the expert go; again is 404.
    path = f"/api/chats/{chat_id}/experts/{expert.id}"
    assert (await svc.api.call("DELETE", path, agent))[0] == 204
    status, body = await svc.api.call("DELETE", path, agent)
    assert status == 404 and body["error"]["id"] == "chat_expert_not_found"


async def test_a_chat_with_an_invited_expert_is_joint_in_the_wrapup(svc: Service) -> None:
    # The wrap-up rule reads its own clock: the chat's business day.
    svc.client.server.app[CONTACTS].clock = svc.chat.clock
    agent, started = await served(svc)
    chat_id = started["chat_id"]
    expert = await svc.api.user("expert")
    assert (await invite(svc, agent, chat_id, expert))[0] == 201
    status, body = await svc.api.call("POST", f"/api/chats/{chat_id}/close", agent)
    assert status == 200, body
    status, page = await svc.api.call("GET", "/api/contacts/wrapups/pending", agent)
    assert status == 200, page
    item = next(i for i in page["items"] if i["chat_id"] == chat_id)
    assert item["joint"] is True
    payload = {
        "contact_kind": "chat",
        "chat_id": chat_id,
        "enterprise_name": "兴宁市某某电子有限公司",
        "category_code": "financing",
        "service_mode": "online",
        "result": "resolved",
    }
    status, body = await svc.api.call("POST", "/api/contacts/wrapups", agent, json=payload)
    assert status == 422 and body["error"]["details"][0]["type"] == "joint_fixed"
    del payload["service_mode"]
    status, body = await svc.api.call("POST", "/api/contacts/wrapups", agent, json=payload)
    assert status == 201 and body["service_mode"] == "joint", body


async def test_a_windows_agents_show_their_free_capacity_for_a_transfer(svc: Service) -> None:
    agent, _started = await served(svc)
    idle = await svc.api.user("agent", window_code="xingning")
    await svc.api.user("agent", window_code="meijiang")
    status, page = await svc.api.call(
        "GET", "/api/chats/agents", agent, params={"window_code": "xingning"}
    )
    assert status == 200, page
    seats = {s["user_id"]: s for s in page["items"]}
    assert set(seats) == {agent.id, idle.id}
    assert (seats[agent.id]["online"], seats[agent.id]["active_chats"]) == (True, 1)
    assert seats[agent.id]["free"] == seats[agent.id]["capacity"] - 1
    assert (seats[idle.id]["online"], seats[idle.id]["active_chats"]) == (False, 0)
    status, body = await svc.api.call(
        "GET", "/api/chats/agents", agent, params={"window_code": "nowhere"}
    )
    assert status == 422
