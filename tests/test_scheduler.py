"""The SLA scheduler: warnings, breaches, escalations, archiving; once, across restarts
and across processes sharing one PostgreSQL database.

Ticks are given an explicit ``now``, so nothing here waits for a clock. Where the
scheduler's own loop runs, the tests poll the database with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline import keys
from smeline.app import create_app, event_registry
from smeline.auth.permissions import Principal
from smeline.bus import Envelope, RedisBus
from smeline.db import utcnow
from smeline.notifications.models import Notification
from smeline.ticketing import events as ev
from smeline.ticketing.calendar import BUSINESS_TZ
from smeline.ticketing.models import (
    CommentKind,
    Escalation,
    Priority,
    SlaEvent,
    SlaState,
    Ticket,
    TicketHistory,
    TicketStatus,
)
from smeline.ticketing.scheduler import SlaScheduler
from smeline.ticketing.schemas import (
    ActionIn,
    CommentIn,
    TicketCreateIn,
    TicketOut,
    TicketUpdateIn,
)
from smeline.ticketing.services import TicketService
from smeline.ticketing.state_machine import Action
from tests.conftest import REDIS_URL, Actor, Api, make_settings, ticket_payload

ROOT = Path(__file__).resolve().parents[1]
PLAIN_KINDS = {
    "first_response_warning",
    "first_response_breach",
    "resolution_warning",
    "resolution_breach",
}
HANDOFF_KINDS = {"handoff_warning", "handoff_breach"}


def app_of(api: Api) -> web.Application:
    app = api.client.app
    assert isinstance(app, web.Application)
    return app


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BUSINESS_TZ)


def create_in(**overrides: Any) -> TicketCreateIn:
    # The request schemas are strict in Python mode; JSON mode takes what a client sends.
    return TicketCreateIn.model_validate_json(json.dumps(ticket_payload(**overrides)))


@dataclass
class Staff:
    admin: Actor
    p: Principal  # the admin, for calls to the service with an explicit ``now``
    agent: Actor
    agency: Actor
    county_admin: Actor  # 441481 兴宁市, the county of ticket_payload()
    other_county_admin: Actor  # 441402 梅江区
    supervisor: Actor


@pytest.fixture
async def staff(api: Api) -> Staff:
    assert api.admin is not None
    authenticated = await app_of(api)[keys.AUTH].authenticate(api.admin.token, now=utcnow())
    assert authenticated is not None
    return Staff(
        admin=api.admin,
        p=authenticated.principal,
        agent=await api.user("agent", window_code="xingning"),
        agency=await api.user("agency"),
        county_admin=await api.user("county_admin", county_code="441481"),
        other_county_admin=await api.user("county_admin", county_code="441402"),
        supervisor=await api.user("supervisor"),
    )


def tickets(api: Api) -> TicketService:
    return app_of(api)[keys.TICKETS]


def scheduler(api: Api) -> SlaScheduler:
    return app_of(api)[keys.SCHEDULER]


def sessions(api: Api) -> async_sessionmaker[AsyncSession]:
    return app_of(api)[keys.SESSIONMAKER]


async def rows(api: Api, model: Any, *where: Any) -> list[Any]:
    async with sessions(api)() as db:
        return list(await db.scalars(select(model).where(*where).order_by(model.id)))


async def count(api: Api, model: Any) -> int:
    async with sessions(api)() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def snapshot(api: Api) -> dict[str, int]:
    return {
        "events": await count(api, SlaEvent),
        "escalations": await count(api, Escalation),
        "notifications": await count(api, Notification),
        "history": await count(api, TicketHistory),
    }


async def act(
    api: Api, p: Principal, ticket_id: int, action: Action, now: datetime, **kw: Any
) -> TicketOut:
    return await tickets(api).act(p, ticket_id, ActionIn(action=action, **kw), now=now)


@asynccontextmanager
async def running_app(database_url: str, **overrides: Any) -> AsyncIterator[web.Application]:
    """Another instance of the service on the same database, started as in production."""
    app = create_app(make_settings(database_url, **overrides), background=True)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def poll(condition: Any, *, within: float = 60.0, what: str = "condition") -> Any:
    """Await ``condition()`` until it returns something truthy, or fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ one process


