"""The supervisors' wallboard (docs/wallboard.md) on real PostgreSQL: its
figures are the reports' figures, its scope follows the login, and a bus
event reaches the supervisors' sockets as one debounced push.

"Receives nothing" is never proved by waiting: a later marker that the
socket must receive is pushed after the event under test, and what it got is
checked once the marker is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline import keys
from smeline.app import create_app
from smeline.bus import EventBus
from smeline.migrate import upgrade
from smeline.stats.figures import (
    ChatFigures,
    WindowFigures,
    agent_figures,
    chat_total,
    total,
)
from smeline.stats.services import FiguresService, PeriodFigures
from smeline.telephony import events as call_events
from smeline.telephony.ami_protocol import AmiMessage
from smeline.telephony.live import DeviceStatus, LivePicture, MemberState
from smeline.telephony.models import CallRecord, QueueMembership
from smeline.telephony.phones import interface_of
from smeline.ticketing.models import SlaState, Ticket
from smeline.wallboard.missed import MissedCalls
from smeline.wallboard.schemas import WallboardOut
from smeline.wallboard.services import Scope, WallboardService
from smeline.wallboard.setup import WALLBOARD, WALLBOARD_PUBLISHER, figure_rules
from smeline.webchat.models import Chat, ChatAgent
from tests.conftest import Actor, Api, make_settings, row_counts, ticket_payload
from tests.polling import until
from tests.socket_rig import Sock, Sockets

# A Wednesday morning in Meizhou: 10:30 Beijing time.
NOW = datetime(2026, 12, 2, 2, 30, tzinfo=UTC)
DAY_START = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # Beijing midnight


def at(hours: float) -> datetime:
    """So many hours after Beijing midnight today."""
    return DAY_START + timedelta(hours=hours)


@dataclass
class Seeded:
    a: Actor  # 兴宁 agent, in the queue, ready
    b: Actor  # 梅江 agent, in the queue, paused
    c: Actor  # city centre agent, in after-call work
    d: Actor  # 兴宁 agent with only a chat seat open
    tickets: dict[str, int]  # name → id


def sessionmaker_of(api: Api) -> async_sessionmaker[AsyncSession]:
    return api.client.server.app[keys.SESSIONMAKER]


def wallboard_of(api: Api) -> WallboardService:
    service = api.client.server.app[WALLBOARD]
    service.clock = lambda: NOW
    return service


def _call(n: int, started: datetime, outcome: str, windows: list[str], **kw: Any) -> CallRecord:
    values: dict[str, Any] = {
        "linkedid": f"1764640000.{n}",
        "direction": "inbound",
        "started_at": started,
        "queued_at": started if windows else None,
        "outcome": outcome,
        "windows": windows,
        "queues": windows,
        "county_code": "441481",
        "category_code": "financing",
    }
    values.update(kw)
    return CallRecord(**values)


def _chat(started: datetime, window: str, state: str, **kw: Any) -> Chat:
    values: dict[str, Any] = {
        "token_hash": uuid4().hex + uuid4().hex,
        "visitor_id": uuid4().hex[:16],
        "visitor_name": "访客",
        "category_code": "legal",
        "county_code": "441481",
        "wanted_window_code": window,
        "window_code": window,
        "routing_reason": "form",
        "state": state,
        "created_at": started,
    }
    values.update(kw)
    return Chat(**values)


async def seed(api: Api) -> Seeded:
    assert api.admin is not None
    a = await api.user("agent", window_code="xingning")
    b = await api.user("agent", window_code="meijiang")
    c = await api.user("agent", window_code="city")
    d = await api.user("agent", window_code="xingning")
    calls = [
        # 兴宁: answered in 10 s and in 30 s, a short abandon, an abandon.
        _call(1, at(9), "answered", ["xingning"], answered_window="xingning", wait_seconds=10,
              talk_seconds=100, handle_seconds=130, agent_user_id=a.id),
        _call(2, at(9.5), "answered", ["xingning"], answered_window="xingning", wait_seconds=30,
              talk_seconds=60, agent_user_id=a.id, category_code="legal"),
        _call(3, at(10), "abandoned", ["xingning"], wait_seconds=3),
        _call(4, at(10.1), "abandoned", ["xingning"], wait_seconds=40),
        # Overflowed from 兴宁 and answered by the city centre: the city's call.
        _call(5, at(8), "answered", ["xingning", "city"], answered_window="city",
              wait_seconds=70, talk_seconds=300, handle_seconds=320, agent_user_id=c.id,
              overflowed=True),
        # Overflowed from 梅江, abandoned in the city queue: the city's too.
        _call(6, at(8.2), "abandoned", ["meijiang", "city"], wait_seconds=90,
              county_code="441402"),
        # 梅江: answered (escalated, joint) and a callback request.
        _call(7, at(9), "answered", ["meijiang"], answered_window="meijiang", wait_seconds=5,
              talk_seconds=200, handle_seconds=220, agent_user_id=b.id, joint=True,
              county_code="441402", category_code="market"),
        _call(8, at(9.1), "callback", ["meijiang"], wait_seconds=65, county_code="441402"),
        # Hung up in the IVR: no window's figure.
        _call(9, at(9.2), "abandoned", [], wait_seconds=0),
        # Yesterday, and an outbound call: not today's inbound contacts.
        _call(10, at(-1), "answered", ["xingning"], answered_window="xingning",
              wait_seconds=1, agent_user_id=a.id),
        _call(11, at(9), "answered", [], direction="outbound", agent_user_id=a.id),
    ]  # fmt: skip
    chats = [
        _chat(at(9), "xingning", "assigned", agent_id=a.id, assigned_at=at(9.01)),
        _chat(NOW - timedelta(seconds=120), "xingning", "queued"),
        _chat(at(10), "meijiang", "ended", county_code="441402", end_reason="closed",
              ended_at=at(10)),
        _chat(at(8.5), "city", "ended", agent_id=c.id, assigned_at=at(8.51), ended_at=at(9),
              county_code=None, category_code="training"),
        _chat(at(-2), "xingning", "ended", agent_id=a.id, assigned_at=at(-2), ended_at=at(-1)),
    ]  # fmt: skip
    members = [
        QueueMembership(user_id=a.id, window_code="xingning", interface=interface_of(a.id),
                        member_name="A", state="ready", since=at(8)),
        QueueMembership(user_id=b.id, window_code="meijiang", interface=interface_of(b.id),
                        member_name="B", state="paused", reason="lunch", since=at(10.2)),
        QueueMembership(user_id=c.id, window_code="city", interface=interface_of(c.id),
                        member_name="C", state="wrapup", reason="wrapup", since=at(10.4)),
    ]  # fmt: skip
    tickets: dict[str, int] = {}
    sla_of: dict[str, SlaState] = {}
    for name, county, sla in (
        ("xingning_breached", "441481", SlaState.BREACHED),
        ("xingning_ok", "441481", SlaState.OK),
        ("meijiang_warning", "441402", SlaState.WARNING),
        ("xingning_warning", "441481", SlaState.WARNING),
    ):
        status, body = await api.call(
            "POST", "/api/tickets", api.admin, json=ticket_payload(county_code=county)
        )
        assert status == 201, body
        tickets[name] = body["id"]
        sla_of[name] = sla
    async with sessionmaker_of(api)() as db, db.begin():
        db.add_all(calls)
        db.add_all(chats)
        db.add_all(members)
        db.add(ChatAgent(user_id=d.id, connections=1, online_since=at(8.7)))
        for name, ticket_id in tickets.items():
            await db.execute(
                update(Ticket).where(Ticket.id == ticket_id).values(sla_state=sla_of[name].value)
            )
    return Seeded(a=a, b=b, c=c, d=d, tickets=tickets)


def report_today(calls: WindowFigures, chats: ChatFigures) -> dict[str, Any]:
    """The wallboard's "today" keys, read off the reports' figures."""
    return {
        "offered": calls.offered,
        "answered": calls.answered,
        "abandoned": calls.abandoned,
        "short_abandoned": calls.short_abandoned,
        "service_level": calls.service_level,
        "asa_seconds": calls.asa_seconds,
        "aht_seconds": calls.aht_seconds,
        "overflowed_in": calls.overflowed_in,
        "chats": chats.chats,
        "chats_answered": chats.answered,
    }


async def reports(api: Api) -> PeriodFigures:
    """What the reports compute: FiguresService, directly, for the same day."""
    settings = api.client.server.app[keys.SETTINGS]
    figures = FiguresService(sessionmaker=sessionmaker_of(api), rules=figure_rules(settings))
    codes = tuple(api.client.server.app[keys.REFERENCE].data.windows)
    return await figures.day(NOW.date(), windows=codes)


async def get_wallboard(api: Api, actor: Actor) -> dict[str, Any]:
    wallboard_of(api)
    status, body = await api.call("GET", "/api/wallboard", actor)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


# --- the figures ----------------------------------------------------------------------


async def test_wallboard_figures_equal_the_report_figures_of_the_same_data(api: Api) -> None:
    await assert_figures_are_the_reports(api)


@pytest.fixture
async def sqlite_api(tmp_path: Path, aiohttp_client: Any) -> Api:
    url = f"sqlite+aiosqlite:///{tmp_path}/wallboard.db"
    await upgrade(url)
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(make_settings(url), background=False)
    )
    api = Api(client)
    await api.bootstrap_admin()
    return api


async def test_the_same_holds_on_sqlite(sqlite_api: Api) -> None:
    await assert_figures_are_the_reports(sqlite_api)


async def assert_figures_are_the_reports(api: Api) -> None:
    seeded = await seed(api)
    supervisor = await api.user("supervisor")
    board = await get_wallboard(api, supervisor)
    report = await reports(api)

    assert board["day"] == "2026-12-02"
    assert board["rules"] == {"service_level_seconds": 20, "short_abandon_seconds": 5}
    rows = {w["code"]: w for w in board["windows"]}
    assert list(rows) == [
        "meijiang", "meixian", "xingning", "pingyuan", "jiaoling", "dabu", "fengshun", "wuhua",
        "city",
    ]  # fmt: skip
    for code, row in rows.items():
        expected = report_today(
            report.windows.get(code, WindowFigures(code)),
            report.chat_windows.get(code, ChatFigures(code)),
        )
        assert row["today"] == expected, code
    assert board["total"] == report_today(total(report.windows), chat_total(report.chat_windows))

    calls_by_agent = agent_figures(report.calls)
    chats_by_agent = report.chat_agents
    agents = {a["user_id"]: a for a in board["agents"]}
    assert set(agents) == {seeded.a.id, seeded.b.id, seeded.c.id, seeded.d.id}
    for user_id, agent in agents.items():
        figures = calls_by_agent.get(user_id)
        assert agent["handled"] == (figures.answered if figures else 0) + chats_by_agent.get(
            user_id, 0
        )
        assert agent["aht_seconds"] == (figures.aht_seconds if figures else None)
    trends = report.trends()
    assert board["trends"] == {
        "by_hour": list(trends.by_hour),
        "by_category": trends.by_category,
        "by_county": trends.by_county,
    }

    # And the definitions themselves (docs/figures.md), checked by hand.
    assert rows["xingning"]["today"] == {
        "offered": 3, "answered": 2, "abandoned": 1, "short_abandoned": 1,
        "service_level": 1 / 3, "asa_seconds": 20.0, "aht_seconds": 95.0, "overflowed_in": 0,
        "chats": 2, "chats_answered": 1,
    }  # fmt: skip
    assert rows["city"]["today"] == {
        "offered": 2, "answered": 1, "abandoned": 1, "short_abandoned": 0,
        "service_level": 0.0, "asa_seconds": 70.0, "aht_seconds": 320.0, "overflowed_in": 1,
        "chats": 1, "chats_answered": 1,
    }  # fmt: skip
    assert rows["meijiang"]["today"] == {
        "offered": 2, "answered": 1, "abandoned": 0, "short_abandoned": 0,
        "service_level": 0.5, "asa_seconds": 5.0, "aht_seconds": 220.0, "overflowed_in": 0,
        "chats": 1, "chats_answered": 0,
    }  # fmt: skip
    assert rows["dabu"]["today"]["offered"] == 0
    assert rows["dabu"]["today"]["service_level"] is None
    assert board["total"]["offered"] == 7
    assert board["total"]["chats"] == 4
    assert agents[seeded.a.id]["handled"] == 3  # two calls and a chat
    assert agents[seeded.a.id]["aht_seconds"] == 95.0
    assert agents[seeded.c.id]["handled"] == 2
    assert agents[seeded.d.id]["handled"] == 0
    assert sum(board["trends"]["by_hour"]) == 8 + 4  # queued calls (short abandon too) + chats
    assert board["trends"]["by_hour"][9] == 5  # 09:xx Beijing: calls 1, 2, 7, 8 and a chat
    assert board["trends"]["by_county"] == {"441481": 7, "441402": 4, "": 1}


async def test_the_wallboard_works_without_telephony_live_parts_empty(api: Api) -> None:
    seeded = await seed(api)
    status, health = await api.call("GET", "/api/health")
    assert health["telephony"] == "not_configured"
    board = await get_wallboard(api, await api.user("supervisor"))
    rows = {w["code"]: w for w in board["windows"]}
    assert all(w["calls_waiting"] == 0 for w in board["windows"])
    assert all(w["longest_call_wait_seconds"] == 0 for w in board["windows"])
    # Chats and agents' states are not telephony's: they are there.
    assert rows["xingning"]["chats_waiting"] == 1
    assert rows["xingning"]["longest_chat_wait_seconds"] == 120
    assert rows["xingning"]["agents"] == {
        "ready": 2, "paused": 0, "wrapup": 0, "on_call": 0, "disconnected": 0,
    }  # fmt: skip
    assert rows["meijiang"]["agents"]["paused"] == 1
    assert rows["city"]["agents"]["wrapup"] == 1
    agents = {a["user_id"]: a for a in board["agents"]}
    assert agents[seeded.b.id]["state"] == "paused"
    assert agents[seeded.b.id]["reason"] == "lunch"
    assert agents[seeded.b.id]["since"] == "2026-12-02T02:12:00Z"
    assert agents[seeded.a.id]["chats_active"] == 1
    assert agents[seeded.d.id]["state"] == "ready"  # a chat seat only
    assert agents[seeded.a.id]["missed"] == 0
    # The SLA board: open work orders at risk, breached first.
    sla = board["sla"]
    assert (sla["warning"], sla["breached"]) == (2, 1)
    assert [i["id"] for i in sla["items"]][0] == seeded.tickets["xingning_breached"]
    assert {i["id"] for i in sla["items"]} == {
        seeded.tickets[n] for n in ("xingning_breached", "meijiang_warning", "xingning_warning")
    }
    counties = {c["county_code"]: c for c in sla["by_county"]}
    assert (counties["441481"]["warning"], counties["441481"]["breached"]) == (1, 1)
    assert (counties["441402"]["warning"], counties["441402"]["breached"]) == (1, 0)
    assert counties["441481"]["name"] == "兴宁市"
    item = sla["items"][0]
    assert item["short_ref"] and item["number"].startswith("MZ")
    assert item["sla_state"] == "breached" and item["state"] == "new"
    assert item["due_at"] is not None


async def test_a_county_admin_sees_only_their_county(api: Api) -> None:
    seeded = await seed(api)
    county_admin = await api.user("county_admin", county_code="441481")
    board = await get_wallboard(api, county_admin)
    report = await reports(api)
    assert [w["code"] for w in board["windows"]] == ["xingning"]
    assert {a["user_id"] for a in board["agents"]} == {seeded.a.id, seeded.d.id}
    xingning = report_today(report.windows["xingning"], report.chat_windows["xingning"])
    assert board["windows"][0]["today"] == xingning
    assert board["total"] == xingning
    assert [c["county_code"] for c in board["sla"]["by_county"]] == ["441481"]
    assert {i["county_code"] for i in board["sla"]["items"]} == {"441481"}
    assert (board["sla"]["warning"], board["sla"]["breached"]) == (1, 1)
    trends = report.trends(windows={"xingning"})
    assert board["trends"]["by_hour"] == list(trends.by_hour)
    assert sum(board["trends"]["by_hour"]) == 4 + 2  # 兴宁's four calls and two chats
    # Asking for another county is refused, not ignored.
    before = await row_counts(api)
    status, body = await api.call(
        "GET", "/api/wallboard", county_admin, params={"county_code": "441402"}
    )
    assert status == 422, body
    assert body["error"]["id"] == "validation_failed"
    assert body["error"]["details"][0]["field"] == "county_code"
    assert await row_counts(api) == before


@pytest.mark.parametrize("role", ["agent", "expert", "agency", "analyst", "editor"])
async def test_the_wallboard_refuses_who_does_not_supervise(api: Api, role: str) -> None:
    actor = await api.user(role, window_code="xingning" if role == "agent" else None)
    status, body = await api.call("GET", "/api/wallboard", actor)
    assert status == 403, body
    assert body["error"]["id"] == "permission_denied"
    api.client.session.cookie_jar.clear()  # the last login's cookie
    status, body = await api.call("GET", "/api/wallboard")
    assert status == 401, body


async def test_live_callers_and_busy_phones_come_from_the_live_picture(api: Api) -> None:
    seeded = await seed(api)
    picture = LivePicture()
    picture.waiting["xingning"] = {
        "cctest-1.1": NOW - timedelta(seconds=45),
        "cctest-1.2": NOW - timedelta(seconds=10),
    }
    interface = interface_of(seeded.a.id)
    picture.members[("xingning", interface)] = MemberState(
        queue="xingning",
        interface=interface,
        name="A",
        status=DeviceStatus.INUSE,
        in_call=True,
        changed_at=NOW - timedelta(seconds=30),
    )
    app_service = wallboard_of(api)
    service = WallboardService(
        sessionmaker=sessionmaker_of(api),
        figures=app_service.figures,
        reference=api.client.server.app[keys.REFERENCE],
        window_open=lambda now: {"xingning": True},
        live=lambda: picture,
        missed=app_service.missed,
        now=lambda: NOW,
    )
    board = (await service.snapshot(Scope("441481"))).model_dump(mode="json")
    row = board["windows"][0]
    assert (row["calls_waiting"], row["longest_call_wait_seconds"]) == (2, 45)
    assert row["open"] is True
    assert row["agents"]["on_call"] == 1 and row["agents"]["ready"] == 1
    agent = next(a for a in board["agents"] if a["user_id"] == seeded.a.id)
    assert agent["state"] == "on_call"
    assert agent["since"] == "2026-12-02T02:29:30Z"


async def test_missed_calls_are_counted_per_agent_and_day(api: Api) -> None:
    seeded = await seed(api)
    service = wallboard_of(api)
    missed: MissedCalls = service.missed
    clock = [NOW]
    missed._now = lambda: clock[0]

    def ring_no_answer(interface: str) -> AmiMessage:
        # The fields of a recorded AgentRingNoAnswer (tests/recordings).
        return AmiMessage(
            (
                ("Event", "AgentRingNoAnswer"),
                ("Queue", "xingning"),
                ("MemberName", "A"),
                ("Interface", interface),
                ("RingTime", "15000"),
            )
        )

    missed.on_ami_event(ring_no_answer(interface_of(seeded.a.id)))
    missed.on_ami_event(ring_no_answer(interface_of(seeded.a.id)))
    missed.on_ami_event(ring_no_answer("PJSIP/webagent-plain"))  # not an agent phone of ours
    board = await get_wallboard(api, await api.user("supervisor"))
    agents = {a["user_id"]: a for a in board["agents"]}
    assert agents[seeded.a.id]["missed"] == 2
    assert agents[seeded.b.id]["missed"] == 0
    clock[0] = NOW + timedelta(days=1)  # Beijing midnight passed
    assert missed.today(seeded.a.id) == 0


# --- the push ---------------------------------------------------------------------------


def call_queued(window: str) -> call_events.CallQueued:
    return call_events.CallQueued(
        linkedid=f"cctest-{uuid4().hex[:12]}",
        direction="inbound",
        caller_number="13800001234",
        county="441481",
        category="financing",
        window=window,
        queue=window,
        agent_interface=None,
        wait_seconds=0,
        outcome="queued",
        position=1,
        priority=None,
    )


def url_of(client: TestClient[Any, Any]) -> str:
    return str(client.server.make_url("/"))


async def test_bus_events_lead_to_one_debounced_push_per_supervisor_and_none_to_agents(
    api: Api, sockets: Sockets
) -> None:
    app = api.client.server.app
    wallboard_of(api)
    bus: EventBus = app[keys.BUS]
    url = url_of(api.client)
    supervisor = await sockets.staff(url, "/supervisor", await api.user("supervisor"))
    meijiang_admin = await sockets.staff(
        url, "/supervisor", await api.user("county_admin", county_code="441402")
    )
    agent: Sock = await sockets.staff(
        url, "/agent", await api.user("agent", window_code="xingning")
    )
    assert (await agent.call("window.join", {"window_code": "xingning"}))["ok"] is True

    async with sessionmaker_of(api)() as db, db.begin():
        db.add(_chat(NOW - timedelta(seconds=30), "dabu", "queued"))
    # A burst: one push.
    for _ in range(3):
        await bus.publish(call_events.CALL_QUEUED, call_queued("xingning"))
    await until(lambda: len(supervisor.received("wallboard.update")) == 1, what="first push")
    await until(lambda: len(meijiang_admin.received("wallboard.update")) == 1)

    # The marker: another change, another push.
    async with sessionmaker_of(api)() as db, db.begin():
        db.add(_chat(NOW - timedelta(seconds=5), "dabu", "queued"))
    await bus.publish(call_events.CALL_QUEUED, call_queued("xingning"))
    await until(lambda: len(supervisor.received("wallboard.update")) == 2, what="second push")
    await until(lambda: len(meijiang_admin.received("wallboard.update")) == 2)
    await until(lambda: len(agent.received("call.queued")) == 4, what="the agent's markers")

    pushes = supervisor.received("wallboard.update")
    for push in pushes:
        WallboardOut.model_validate(push)  # the payload's schema
    waiting = [{w["code"]: w["chats_waiting"] for w in p["windows"]}["dabu"] for p in pushes]
    assert waiting == [1, 2]
    assert len(pushes[0]["windows"]) == 9
    for push in meijiang_admin.received("wallboard.update"):
        assert [w["code"] for w in push["windows"]] == ["meijiang"]
        assert [c["county_code"] for c in push["sla"]["by_county"]] == ["441402"]
    assert "wallboard.update" not in agent.names()
    assert len(supervisor.received("wallboard.update")) == 2
    assert app[WALLBOARD_PUBLISHER].pushed == 4  # two pushes, each to two rooms


async def test_a_push_is_the_same_json_as_the_route(api: Api, sockets: Sockets) -> None:
    await seed(api)
    app = api.client.server.app
    supervisor_actor = await api.user("supervisor")
    supervisor = await sockets.staff(url_of(api.client), "/supervisor", supervisor_actor)
    board = await get_wallboard(api, supervisor_actor)
    app[WALLBOARD_PUBLISHER].stale()
    await until(lambda: len(supervisor.received("wallboard.update")) == 1)
    assert supervisor.received("wallboard.update")[0] == board
