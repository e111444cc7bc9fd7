"""What the wallboard's reassign actions rely on (docs/wallboard.md,
"Reassigning a chat or a work order"): no endpoint of the wallboard's own,
the web-chat transfer and the work orders' ``assign`` action, with the
permissions the wallboard expects of them —

* a supervisor moves any chat and reassigns any work order;
* a county administrator does so within their county, and cannot reach
  another county's (404, as if it did not exist);
* an agent moves only their own chat (403 ``chat_not_yours``) and assigns a
  work order only within their own window.
"""

from __future__ import annotations

from typing import Any

import pytest

from smeline.webchat.services import ChatService
from tests.conftest import Actor, Api, row_counts, ticket_payload
from tests.test_webchat_api import (
    OUTSIDE_IP,
    WORKDAY,
    XINGNING_IP,
    chat_service,
    online_agent,
    running_from,
    start,
)


@pytest.fixture
def chats(api: Api) -> ChatService:
    svc = chat_service(api)
    svc.clock = running_from(WORKDAY)
    return svc


async def transfer(api: Api, who: Actor, chat_id: int, **target: Any) -> tuple[int, Any]:
    return await api.call("POST", f"/api/chats/{chat_id}/transfer", who, json=target)


async def test_a_supervisor_moves_any_chat_and_sees_it_in_the_list(
    api: Api, chats: ChatService
) -> None:
    holder = await online_agent(api, "xingning")
    other = await online_agent(api, "xingning")
    await chats.set_capacity(other.id, 3, now=chats.now())
    started = await start(api, ip=XINGNING_IP)
    chat_id = started["chat_id"]
    supervisor = await api.user("supervisor")
    # The wallboard's list: every chat in play, for a supervisor.
    status, page = await api.call("GET", "/api/chats?state=assigned", supervisor)
    assert status == 200 and [c["id"] for c in page["items"]] == [chat_id]
    holder_id = page["items"][0]["agent_id"]
    target = other if holder_id == holder.id else holder
    status, moved = await transfer(api, supervisor, chat_id, to_user_id=target.id)
    assert status == 200, moved
    assert moved["agent_id"] == target.id
    status, moved = await transfer(api, supervisor, chat_id, window_code="city")
    assert status == 200, moved
    assert (moved["window_code"], moved["state"]) == ("city", "queued")


async def test_a_county_admin_moves_their_countys_chats_only(api: Api, chats: ChatService) -> None:
    await online_agent(api, "xingning")
    xingning_chat = (await start(api, ip=XINGNING_IP))["chat_id"]
    await online_agent(api, "city")
    city_chat = (await start(api, ip=OUTSIDE_IP))["chat_id"]
    xingning_admin = await api.user("county_admin", county_code="441481")
    meijiang_admin = await api.user("county_admin", county_code="441402")

    status, page = await api.call("GET", "/api/chats?state=assigned", xingning_admin)
    assert status == 200 and [c["id"] for c in page["items"]] == [xingning_chat]

    before = await row_counts(api)
    for admin, chat_id in ((meijiang_admin, xingning_chat), (xingning_admin, city_chat)):
        status, body = await transfer(api, admin, chat_id, window_code="meixian")
        assert status == 404 and body["error"]["id"] == "chat_not_found", body
    assert await row_counts(api) == before

    status, moved = await transfer(api, xingning_admin, xingning_chat, window_code="xingning")
    assert status == 200, moved
    assert moved["state"] in ("queued", "assigned")


async def test_an_agent_moves_only_their_own_chat(api: Api, chats: ChatService) -> None:
    holder = await online_agent(api, "xingning")
    started = await start(api, ip=XINGNING_IP)
    colleague = await api.user("agent", window_code="xingning")
    before = await row_counts(api)
    status, body = await transfer(api, colleague, started["chat_id"], window_code="city")
    assert status == 403 and body["error"]["id"] == "chat_not_yours", body
    assert await row_counts(api) == before
    status, moved = await transfer(api, holder, started["chat_id"], window_code="city")
    assert status == 200, moved


async def assign(api: Api, who: Actor, ticket_id: int, assignee: Actor) -> tuple[int, Any]:
    return await api.call(
        "POST",
        f"/api/tickets/{ticket_id}/actions",
        who,
        json={"action": "assign", "assignee_id": assignee.id, "note": "班长在监控大屏改派"},
    )


async def test_who_may_reassign_a_work_order(api: Api) -> None:
    status, ticket = await api.call(
        "POST", "/api/tickets", api.admin, json=ticket_payload(county_code="441481")
    )
    assert status == 201, ticket
    ticket_id = ticket["id"]
    xingning_agent = await api.user("agent", window_code="xingning")
    meijiang_agent = await api.user("agent", window_code="meijiang")

    supervisor = await api.user("supervisor")
    status, body = await assign(api, supervisor, ticket_id, xingning_agent)
    assert status == 200 and body["assignee_id"] == xingning_agent.id, body

    xingning_admin = await api.user("county_admin", county_code="441481")
    status, body = await assign(api, xingning_admin, ticket_id, meijiang_agent)
    assert status == 200 and body["assignee_id"] == meijiang_agent.id, body

    meijiang_admin = await api.user("county_admin", county_code="441402")
    before = await row_counts(api)
    status, body = await assign(api, meijiang_admin, ticket_id, xingning_agent)
    assert status == 404 and body["error"]["id"] == "ticket_not_found", body
    # An agent assigns only within their own window.
    status, body = await assign(api, meijiang_agent, ticket_id, xingning_agent)
    assert status == 403 and body["error"]["id"] == "transition_forbidden", body
    assert await row_counts(api) == before