async def test_warning_then_breach_are_raised_once_and_only_the_breach_escalates(
    api: Api, staff: Staff
) -> None:
    received: list[Envelope] = []

    async def on_event(envelope: Envelope) -> None:
        received.append(envelope)

    bus = app_of(api)[keys.BUS]
    unsubscribe = bus.subscribe(on_event, names=[ev.TICKET_SLA_WARNING, ev.TICKET_SLA_BREACHED])
    try:
        # Urgent: first response 30 minutes -> warning 09:22:30, breach 09:30.
        t = await tickets(api).create(
            staff.p,
            create_in(priority="urgent", assignee_id=staff.agent.id),
            now=bj(2025, 6, 11, 9, 0),
        )
        assert (await scheduler(api).tick(bj(2025, 6, 11, 9, 22))).raised == 0
        before = await snapshot(api)

        result = await scheduler(api).tick(bj(2025, 6, 11, 9, 23))
        assert (result.raised, result.escalations) == (1, 0)
        [warning] = await rows(api, SlaEvent)
        assert (warning.ticket_id, warning.kind) == (t.id, "first_response_warning")
        assert warning.due_at == bj(2025, 6, 11, 9, 22) + timedelta(seconds=30)
        [history] = await rows(api, TicketHistory, TicketHistory.action == "sla_warning")
        assert (history.ticket_id, history.field, history.actor_id) == (
            t.id,
            "first_response",
            None,
        )
        # A warning tells the assignee; it escalates to nobody.
        warned = await rows(api, Notification, Notification.template_id == "ticket_sla_warning")
        assert [n.recipient_user_id for n in warned] == [staff.agent.id]
        assert await rows(api, Escalation) == []
        assert [e.name for e in received] == [ev.TICKET_SLA_WARNING]
        payload = received[0].parsed(bus.registry)
        assert isinstance(payload, ev.TicketSlaEvent)
        assert (payload.ticket_id, payload.clock, payload.escalated_to) == (
            t.id,
            "first_response",
            [],
        )
        assert payload.sla_state == SlaState.WARNING

        # Ticking again, before or at the same instant, raises nothing new.
        assert (await scheduler(api).tick(bj(2025, 6, 11, 9, 23))).raised == 0
        assert (await scheduler(api).tick(bj(2025, 6, 11, 9, 29))).raised == 0
        assert await snapshot(api) == {
            **before,
            "events": before["events"] + 1,
            "notifications": before["notifications"] + 1,
            "history": before["history"] + 1,
        }

        result = await scheduler(api).tick(bj(2025, 6, 11, 9, 31))
        assert (result.raised, result.escalations) == (1, 2)
        breach = (await rows(api, SlaEvent, SlaEvent.kind == "first_response_breach"))[0]
        assert breach.due_at == bj(2025, 6, 11, 9, 30)
        escalated = await rows(api, Escalation)
        assert sorted(e.to_user_id for e in escalated) == sorted(
            [staff.county_admin.id, staff.supervisor.id]
        )
        assert {e.sla_event_id for e in escalated} == {breach.id}
        told = await rows(api, Notification, Notification.template_id == "ticket_sla_breached")
        assert sorted(n.recipient_user_id for n in told) == sorted(
            [staff.agent.id, staff.county_admin.id, staff.supervisor.id]
        )
        # The text names the deadline in Beijing time.
        assert all("2025-06-11 09:30" in n.body for n in told)
        assert [e.name for e in received] == [ev.TICKET_SLA_WARNING, ev.TICKET_SLA_BREACHED]
        payload = received[1].parsed(bus.registry)
        assert isinstance(payload, ev.TicketSlaEvent)
        assert sorted(payload.escalated_to) == sorted([staff.county_admin.id, staff.supervisor.id])
        assert payload.sla_state == SlaState.BREACHED
        assert payload.due_at == bj(2025, 6, 11, 9, 30)

        after = await snapshot(api)
        for later in (bj(2025, 6, 11, 9, 31), bj(2025, 6, 11, 9, 45), bj(2025, 6, 11, 11, 0)):
            assert (await scheduler(api).tick(later)).raised == 0
        assert await snapshot(api) == after
        assert len(received) == 2

        out = await tickets(api).get(staff.p, t.id, now=bj(2025, 6, 11, 11, 0))
        assert out.sla.first_response.breached
        assert out.sla.state is SlaState.BREACHED
    finally:
        unsubscribe()


