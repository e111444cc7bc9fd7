"""Shared set-up of telephony tests: a TelephonyService (or the whole app)
connected to an AMI double, over a real PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline import keys
from smeline.app import create_app
from smeline.auth.models import Role, User
from smeline.bus import EventBus
from smeline.db import utcnow
from smeline.telephony.agents import AgentService
from smeline.telephony.ami import DEFAULT_IGNORED_EVENTS, AmiClient
from smeline.telephony.calls import CallTracker
from smeline.telephony.live import LivePicture
from smeline.telephony.records import CallRecordStore
from smeline.telephony.services import TelephonyService
from tests.asterisk_double.ami_server import AmiDouble
from tests.conftest import Api, make_settings
from tests.polling import until


async def meijiang_agent(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """An agent account placed in the meijiang window; returns its id."""
    async with sessionmaker() as db, db.begin():
        user = User(
            username="agent1",
            display_name="坐席一",
            role=Role.AGENT.value,
            window_code="meijiang",
            password_hash="!",
        )
        db.add(user)
        await db.flush()
        return user.id


async def started_service(
    double: AmiDouble,
    sessionmaker: async_sessionmaker[AsyncSession],
    bus: EventBus,
    *,
    wrapup_seconds: int = 1,
) -> TelephonyService:
    """A TelephonyService logged in to ``double`` with its first rebuild done."""
    client = AmiClient(
        host="127.0.0.1",
        port=double.port,
        username="cc",
        secret="cc",
        backoff_initial=0.05,
        backoff_max=0.2,
        ignored_events=DEFAULT_IGNORED_EVENTS - {"VarSet"},
    )
    service = TelephonyService(
        client=client,
        # The recordings' dialplan named queues "county-<window>".
        tracker=CallTracker(window_of_queue=lambda q: q.removeprefix("county-")),
        live=LivePicture(),
        store=CallRecordStore(sessionmaker=sessionmaker, caller_key=lambda raw: raw),
        bus=bus,
        agents=AgentService(
            sessionmaker=sessionmaker, ami=client, now=utcnow, wrapup_seconds=wrapup_seconds
        ),
        now=utcnow,
    )
    await service.start()
    await client.wait_connected(5)
    await until(lambda: service.rebuilds >= 1)
    return service


async def wired_api(
    database_url: str, aiohttp_client: Any, double: AmiDouble, **overrides: Any
) -> Api:
    """The whole app with telephony configured against ``double``."""
    settings = make_settings(
        database_url,
        ami_host="127.0.0.1",
        ami_port=double.port,
        ami_username="cc",
        ami_secret="cc",
        agi_enabled=False,
        hotline_number="075312345",
        **overrides,
    )
    client = await aiohttp_client(create_app(settings, background=False))
    api = Api(client)
    await api.bootstrap_admin()
    telephony = client.server.app[keys.TELEPHONY]
    service = telephony.service
    assert service is not None
    await until(lambda: telephony.connected and service.rebuilds >= 1)
    return api
