"""Telephony over the AMI double (shaped by the recordings) and PostgreSQL:
agents in queues, call records, reconnects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.bus import Envelope, EventRegistry, InProcessBus
from smeline.db import make_engine, make_sessionmaker
from smeline.errors import Conflict
from smeline.reference.services import ReferenceService
from smeline.telephony import events as telephony_events
from smeline.telephony.agents import AgentAction, AgentService, AgentState
from smeline.telephony.models import CallRecord
from smeline.telephony.services import TelephonyService
from tests.asterisk_double import RECORDINGS
from tests.asterisk_double.ami_server import AmiDouble
from tests.polling import until, until_async
from tests.telephony_rig import meijiang_agent, started_service

AGENT = "PJSIP/agent-1"


@dataclass
class Rig:
    double: AmiDouble
    service: TelephonyService
    agents: AgentService
    sessionmaker: async_sessionmaker[AsyncSession]
    published: list[Envelope]
    user_id: int

    def member(self, queue: str, interface: str = AGENT) -> Any:
        q = self.double.queues.get(queue)
        if q is None:
            return None
        return next((m for m in q.members if m.interface == interface), None)


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await ReferenceService(sessionmaker=sessionmaker).seed()
    user_id = await meijiang_agent(sessionmaker)
    double = AmiDouble(bad_login_delay=0.05)
    for window in ("meijiang", "city", "county-meijiang"):
        double.add_queue(window)
    # The agent's WebRTC phone is registered (an unregistered one is never ready).
    double.add_endpoint("agent-1", contacts=["sip:agent-1@127.0.0.1:5070"])
    await double.start()
    registry = EventRegistry()
    telephony_events.register(registry)
    bus = InProcessBus(registry)
    await bus.start()
    published: list[Envelope] = []

    async def collect(envelope: Envelope) -> None:
        published.append(envelope)

    bus.subscribe(collect)
    service = await started_service(double, sessionmaker, bus)
    agents = service.agents
    try:
        yield Rig(double, service, agents, sessionmaker, published, user_id)
    finally:
        await service.stop()
        await bus.close()
        await double.stop()
        await engine.dispose()


async def test_login_adds_the_agent_endpoint_to_the_window_queue_with_a_state_interface(
    rig: Rig,
) -> None:
    status = await rig.agents.login(
        rig.user_id, window_code="meijiang", interface=AGENT, member_name="坐席一"
    )
    assert status.applied and status.state is AgentState.READY
    member = rig.member("meijiang")
    assert member is not None and member.dynamic
    assert member.state_interface == AGENT and not member.paused
    await until(lambda: rig.service.live.member("meijiang", AGENT) is not None)


async def test_pause_with_a_reason_is_a_real_queue_pause(rig: Rig) -> None:
    await rig.agents.login(rig.user_id, window_code="meijiang", interface=AGENT, member_name="a")
    await rig.agents.act(rig.user_id, AgentAction.PAUSE, reason="lunch")
    member = rig.member("meijiang")
    assert member.paused and member.paused_reason == "lunch"
    await until(lambda: rig.service.agents_ready("meijiang") == 0)
    await rig.agents.act(rig.user_id, AgentAction.READY)
    assert not rig.member("meijiang").paused
    await until(lambda: rig.service.agents_ready("meijiang") == 1)


async def _queue_status_paused(rig: Rig) -> str | None:
    result = await rig.service.client.send_action("QueueStatus", [("Queue", "meijiang")])
    items = [e for e in result.events if e.event == "QueueMember" and e.get("Location") == AGENT]
    return items[0].get("Paused") if items else None


async def test_agent_in_after_call_work_is_paused_in_asterisk_until_the_time_is_up(
    rig: Rig,
) -> None:
    await rig.agents.login(rig.user_id, window_code="meijiang", interface=AGENT, member_name="a")
    status = await rig.agents.act(rig.user_id, AgentAction.WRAPUP)
    assert status.state is AgentState.WRAPUP
    assert await _queue_status_paused(rig) == "1"
    assert rig.member("meijiang").paused_reason == "wrapup"
    # wrapup_seconds=1: smeline lifts the pause itself
    await until(lambda: not rig.member("meijiang").paused, within=5)
    assert (await rig.agents.status(rig.user_id)).state is AgentState.READY  # type: ignore[union-attr]


async def test_agent_whose_phone_is_not_registered_is_not_ready(rig: Rig) -> None:
    rig.double.add_queue("xingning")
    await rig.service.client.send_action(
        "QueueAdd", [("Queue", "xingning"), ("Interface", "PJSIP/agent-7"), ("MemberName", "x")]
    )
    await until(lambda: rig.service.live.member("xingning", "PJSIP/agent-7") is not None)
    assert rig.service.agents_ready("xingning") == 0


async def test_agent_whose_console_disconnected_is_never_offered_a_call(rig: Rig) -> None:
    await rig.agents.login(rig.user_id, window_code="meijiang", interface=AGENT, member_name="a")
    await rig.agents.act(rig.user_id, AgentAction.DISCONNECT)
    assert await _queue_status_paused(rig) == "1"
    assert rig.member("meijiang").paused_reason == "disconnected"


async def test_logout_removes_the_member(rig: Rig) -> None:
    await rig.agents.login(rig.user_id, window_code="meijiang", interface=AGENT, member_name="a")
    await rig.agents.logout(rig.user_id)
    assert rig.member("meijiang") is None
    assert await rig.agents.status(rig.user_id) is None


async def test_after_an_asterisk_restart_members_are_re_added_with_their_pause(rig: Rig) -> None:
    await rig.agents.login(rig.user_id, window_code="meijiang", interface=AGENT, member_name="a")
    await rig.agents.act(rig.user_id, AgentAction.PAUSE, reason="meeting")
    rebuilds = rig.service.rebuilds
    # An Asterisk restart: dynamic members are gone (persistentmembers=no), sockets drop.
    rig.double.queues["meijiang"].members.clear()
    await rig.double.drop_connections()
    await until(lambda: rig.service.rebuilds > rebuilds)
    member = rig.member("meijiang")
    assert member is not None and member.paused and member.paused_reason == "meeting"


async def test_a_stray_dynamic_agent_member_is_removed_on_reconnect(rig: Rig) -> None:
    rig.double.add_queue("xingning")
    await rig.service.client.send_action(
        "QueueAdd", [("Queue", "xingning"), ("Interface", "PJSIP/agent-99"), ("MemberName", "x")]
    )
    rebuilds = rig.service.rebuilds
    await rig.double.drop_connections()
    await until(lambda: rig.service.rebuilds > rebuilds)
    assert rig.member("xingning", "PJSIP/agent-99") is None


async def test_agent_complete_starts_after_call_work(rig: Rig) -> None:
    await rig.agents.login(rig.user_id, window_code="meijiang", interface=AGENT, member_name="a")
    await rig.double.emit(
        {"Event": "AgentComplete", "Queue": "meijiang", "Interface": AGENT, "TalkTime": "3"}
    )
    await until(lambda: rig.member("meijiang").paused)
    assert rig.member("meijiang").paused_reason == "wrapup"


async def _rows(rig: Rig) -> list[CallRecord]:
    async with rig.sessionmaker() as db:
        return list((await db.scalars(select(CallRecord))).all())


async def test_a_recorded_call_replayed_through_ami_becomes_one_row_and_events(rig: Rig) -> None:
    await rig.double.replay(RECORDINGS / "recordings--ami-events-call.ami")
    await until(lambda: any(e.name == "call.ended" for e in rig.published))
    await rig.service.wait_idle()
    rows = await _rows(rig)
    assert len(rows) == 1
    assert rows[0].outcome == "answered" and rows[0].talk_seconds == 7
    names = [e.name for e in rig.published]
    assert names.index("call.queued") < names.index("call.answered") < names.index("call.ended")


async def test_replaying_the_same_stream_twice_gives_the_same_rows(rig: Rig) -> None:
    for _ in range(2):
        await rig.double.replay(RECORDINGS / "recordings-2--ami-overflow.ami")
    await until(lambda: sum(e.name == "call.ended" for e in rig.published) == 2)
    await rig.service.wait_idle()
    async with rig.sessionmaker() as db:
        count = await db.scalar(select(func.count()).select_from(CallRecord))
    assert count == 1


async def test_a_call_that_ended_during_a_reconnect_gap_is_closed_no_phantom(rig: Rig) -> None:
    from smeline.telephony.ami_protocol import iter_raw_recording

    messages = [
        m
        for m in iter_raw_recording((RECORDINGS / "recordings--ami-events-call.ami").read_bytes())
        if m.is_event
    ]
    cut = next(i for i, m in enumerate(messages) if m.event == "HangupRequest")
    for message in messages[:cut]:
        await rig.double.emit(message)
    await until(lambda: len(rig.service.tracker.calls) == 1)
    rebuilds = rig.service.rebuilds
    await rig.double.drop_connections()  # the rest of the call happens while we are away
    await until(lambda: rig.service.rebuilds > rebuilds)
    await until(lambda: any(e.name == "call.ended" for e in rig.published))
    await rig.service.wait_idle()
    assert rig.service.tracker.calls == {}
    rows = await _rows(rig)
    assert len(rows) == 1 and rows[0].outcome == "answered" and rows[0].ended_at is not None


async def test_an_autopause_by_asterisk_is_kept_after_a_reconnect(rig: Rig) -> None:
    await rig.agents.login(rig.user_id, window_code="meijiang", interface=AGENT, member_name="a")
    member = rig.member("meijiang")
    # app_queue pauses a member who let a call ring out (autopause); the event
    # shape is the recorded QueueMemberPause, the reason is app_queue's.
    member.paused, member.paused_reason = True, "Auto-Pause"
    await rig.double.emit(
        {
            "Event": "QueueMemberPause",
            "Queue": "meijiang",
            "MemberName": "a",
            "Interface": AGENT,
            "StateInterface": AGENT,
            "Membership": "dynamic",
            "Paused": "1",
            "PausedReason": "Auto-Pause",
        }
    )

    async def paused() -> bool:
        status = await rig.agents.status(rig.user_id)
        return status is not None and status.state is AgentState.PAUSED

    await until_async(paused)
    status = await rig.agents.status(rig.user_id)
    assert status is not None and status.reason == "Auto-Pause"
    rebuilds = rig.service.rebuilds
    await rig.double.drop_connections()
    await until(lambda: rig.service.rebuilds > rebuilds)
    assert rig.member("meijiang").paused  # not undone by the reconciliation


class OwedWrapup:
    """Stands in for the contacts service: the agent owes a wrap-up until told."""

    def __init__(self) -> None:
        self.owed = True
        self.asked = 0

    async def ensure_free(self, user_id: int, *, now: datetime) -> None:
        self.asked += 1
        if self.owed:
            raise Conflict("Record the wrap-up first", error_id="wrapup_required")


async def test_after_call_work_outlasts_its_time_while_a_wrap_up_is_owed(rig: Rig) -> None:
    guard = OwedWrapup()
    rig.agents.ready_guard = guard
    await rig.agents.login(rig.user_id, window_code="meijiang", interface=AGENT, member_name="a")
    await rig.agents.act(rig.user_id, AgentAction.WRAPUP)
    # wrapup_seconds=1: the timer fires, asks, and the agent stays paused
    await until(lambda: guard.asked >= 1, within=5)
    assert (await rig.agents.status(rig.user_id)).state is AgentState.WRAPUP  # type: ignore[union-attr]
    assert await _queue_status_paused(rig) == "1"
    # the wrap-up is written: after-call work ends at once
    guard.owed = False
    await rig.agents.wrapup_recorded(rig.user_id)
    assert (await rig.agents.status(rig.user_id)).state is AgentState.READY  # type: ignore[union-attr]
    assert await _queue_status_paused(rig) == "0"