async def test_breach_of_an_unassigned_work_order_reaches_only_its_own_countys_admin(
    api: Api, staff: Staff
) -> None:
    # 梅江区: escalated to its county admin and the supervisors, not to 兴宁市's admin.
    t = await tickets(api).create(
        staff.p, create_in(priority="urgent", county_code="441402"), now=bj(2025, 6, 11, 9, 0)
    )
    assert t.window_code == "meijiang"
    result = await scheduler(api).tick(bj(2025, 6, 11, 9, 31))
    assert result.raised == 2  # warning and breach of the first response, both due
    warned = await rows(api, Notification, Notification.template_id == "ticket_sla_warning")
    # Nobody is assigned: the warning goes to those a breach would reach.
    assert sorted(n.recipient_user_id for n in warned) == sorted(
        [staff.other_county_admin.id, staff.supervisor.id]
    )
    escalated = await rows(api, Escalation)
    assert sorted(e.to_user_id for e in escalated) == sorted(
        [staff.other_county_admin.id, staff.supervisor.id]
    )
    assert staff.county_admin.id not in {e.to_user_id for e in escalated}


async def test_breach_that_fell_while_the_service_was_stopped_is_raised_when_it_starts(
    api: Api, staff: Staff, database_url: str
) -> None:
    # Opened 60 days ago; no scheduler has run since (the test app has none).
    opened = utcnow() - timedelta(days=60)
    t = await tickets(api).create(staff.p, create_in(priority="urgent"), now=opened)
    assert await rows(api, SlaEvent) == []

    async with running_app(database_url, scheduler_enabled=True, sla_tick_seconds=0.1):

        async def raised() -> set[str]:
            kinds = {e.kind for e in await rows(api, SlaEvent, SlaEvent.ticket_id == t.id)}
            return kinds if kinds >= {"first_response_breach", "resolution_breach"} else set()

        kinds = await poll(raised, what="the breaches to be raised on start")
    assert kinds == PLAIN_KINDS
    events = await rows(api, SlaEvent)
    assert Counter(e.kind for e in events) == Counter(PLAIN_KINDS)
    breach = next(e for e in events if e.kind == "resolution_breach")
    assert breach.due_at == t.sla.resolution.due_at
    assert len(await rows(api, Escalation)) == 4  # two breaches x (county admin, supervisor)


async def test_restart_does_not_raise_or_escalate_the_same_breach_again(
    api: Api, staff: Staff, database_url: str
) -> None:
    t = await tickets(api).create(
        staff.p, create_in(priority="urgent", assignee_id=staff.agent.id), now=bj(2025, 6, 11, 9)
    )
    first = await scheduler(api).tick(bj(2025, 6, 12, 9, 1))  # past both deadlines
    assert first.raised == 4 and first.escalations == 4
    before = await snapshot(api)

    # A brand-new process: new engine, new services, new scheduler, a later now.
    async with running_app(database_url) as app:
        restarted = app[keys.SCHEDULER]
        assert restarted is not scheduler(api)
        assert app[keys.ENGINE] is not app_of(api)[keys.ENGINE]
        again = await restarted.tick(bj(2025, 6, 20, 10, 0))
        assert (again.raised, again.escalations) == (0, 0)
        assert await snapshot(api) == before

        # Even if the work order forgot that it was raised (flags lost, check due again),
        # the events' unique keys keep every breach and escalation single.
        async with sessions(api)() as db:
            await db.execute(
                text(
                    "UPDATE tickets SET first_response_warned = false,"
                    " first_response_breached = false, resolution_warned = false,"
                    " resolution_breached = false, next_sla_check_at = created_at"
                    " WHERE id = :id"
                ),
                {"id": t.id},
            )
            await db.commit()
        again = await restarted.tick(bj(2025, 6, 21, 10, 0))
        assert (again.raised, again.escalations) == (0, 0)
        assert await snapshot(api) == before
    async with sessions(api)() as db:
        ticket = await db.get(Ticket, t.id)
        assert ticket is not None
        assert ticket.first_response_breached and ticket.resolution_breached
        assert ticket.next_sla_check_at is None


