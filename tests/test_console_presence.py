"""An agent's console (/agent socket) and the queues: a console gone for good
pauses the agent in Asterisk; a reload within the grace period does not; an
open console is a web-chat seat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from smeline import keys
from smeline.realtime.rooms import AGENT_NAMESPACE
from smeline.realtime.setup import REALTIME
from smeline.telephony.console_presence import PauseOnConsoleLoss
from smeline.telephony.models import QueueMembership
from smeline.webchat.models import ChatAgent
from tests.asterisk_double.ami_server import AmiDouble
from tests.conftest import Actor, Api
from tests.polling import until, until_async
from tests.socket_rig import Sockets
from tests.telephony_rig import wired_api

GRACE = 0.3


@pytest.fixture
async def double() -> AsyncIterator[AmiDouble]:
    double = AmiDouble(bad_login_delay=0.05)
    for window in ("meijiang", "xingning", "city"):
        double.add_queue(window)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture
async def wired(database_url: str, aiohttp_client: Any, double: AmiDouble) -> Api:
    return await wired_api(
        database_url, aiohttp_client, double, console_disconnect_grace_seconds=GRACE
    )


def url(api: Api) -> str:
    return str(api.client.server.make_url("/"))


async def logged_in_agent(api: Api, double: AmiDouble) -> tuple[Actor, str]:
    agent = await api.user("agent", window_code="xingning")
    double.add_endpoint(f"agent-{agent.id}", contacts=[f"sip:agent-{agent.id}@127.0.0.1:5070"])
    status, body = await api.call("POST", "/api/telephony/agents/me/login", agent, json={})
    assert status == 200 and body["state"] == "ready", body
    return agent, f"PJSIP/agent-{agent.id}"


async def membership(api: Api, user_id: int) -> QueueMembership | None:
    async with api.client.server.app[keys.SESSIONMAKER]() as db:
        return await db.get(QueueMembership, user_id)


async def test_a_console_gone_for_good_pauses_the_agent_in_asterisk(
    wired: Api, double: AmiDouble, sockets: Sockets
) -> None:
    agent, interface = await logged_in_agent(wired, double)
    sock = await sockets.staff(url(wired), AGENT_NAMESPACE, agent)
    member = double.queues["xingning"].member(interface)
    assert member is not None and not member.paused
    await sock.client.disconnect()

    async def paused_as_disconnected() -> bool:
        row = await membership(wired, agent.id)
        return row is not None and row.state == "disconnected"

    await until_async(paused_as_disconnected)
    # a real QueuePause: Asterisk offers this seat no call (QueueStatus Paused: 1)
    assert member.paused and member.paused_reason == "disconnected"
    # back at the console, the agent says ready themselves
    sock = await sockets.staff(url(wired), AGENT_NAMESPACE, agent)
    status, body = await wired.call(
        "POST", "/api/telephony/agents/me/state", agent, json={"action": "ready"}
    )
    assert status == 200 and body["state"] == "ready" and not member.paused


async def test_a_reload_within_the_grace_period_does_not_pause(
    wired: Api, double: AmiDouble, sockets: Sockets
) -> None:
    agent, interface = await logged_in_agent(wired, double)
    realtime = wired.client.server.app[REALTIME]
    (console_loss,) = [
        lst for lst in realtime.presence.listeners if isinstance(lst, PauseOnConsoleLoss)
    ]
    first = await sockets.staff(url(wired), AGENT_NAMESPACE, agent)
    second = await sockets.staff(url(wired), AGENT_NAMESPACE, agent)  # a second tab
    await first.client.disconnect()
    await until(lambda: realtime.presence.sockets(agent.id) == 1)
    # one tab still open: no pause, however long we wait
    reloaded = await sockets.staff(url(wired), AGENT_NAMESPACE, agent)
    await second.client.disconnect()
    await until(lambda: realtime.presence.sockets(agent.id) == 1)
    await reloaded.client.disconnect()
    await until(lambda: realtime.presence.sockets(agent.id) == 0)
    await sockets.staff(url(wired), AGENT_NAMESPACE, agent)  # back before the grace ended
    await until(lambda: realtime.presence.sockets(agent.id) == 1)
    # Prove "never": a marker agent who does leave is paused; ours is not.
    other, other_interface = await logged_in_agent(wired, double)
    gone = await sockets.staff(url(wired), AGENT_NAMESPACE, other)
    await gone.client.disconnect()
    await until(lambda: console_loss.paused == 1)
    row = await membership(wired, agent.id)
    assert row is not None and row.state == "ready"
    member = double.queues["xingning"].member(interface)
    assert member is not None and not member.paused


async def test_an_open_console_is_a_chat_seat(wired: Api, sockets: Sockets) -> None:
    agent = await wired.user("agent", window_code="xingning")

    async def connections() -> int:
        async with wired.client.server.app[keys.SESSIONMAKER]() as db:
            value = await db.scalar(
                select(ChatAgent.connections).where(ChatAgent.user_id == agent.id)
            )
        return int(value or 0)

    one = await sockets.staff(url(wired), AGENT_NAMESPACE, agent)
    two = await sockets.staff(url(wired), AGENT_NAMESPACE, agent)
    await until_async(lambda: _equals(connections, 2))
    await one.client.disconnect()
    await two.client.disconnect()
    await until_async(lambda: _equals(connections, 0))


async def _equals(read: Any, value: int) -> bool:
    return bool(await read() == value)
