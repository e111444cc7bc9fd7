"""With Redis configured, service processes share live events."""

from __future__ import annotations

import asyncio
from typing import Any

from smeline import keys
from smeline.app import create_app
from smeline.bus import Envelope, RedisBus
from smeline.config import Settings
from tests.conftest import REDIS_URL, Api, make_settings, ticket_payload


async def test_work_order_created_on_one_process_reaches_a_subscriber_on_another(
    settings: Settings, aiohttp_client: Any
) -> None:
    with_redis = make_settings(settings.database_url, redis_url=REDIS_URL)
    client_a = await aiohttp_client(create_app(with_redis, background=False))
    client_b = await aiohttp_client(create_app(with_redis, background=False))
    bus_b = client_b.server.app[keys.BUS]
    assert isinstance(bus_b, RedisBus)
    received: asyncio.Queue[Envelope] = asyncio.Queue()

    async def on_event(envelope: Envelope) -> None:
        await received.put(envelope)

    bus_b.subscribe(on_event, ["ticket.created"])
    api = Api(client_a)
    await api.bootstrap_admin()
    status, ticket = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert status == 201
    async with asyncio.timeout(10):
        while True:
            envelope = await received.get()
            if envelope.payload["number"] == ticket["number"]:
                break
    assert envelope.origin != bus_b.node_id
    assert envelope.payload["county_code"] == "441481"