async def test_closed_work_orders_are_archived_after_archive_after_days(
    api: Api, staff: Staff
) -> None:
    p = staff.p
    t = await tickets(api).create(p, create_in(), now=bj(2025, 6, 9, 9, 0))
    await tickets(api).comment(
        p, t.id, CommentIn(kind=CommentKind.REPLY, body="已答复"), now=bj(2025, 6, 9, 9, 5)
    )
    await act(api, p, t.id, Action.START, bj(2025, 6, 9, 9, 5))
    await act(api, p, t.id, Action.RESOLVE, bj(2025, 6, 9, 10, 0), resolution="已解决")
    closed_at = bj(2025, 6, 9, 10, 30)
    await act(api, p, t.id, Action.CLOSE, closed_at)
    # Resolved but never closed: stays as it is.
    kept = await tickets(api).create(p, create_in(), now=bj(2025, 6, 9, 9, 0))
    await act(api, p, kept.id, Action.START, bj(2025, 6, 9, 9, 5))
    await act(api, p, kept.id, Action.RESOLVE, bj(2025, 6, 9, 10, 0), resolution="已解决")

    assert (await scheduler(api).tick(closed_at + timedelta(days=29, hours=23))).archived == 0
    result = await scheduler(api).tick(closed_at + timedelta(days=30, minutes=1))
    assert result.archived == 1
    out = await tickets(api).get(p, t.id, now=utcnow())
    assert out.status is TicketStatus.ARCHIVED
    assert out.archived_at == closed_at + timedelta(days=30, minutes=1)
    [row] = await rows(
        api, TicketHistory, TicketHistory.ticket_id == t.id, TicketHistory.note == "auto-archive"
    )
    assert (row.actor_id, row.action, row.from_value, row.to_value) == (
        None,
        "status_changed",
        "closed",
        "archived",
    )
    assert (await tickets(api).get(p, kept.id, now=utcnow())).status is TicketStatus.RESOLVED

    assert (await scheduler(api).tick(closed_at + timedelta(days=90))).archived == 0
    assert len(await rows(api, TicketHistory, TicketHistory.note == "auto-archive")) == 1


async def test_archiving_is_off_with_archive_after_days_zero(
    api: Api, staff: Staff, database_url: str
) -> None:
    p = staff.p
    t = await tickets(api).create(p, create_in(), now=bj(2025, 6, 9, 9, 0))
    await act(api, p, t.id, Action.START, bj(2025, 6, 9, 9, 5))
    await act(api, p, t.id, Action.RESOLVE, bj(2025, 6, 9, 10, 0), resolution="已解决")
    await act(api, p, t.id, Action.CLOSE, bj(2025, 6, 9, 10, 30))
    async with running_app(database_url, archive_after_days=0) as app:
        assert (await app[keys.SCHEDULER].tick(bj(2026, 6, 9))).archived == 0
    assert (await tickets(api).get(p, t.id, now=utcnow())).status is TicketStatus.CLOSED


async def test_handoff_warning_and_breach_are_raised_once_and_the_breach_escalates(
    api: Api, staff: Staff
) -> None:
    status, body = await api.call(
        "PUT",
        "/api/sla/policies",
        api.admin,
        json={
            "category_code": "technology",
            "priority": "normal",
            "first_response_min": 600,
            "resolution_min": 3000,
            "handoff_min": 100,
        },
    )
    assert status == 200, body
    p = staff.p
    t = await tickets(api).create(p, create_in(category_code="technology"), now=bj(2025, 6, 11, 9))
    resolution_due = t.sla.resolution.due_at
    # Handed to the agency at 09:00: warning at 75 min = 10:15, due 10:40.
    out = await act(api, p, t.id, Action.TRANSFER, bj(2025, 6, 11, 9), to_user_id=staff.agency.id)
    assert out.handoff is not None
    handoff_id = out.handoff.id
    assert out.handoff.due_at == bj(2025, 6, 11, 10, 40)
    assert out.sla.resolution.due_at == resolution_due

    assert (await scheduler(api).tick(bj(2025, 6, 11, 10, 14))).raised == 0
    result = await scheduler(api).tick(bj(2025, 6, 11, 10, 16))
    assert (result.raised, result.escalations) == (1, 0)
    [warning] = await rows(api, SlaEvent)
    assert (warning.kind, warning.handoff_id) == ("handoff_warning", handoff_id)
    told = await rows(api, Notification, Notification.template_id == "ticket_sla_warning")
    assert [n.recipient_user_id for n in told] == [staff.agency.id]
    assert (await scheduler(api).tick(bj(2025, 6, 11, 10, 39))).raised == 0

    result = await scheduler(api).tick(bj(2025, 6, 11, 10, 41))
    assert (result.raised, result.escalations) == (1, 2)
    [breach] = await rows(api, SlaEvent, SlaEvent.kind == "handoff_breach")
    assert (breach.handoff_id, breach.due_at) == (handoff_id, bj(2025, 6, 11, 10, 40))
    assert sorted(e.to_user_id for e in await rows(api, Escalation)) == sorted(
        [staff.county_admin.id, staff.supervisor.id]
    )
    told = await rows(api, Notification, Notification.template_id == "ticket_sla_breached")
    # The receiver, the one who handed it over, and those escalated to.
    assert sorted(n.recipient_user_id for n in told) == sorted(
        [staff.agency.id, staff.admin.id, staff.county_admin.id, staff.supervisor.id]
    )
    [history] = await rows(api, TicketHistory, TicketHistory.action == "sla_breach")
    assert (history.field, history.actor_id) == ("handoff", None)

    before = await snapshot(api)
    for later in (bj(2025, 6, 11, 10, 41), bj(2025, 6, 11, 16, 0)):
        assert (await scheduler(api).tick(later)).raised == 0
    assert await snapshot(api) == before
    out = await tickets(api).get(p, t.id, now=bj(2025, 6, 11, 16, 0))
    assert out.handoff is not None and out.handoff.sla_state is SlaState.BREACHED
    # The work order's own deadline did not move, and its own clocks are fine.
    assert out.sla.resolution.due_at == resolution_due
    assert out.sla.resolution.breached is False


