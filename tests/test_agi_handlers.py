"""The hotline's FastAGI handlers end to end: an Asterisk channel double (shaped
by the recordings) talks to the real server wired into the application, over
a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from smeline import keys
from smeline.agi_scripts.fastagi import FastAgiServer
from smeline.agi_scripts.handlers import (
    ROUTE_FALLBACK,
    HotlineIvr,
    hotline_principal,
    sms_to_caller,
    unpack_decision,
)
from smeline.app import create_app
from smeline.config import Settings
from smeline.notifications.models import Notification
from smeline.prompts.catalogue import PROMPTS
from smeline.routing.models import CallerProfile
from smeline.routing.services import RoutingService
from smeline.ticketing.models import Ticket
from tests.asterisk_double.agi_channel import AgiChannelDouble, AgiOutcome
from tests.conftest import make_settings

MONDAY_10AM = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 in Meizhou
SATURDAY_9PM = datetime(2026, 12, 5, 13, 0, tzinfo=UTC)  # 21:00 in Meizhou
SOUNDS = {name: 40000 for name in PROMPTS}


def decided(outcome: AgiOutcome) -> dict[str, str]:
    """The route's one variable, split as the dialplan's CUT() calls split it
    (tests/test_dialplan_paths.py walks that part of the dialplan)."""
    assert set(outcome.assigned) == {"SMELINE_DECISION"}, outcome.assigned
    return unpack_decision(outcome.assigned["SMELINE_DECISION"])


@dataclass
class Hotline:
    client: TestClient[Any, Any]
    server: FastAgiServer
    routing: RoutingService
    clock: list[datetime]

    async def call(self, script: str = "route", **kwargs: Any) -> AgiOutcome:
        channel = AgiChannelDouble(
            "127.0.0.1", self.server.port, script=script, sound_files=SOUNDS, **kwargs
        )
        return await channel.run()


@pytest.fixture
async def hotline(database_url: str, aiohttp_client: Any) -> AsyncIterator[Hotline]:
    settings: Settings = make_settings(database_url, agi_enabled=True, agi_port=0)
    app = create_app(settings, background=False)
    client = await aiohttp_client(app)
    # A server of our own with a settable clock, next to the app's own.
    clock = [MONDAY_10AM]
    server = FastAgiServer(port=0, default_fallback=ROUTE_FALLBACK)
    HotlineIvr(
        routing=app[keys.ROUTING],
        tickets=app[keys.TICKETS],
        principal=await hotline_principal(app[keys.SESSIONMAKER]),
        now=lambda: clock[0],
        text_caller=sms_to_caller(app[keys.SESSIONMAKER], app[keys.OUTBOX], lambda: clock[0]),
    ).register(server)
    await server.start()
    try:
        yield Hotline(client, server, app[keys.ROUTING], clock)
    finally:
        await server.stop()
        await app[keys.ROUTING].drain()


async def test_the_app_runs_the_fastagi_server_and_routes_a_call(hotline: Hotline) -> None:
    app_server = hotline.client.app[keys.AGI_SERVER]
    # on PostgreSQL the caller look-up runs on the server's own asyncpg pool
    lookup = hotline.client.app[keys.ROUTING].lookup
    assert lookup is not None and lookup.started
    channel = AgiChannelDouble(
        "127.0.0.1",
        app_server.port,
        script="route",
        sound_files=SOUNDS,
        env_overrides={"agi_callerid": "02088888888"},
        dtmf=["1"],
    )
    outcome = await channel.run()
    assert outcome.agistatus == "SUCCESS"
    assert decided(outcome)["SMELINE_ACTION"] in ("queue", "afterhours")
    assert decided(outcome)["SMELINE_WINDOW"] == "city"
    assert decided(outcome)["SMELINE_CATEGORY"] == "information"


async def test_xingning_landline_reaches_the_xingning_queue_with_the_city_as_overflow(
    hotline: Hotline,
) -> None:
    outcome = await hotline.call(env_overrides={"agi_callerid": "41234567"}, dtmf=["3"])
    assigned = decided(outcome)
    assert assigned["SMELINE_ACTION"] == "queue"
    assert assigned["SMELINE_QUEUE"] == "xingning"
    assert assigned["SMELINE_OVERFLOW"] == "city"
    assert assigned["SMELINE_COUNTY"] == "441481"
    assert assigned["SMELINE_CATEGORY"] == "technology"
    assert assigned["SMELINE_CALLER_KEY"] == "075341234567"
    assert assigned["SMELINE_QUEUE_TIMEOUT"] == "60"
    # the county menu was not played: the exchange table knew the county
    assert not any("county-menu" in c for c in outcome.commands)


async def test_meizhou_mobile_hears_the_county_menu_and_the_choice_is_remembered(
    hotline: Hotline,
) -> None:
    outcome = await hotline.call(env_overrides={"agi_callerid": "+8613923001234"}, dtmf=["8", "1"])
    assert any("smeline/county-menu" in c for c in outcome.commands)
    assert decided(outcome)["SMELINE_QUEUE"] == "wuhua"
    await hotline.routing.drain()
    sessionmaker = hotline.client.app[keys.SESSIONMAKER]
    async with sessionmaker() as db:
        profile = await db.get(CallerProfile, "13923001234")
    assert profile is not None and profile.county_code == "441424"
    # Next time the same number (another trunk format) is not asked again.
    again = await hotline.call(env_overrides={"agi_callerid": "013923001234"}, dtmf=["2"])
    assert not any("county-menu" in c for c in again.commands)
    assert decided(again)["SMELINE_QUEUE"] == "wuhua"


async def test_no_choice_in_the_county_menu_goes_to_the_city(hotline: Hotline) -> None:
    outcome = await hotline.call(env_overrides={"agi_callerid": "13923001234"}, dtmf=["", "", ""])
    assert decided(outcome)["SMELINE_QUEUE"] == "city"
    assert decided(outcome)["SMELINE_CATEGORY"] == ""


async def test_at_night_the_route_says_after_hours(hotline: Hotline) -> None:
    hotline.clock[0] = SATURDAY_9PM
    outcome = await hotline.call(env_overrides={"agi_callerid": "41234567"}, dtmf=["1"])
    assert decided(outcome)["SMELINE_ACTION"] == "afterhours"
    assert decided(outcome)["SMELINE_QUEUE"] == ""


async def test_slow_database_still_leaves_the_caller_in_the_city_queue_within_a_second(
    hotline: Hotline, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = hotline.routing.caller_facts

    async def slow(key: Any) -> Any:
        await asyncio.sleep(10)
        return await original(key)

    monkeypatch.setattr(hotline.routing, "caller_facts", slow)
    started = time.monotonic()
    outcome = await hotline.call(env_overrides={"agi_callerid": "41234567"})
    assert time.monotonic() - started < 1.0
    assert outcome.variables["SMELINE_QUEUE"] == "city"
    assert outcome.variables["SMELINE_ACTION"] == "queue"
    assert outcome.agistatus == "SUCCESS"


async def _tickets(hotline: Hotline) -> list[Ticket]:
    sessionmaker = hotline.client.app[keys.SESSIONMAKER]
    async with sessionmaker() as db:
        return list((await db.scalars(select(Ticket))).all())


async def test_voicemail_becomes_a_work_order_due_the_next_business_morning(
    hotline: Hotline,
) -> None:
    hotline.clock[0] = SATURDAY_9PM
    outcome = await hotline.call(
        "voicemail",
        env_overrides={"agi_callerid": "41234567"},
        variables={
            "SMELINE_MESSAGE": "/var/spool/smeline/msg-cctest-1.wav",
            "SMELINE_COUNTY": "441481",
            "SMELINE_CATEGORY": "financing",
        },
    )
    (ticket,) = await _tickets(hotline)
    assert outcome.assigned["SMELINE_TICKET"].isdigit()
    assert ticket.source == "voicemail"
    assert ticket.window_code == "xingning" and ticket.category_code == "financing"
    assert ticket.contact_phone == "075341234567"
    assert {"kind": "voicemail", "ref": "/var/spool/smeline/msg-cctest-1.wav"} in ticket.links
    # Saturday night → Monday 08:30 + 1 business hour = 09:30 Beijing = 01:30 UTC
    assert ticket.first_response_due_at == datetime(2026, 12, 7, 1, 30, tzinfo=UTC)


async def test_callback_request_while_waiting_becomes_a_callback_work_order(
    hotline: Hotline,
) -> None:
    outcome = await hotline.call(
        "callback", env_overrides={"agi_callerid": "13923001234"}, variables={}
    )
    (ticket,) = await _tickets(hotline)
    assert outcome.assigned["SMELINE_TICKET"]
    assert ticket.source == "phone" and ticket.category_code == "other"
    assert ticket.window_code == "city"


@pytest.mark.parametrize(("digits", "stored"), [(["1"], "1"), (["3"], "3"), (["9", "2"], "2")])
async def test_survey_stores_the_digit_pressed(
    hotline: Hotline, digits: list[str], stored: str
) -> None:
    outcome = await hotline.call("survey", variables={"SMELINE_SURVEY": "offered"}, dtmf=digits)
    assert outcome.variables["SMELINE_SURVEY"] == stored


async def test_survey_without_an_answer_leaves_it_offered(hotline: Hotline) -> None:
    outcome = await hotline.call("survey", variables={"SMELINE_SURVEY": "offered"}, dtmf=["", ""])
    assert outcome.variables["SMELINE_SURVEY"] == "offered"


async def test_caller_hanging_up_during_the_survey_leaves_it_offered(hotline: Hotline) -> None:
    outcome = await hotline.call(
        "survey", variables={"SMELINE_SURVEY": "offered"}, hangup_on="GET DATA"
    )
    assert outcome.variables["SMELINE_SURVEY"] == "offered"
    assert "SMELINE_SURVEY" not in outcome.assigned


async def _outbox(hotline: Hotline) -> list[Notification]:
    await hotline.routing.drain()
    async with hotline.client.app[keys.SESSIONMAKER]() as db:
        return list((await db.scalars(select(Notification))).all())


async def test_a_mobile_caller_gets_the_voicemail_reference_by_sms_too(hotline: Hotline) -> None:
    hotline.clock[0] = SATURDAY_9PM
    outcome = await hotline.call(
        "voicemail",
        env_overrides={"agi_callerid": "+86 139 2300 1234"},
        variables={"SMELINE_MESSAGE": "/var/spool/smeline/msg-1.wav"},
    )
    ref = outcome.assigned["SMELINE_TICKET"]
    (row,) = await _outbox(hotline)  # the test settings enable the log channel only
    assert row.address == "13923001234" and row.recipient_user_id is None
    assert row.template_id == "hotline_voicemail_reference" and ref in row.body


async def test_a_landline_caller_gets_no_sms(hotline: Hotline) -> None:
    await hotline.call("callback", env_overrides={"agi_callerid": "41234567"}, variables={})
    assert await _outbox(hotline) == []