async def test_a_deadline_reached_just_before_a_pause_is_still_raised(
    api: Api, staff: Staff
) -> None:
    p = staff.p
    # Urgent: resolution due Thu 2025-06-12 09:00.
    t = await tickets(api).create(p, create_in(priority="urgent"), now=bj(2025, 6, 11, 9, 0))
    await tickets(api).comment(
        p, t.id, CommentIn(kind=CommentKind.REPLY, body="您好"), now=bj(2025, 6, 11, 9, 5)
    )
    await act(api, p, t.id, Action.START, bj(2025, 6, 11, 9, 10))
    assert (await scheduler(api).tick(bj(2025, 6, 11, 17, 0))).raised == 1  # the warning
    # Paused ten minutes after the deadline; no tick ran in between.
    await act(api, p, t.id, Action.WAIT_CUSTOMER, bj(2025, 6, 12, 9, 10))
    result = await scheduler(api).tick(bj(2025, 6, 12, 9, 11))
    assert (result.raised, result.escalations) == (1, 2)
    [breach] = await rows(api, SlaEvent, SlaEvent.kind == "resolution_breach")
    assert breach.due_at == bj(2025, 6, 12, 9, 0)
    assert (await scheduler(api).tick(bj(2025, 6, 20, 9, 0))).raised == 0
    # Resumed later: it stays breached, nothing is raised again.
    await act(api, p, t.id, Action.RESUME, bj(2025, 6, 23, 9, 0))
    assert (await scheduler(api).tick(bj(2025, 6, 30, 9, 0))).raised == 0
    assert len(await rows(api, SlaEvent, SlaEvent.kind == "resolution_breach")) == 1


async def test_pausing_before_the_deadline_holds_the_breach_back(api: Api, staff: Staff) -> None:
    p = staff.p
    t = await tickets(api).create(p, create_in(priority="urgent"), now=bj(2025, 6, 11, 9, 0))
    await tickets(api).comment(
        p, t.id, CommentIn(kind=CommentKind.REPLY, body="您好"), now=bj(2025, 6, 11, 9, 5)
    )
    await act(api, p, t.id, Action.START, bj(2025, 6, 11, 9, 10))
    # Paused at 10:00 with 60 of 390 minutes used: nothing falls due while waiting.
    await act(api, p, t.id, Action.WAIT_CUSTOMER, bj(2025, 6, 11, 10, 0))
    assert (await scheduler(api).tick(bj(2025, 7, 31))).raised == 0
    # Resumed Mon 06-16 08:30: 330 left -> due Mon 14:30 + 120 = 16:30 (warning at 232.5).
    await act(api, p, t.id, Action.RESUME, bj(2025, 6, 16, 8, 30))
    assert (await scheduler(api).tick(bj(2025, 6, 16, 16, 29))).raised == 1  # warning
    assert (await scheduler(api).tick(bj(2025, 6, 16, 16, 30))).raised == 1  # breach
    [breach] = await rows(api, SlaEvent, SlaEvent.kind == "resolution_breach")
    assert breach.due_at == bj(2025, 6, 16, 16, 30)


async def test_lowering_the_priority_after_a_warning_clears_it_without_raising_twice(
    api: Api, staff: Staff
) -> None:
    p = staff.p
    # Urgent: first response warning 09:22:30, due 09:30.
    t = await tickets(api).create(p, create_in(priority="urgent"), now=bj(2025, 6, 11, 9, 0))
    assert (await scheduler(api).tick(bj(2025, 6, 11, 9, 23))).raised == 1
    # Low: 780 minutes from creation -> warning (585) Thu 14:45, due Fri 09:00.
    out = await tickets(api).update(
        p, t.id, TicketUpdateIn(priority=Priority.LOW), now=bj(2025, 6, 11, 9, 25)
    )
    assert out.sla.first_response.due_at == bj(2025, 6, 13, 9, 0)
    assert out.sla.first_response.warning_at == bj(2025, 6, 12, 14, 45)
    assert out.sla.state is SlaState.OK
    assert (await scheduler(api).tick(bj(2025, 6, 11, 9, 31))).raised == 0
    # The new warning time comes: the state shows it, the warning is not raised again.
    assert (await scheduler(api).tick(bj(2025, 6, 12, 14, 46))).raised == 0
    out = await tickets(api).get(p, t.id, now=bj(2025, 6, 12, 14, 46))
    assert out.sla.state is SlaState.WARNING
    assert (await scheduler(api).tick(bj(2025, 6, 13, 9, 0))).raised == 1
    assert Counter(e.kind for e in await rows(api, SlaEvent)) == Counter(
        ["first_response_warning", "first_response_breach"]
    )
    assert len(await rows(api, Notification, Notification.template_id == "ticket_sla_warning")) == 2


async def test_national_day_breach_is_raised_at_the_right_hour_and_a_transfer_does_not_move_it(
    api: Api, staff: Staff
) -> None:
    status, body = await api.call(
        "PUT",
        "/api/sla/policies",
        api.admin,
        json={
            "category_code": "legal",
            "priority": "high",
            "first_response_min": 60,
            "resolution_min": 2340,
            "handoff_min": 780,
        },
    )
    assert status == 200, body
    p = staff.p
    t = await tickets(api).create(
        p, create_in(category_code="legal", priority="high"), now=bj(2025, 9, 26, 17, 20)
    )
    await tickets(api).comment(
        p, t.id, CommentIn(kind=CommentKind.REPLY, body="已受理"), now=bj(2025, 9, 28, 9, 0)
    )
    await act(api, p, t.id, Action.TRANSFER, bj(2025, 9, 29, 10, 0), to_user_id=staff.agency.id)
    # The reply came before the first response's warning. Through the holiday only the
    # handoff's warning (585 of 780 minutes: Tue 09-30 15:45) falls due.
    assert (await scheduler(api).tick(bj(2025, 10, 8, 23, 59))).raised == 1
    [warning] = await rows(api, SlaEvent)
    assert (warning.kind, warning.due_at) == ("handoff_warning", bj(2025, 9, 30, 15, 45))
    # The handoff is due Thu 10-09 10:00; the resolution warned Fri 10-10 11:35.
    assert (await scheduler(api).tick(bj(2025, 10, 9, 9, 59))).raised == 0
    assert (await scheduler(api).tick(bj(2025, 10, 9, 10, 0))).raised == 1
    assert (await scheduler(api).tick(bj(2025, 10, 11, 17, 19))).raised == 1
    assert {(e.kind, e.due_at) for e in await rows(api, SlaEvent)} == {
        ("handoff_warning", bj(2025, 9, 30, 15, 45)),
        ("handoff_breach", bj(2025, 10, 9, 10, 0)),
        ("resolution_warning", bj(2025, 10, 10, 11, 35)),
    }
    # The resolution, due Sat 10-11 17:20 (调休), was not moved by the transfer.
    assert (await scheduler(api).tick(bj(2025, 10, 11, 17, 20))).raised == 1
    [breach] = await rows(api, SlaEvent, SlaEvent.kind == "resolution_breach")
    assert breach.due_at == bj(2025, 10, 11, 17, 20)
    assert breach.due_at == datetime(2025, 10, 11, 9, 20, tzinfo=UTC)


# ------------------------------------------------------------------ two processes


@dataclass
class Load:
    """Work orders due for the race, and what raising them must produce."""

    ticket_ids: list[int]
    handed_over: set[int]
    county_of: dict[int, str]

    @property
    def events(self) -> int:
        return 4 * len(self.ticket_ids) + 2 * len(self.handed_over)

    @property
    def escalations(self) -> int:
        # Each breach goes to the county admin of the work order's county and the supervisor.
        return 2 * (2 * len(self.ticket_ids) + len(self.handed_over))

    @property
    def notifications(self) -> int:
        plain = len(self.ticket_ids) - len(self.handed_over)
        # Unassigned: every event tells the county admin and the supervisor (2 x 4).
        # Handed over: warnings tell the agency (1 x 3); first response and resolution
        # breaches the agency, county admin and supervisor (3 x 2); the handoff breach
        # also the admin who handed it over (4).
        return 8 * plain + 13 * len(self.handed_over)


async def open_load(api: Api, staff: Staff, n: int, *, offset: int = 0) -> Load:
    """``n`` work orders opened in June 2025, every tenth handed to the agency."""
    load = Load([], set(), {})
    start = bj(2025, 6, 10, 9, 0)
    for i in range(offset, offset + n):
        county = "441481" if i % 2 == 0 else "441402"
        opened = start + timedelta(minutes=i)
        t = await tickets(api).create(staff.p, create_in(county_code=county), now=opened)
        load.ticket_ids.append(t.id)
        load.county_of[t.id] = county
        if i % 10 == 0:
            await act(
                api,
                staff.p,
                t.id,
                Action.TRANSFER,
                opened + timedelta(minutes=1),
                to_user_id=staff.agency.id,
            )
            load.handed_over.add(t.id)
    return load


@dataclass
class Worker:
    proc: asyncio.subprocess.Process
    pid: int
    stderr: Path

    async def finish(self, within: float = 180.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            pytest.fail(f"worker {self.pid} did not finish: {self.stderr.read_text()[-2000:]}")
        last = (await self.proc.stdout.read()).decode().strip().splitlines()
        assert self.proc.returncode == 0, self.stderr.read_text()[-2000:]
        stats: dict[str, Any] = json.loads(last[-1])
        return stats


async def start_worker(
    tmp_path: Path, name: str, database_url: str, channel: str, go: Path, *extra: str
) -> Worker:
    stderr = tmp_path / f"{name}.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMELINE_")}
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.scheduler_worker",
            "--database-url",
            database_url,
            "--redis-url",
            REDIS_URL,
            "--channel",
            channel,
            "--now",
            bj(2025, 8, 29, 12, 0).isoformat(),
            "--go",
            str(go),
            *extra,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"worker {name} never got ready: {stderr.read_text()[-2000:]}")
    ready = json.loads(line or b"{}")
    assert ready.get("ready"), stderr.read_text()[-2000:]
    return Worker(proc, int(ready["pid"]), stderr)


@asynccontextmanager
async def listening(channel: str) -> AsyncIterator[tuple[RedisBus, list[Envelope]]]:
    """A subscriber on the workers' private Redis channel."""
    bus = RedisBus(event_registry(), REDIS_URL, channel=channel)
    received: list[Envelope] = []

    async def on_event(envelope: Envelope) -> None:
        received.append(envelope)

    bus.subscribe(on_event)
    await bus.start()
    try:
        yield bus, received
    finally:
        await bus.close()


async def drain(bus: RedisBus, received: list[Envelope]) -> list[Envelope]:
    """Everything published before now: a marker of our own comes after all of it."""
    marker = await bus.publish(
        ev.TICKET_CREATED,
        ev.TicketEvent(
            ticket_id=0,
            number="MARKER",
            status="new",
            priority="normal",
            category_code="other",
            county_code="441400",
            window_code="city",
            assignee_id=None,
            sla_state="ok",
            actor_id=None,
            resolution_due_at=None,
        ),
    )

    async def arrived() -> bool:
        return any(e.id == marker.id for e in received)

    await poll(arrived, what="the marker event")
    return [e for e in received if e.id != marker.id]


async def assert_raised_exactly_once(
    api: Api,
    staff: Staff,
    load: Load,
    stats: Sequence[dict[str, Any]],
    envelopes: list[Envelope],
    pids: set[int],
) -> None:
    assert all(s["errors"] == 0 for s in stats), stats

    events = await rows(api, SlaEvent)
    per_key = Counter((e.ticket_id, e.kind, e.handoff_id) for e in events)
    assert set(per_key.values()) == {1}
    assert len(events) == load.events
    kinds: dict[int, set[str]] = {}
    for e in events:
        kinds.setdefault(e.ticket_id, set()).add(e.kind)
    for ticket_id in load.ticket_ids:
        expected = PLAIN_KINDS | (HANDOFF_KINDS if ticket_id in load.handed_over else set())
        assert kinds.get(ticket_id) == expected, ticket_id
    assert sum(s["raised"] for s in stats) == load.events

    # History has no unique key: one sla_* row per event proves nobody raised twice.
    history = await rows(
        api, TicketHistory, TicketHistory.action.in_(["sla_warning", "sla_breach"])
    )
    per_history = Counter((h.ticket_id, h.action, h.field) for h in history)
    assert set(per_history.values()) == {1}
    assert len(history) == load.events

    escalations = await rows(api, Escalation)
    assert len(escalations) == load.escalations
    assert sum(s["escalations"] for s in stats) == load.escalations
    assert set(Counter((e.sla_event_id, e.to_user_id) for e in escalations).values()) == {1}
    county_admins = {"441481": staff.county_admin.id, "441402": staff.other_county_admin.id}
    for e in escalations:
        assert e.to_user_id in {staff.supervisor.id, county_admins[load.county_of[e.ticket_id]]}

    notifications = await rows(
        api,
        Notification,
        Notification.template_id.in_(["ticket_sla_warning", "ticket_sla_breached"]),
    )
    assert len(notifications) == load.notifications

    # The bus carried each warning and breach once, from the two scheduler processes.
    assert {int(e.origin.split(":")[1]) for e in envelopes} <= pids
    published = Counter(
        (e.name, e.payload["ticket_id"], e.payload["clock"], e.payload["handoff_id"])
        for e in envelopes
    )
    assert set(published.values()) == {1}
    assert len(envelopes) == load.events
    assert sum(1 for e in envelopes if e.name == ev.TICKET_SLA_BREACHED) == (
        2 * len(load.ticket_ids) + len(load.handed_over)
    )


async def test_two_scheduler_processes_running_side_by_side_raise_each_breach_exactly_once(
    api: Api, staff: Staff, database_url: str, tmp_path: Path
) -> None:
    load = await open_load(api, staff, 200)
    channel = f"smeline:test:{uuid.uuid4().hex}"
    go = tmp_path / "go"
    async with listening(channel) as (bus, received):
        workers = [
            await start_worker(tmp_path, name, database_url, channel, go, "--until-idle")
            for name in ("a", "b")
        ]
        go.touch()  # both are built and waiting: they start ticking together
        stats = [await w.finish() for w in workers]
        envelopes = await drain(bus, received)

    assert [s["reason"] for s in stats] == ["idle", "idle"], stats
    # Both really ran at the same time: each one's first tick came before the other's last.
    assert max(s["first_tick_at"] for s in stats) < min(s["last_tick_at"] for s in stats)
    await assert_raised_exactly_once(api, staff, load, stats, envelopes, {w.pid for w in workers})


async def test_two_scheduler_processes_racing_while_work_orders_keep_arriving(
    api: Api, staff: Staff, database_url: str, tmp_path: Path
) -> None:
    load = await open_load(api, staff, 100)
    channel = f"smeline:test:{uuid.uuid4().hex}"
    go, stop = tmp_path / "go", tmp_path / "stop"
    async with listening(channel) as (bus, received):
        workers = [
            await start_worker(
                tmp_path, name, database_url, channel, go, "--stop", str(stop), "--batch-size", "5"
            )
            for name in ("a", "b")
        ]
        go.touch()
        try:
            # More work orders arrive (already overdue) while both processes tick.
            more = await open_load(api, staff, 100, offset=100)
            load.ticket_ids += more.ticket_ids
            load.handed_over |= more.handed_over
            load.county_of |= more.county_of

            async def all_raised() -> bool:
                return await count(api, SlaEvent) >= load.events

            await poll(all_raised, within=120, what="every event to be raised")
        finally:
            stop.touch()
            stats = [await w.finish() for w in workers]
        envelopes = await drain(bus, received)

    assert [s["reason"] for s in stats] == ["stopped", "stopped"], stats
    await assert_raised_exactly_once(api, staff, load, stats, envelopes, {w.pid for w in workers})
