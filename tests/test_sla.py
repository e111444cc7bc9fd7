"""SLA semantics of work orders: targets, due times, state, pauses, reopening, transfers.

Times that matter are passed explicitly (``now=``) to the ticket service, so the
expected due times below are written out by hand in Beijing time, from the
official 2025 calendar: National Day 10-01..10-08 off, Sunday 09-28 and
Saturday 10-11 adjusted working days (调休).
"""

from __future__ import annotations

import json
import time as time_module
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from smeline import keys
from smeline.app import create_app
from smeline.auth.permissions import Principal
from smeline.db import utcnow
from smeline.notifications.models import Notification
from smeline.ticketing.calendar import BUSINESS_TZ, BusinessCalendar
from smeline.ticketing.models import CommentKind, Priority, SlaState, Ticket, TicketStatus
from smeline.ticketing.schemas import ActionIn, CommentIn, TicketCreateIn, TicketUpdateIn
from smeline.ticketing.services import TicketService
from smeline.ticketing.sla import SlaRules, Targets
from smeline.ticketing.state_machine import Action
from tests.conftest import Actor, Api, make_settings, ticket_payload

CAL = BusinessCalendar()


def app_of(api: Api) -> web.Application:
    app = api.client.app
    assert isinstance(app, web.Application)
    return app


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BUSINESS_TZ)


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def service(api: Api) -> TicketService:
    return app_of(api)[keys.TICKETS]


async def principal(api: Api, actor: Actor) -> Principal:
    authenticated = await app_of(api)[keys.AUTH].authenticate(actor.token, now=utcnow())
    assert authenticated is not None
    return authenticated.principal


def create_in(**overrides: Any) -> TicketCreateIn:
    # The request schemas are strict in Python mode; JSON mode takes what a client sends.
    return TicketCreateIn.model_validate_json(json.dumps(ticket_payload(**overrides)))


async def put_policy(api: Api, **policy: Any) -> None:
    status, body = await api.call("PUT", "/api/sla/policies", api.admin, json=policy)
    assert status == 200, body


async def act(
    api: Api, p: Principal, ticket_id: int, action: Action, now: datetime, **kw: Any
) -> Any:
    return await service(api).act(p, ticket_id, ActionIn(action=action, **kw), now=now)


# ------------------------------------------------------------------ policies, due times


async def test_category_priority_policy_gives_the_targets_and_due_times_shown_on_the_ticket(
    api: Api,
) -> None:
    await put_policy(
        api,
        category_code="legal",
        priority="high",
        first_response_min=45,
        resolution_min=600,
        handoff_min=300,
    )
    status, legal = await api.call(
        "POST",
        "/api/tickets",
        api.admin,
        json=ticket_payload(category_code="legal", priority="high"),
    )
    assert status == 201, legal
    status, other = await api.call(
        "POST",
        "/api/tickets",
        api.admin,
        json=ticket_payload(category_code="financing", priority="high"),
    )
    assert status == 201, other

    created = at(legal["created_at"])
    assert created is not None
    sla = legal["sla"]
    assert sla["state"] == "ok"
    assert sla["first_response"]["target_minutes"] == 45
    assert sla["resolution"]["target_minutes"] == 600
    assert at(sla["first_response"]["due_at"]) == CAL.add_business_minutes(created, 45)
    assert at(sla["resolution"]["due_at"]) == CAL.add_business_minutes(created, 600)
    # Warning at 75 % of the target, in business time.
    assert at(sla["first_response"]["warning_at"]) == CAL.add_business_time(
        created, timedelta(minutes=45 * 0.75)
    )
    assert at(sla["resolution"]["warning_at"]) == CAL.add_business_minutes(created, 450)

    # Another category with the same priority keeps the platform default (high: 120 / 1170).
    assert other["sla"]["first_response"]["target_minutes"] == 120
    assert other["sla"]["resolution"]["target_minutes"] == 1170

    # The list shows the due times too.
    status, page = await api.call("GET", "/api/tickets", api.admin)
    assert status == 200
    listed = {t["id"]: t for t in page["items"]}[legal["id"]]
    assert at(listed["resolution_due_at"]) == at(sla["resolution"]["due_at"])
    assert at(listed["first_response_due_at"]) == at(sla["first_response"]["due_at"])


async def test_state_is_ok_then_warning_at_75_percent_then_breached_at_the_target(
    api: Api,
) -> None:
    assert api.admin is not None
    p = await principal(api, api.admin)
    await put_policy(
        api,
        category_code="training",
        priority="normal",
        first_response_min=40,
        resolution_min=400,
        handoff_min=200,
    )
    # Wed 2025-06-11 09:00: first response due 09:40, warning at 30 min = 09:30;
    # resolution 400 = Wed 09:00-17:30 (360) + 40 -> due Thu 09:10, warning 300 -> Wed 16:30.
    opened = bj(2025, 6, 11, 9, 0)
    t = await service(api).create(p, create_in(category_code="training"), now=opened)
    assert t.sla.first_response.due_at == bj(2025, 6, 11, 9, 40)
    assert t.sla.first_response.warning_at == bj(2025, 6, 11, 9, 30)
    assert t.sla.resolution.due_at == bj(2025, 6, 12, 9, 10)
    assert t.sla.resolution.warning_at == bj(2025, 6, 11, 16, 30)

    async def state(now: datetime) -> SlaState:
        return (await service(api).get(p, t.id, now=now)).sla.state

    assert await state(bj(2025, 6, 11, 9, 29)) is SlaState.OK
    assert await state(bj(2025, 6, 11, 9, 30)) is SlaState.WARNING
    # At the due time the work order reads as breached even before the scheduler ran.
    assert await state(bj(2025, 6, 11, 9, 40)) is SlaState.BREACHED

    # Once the SME got an answer, only the resolution clock counts.
    await service(api).comment(
        p,
        t.id,
        CommentIn(kind=CommentKind.REPLY, body="已电话联系企业"),
        now=bj(2025, 6, 11, 9, 20),
    )
    assert await state(bj(2025, 6, 11, 16, 29)) is SlaState.OK
    assert await state(bj(2025, 6, 11, 16, 30)) is SlaState.WARNING
    assert await state(bj(2025, 6, 12, 9, 9)) is SlaState.WARNING
    assert await state(bj(2025, 6, 12, 9, 10)) is SlaState.BREACHED


async def test_warning_ratio_is_configurable(database_url: str, aiohttp_client: Any) -> None:
    app = create_app(make_settings(database_url, sla_warning_ratio=0.5), background=False)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    api = Api(client)
    admin = await api.bootstrap_admin()
    p = await principal(api, admin)
    # Urgent default: 30 min first response, 390 resolution.
    t = await service(api).create(p, create_in(priority="urgent"), now=bj(2025, 6, 11, 9, 0))
    assert t.sla.first_response.warning_at == bj(2025, 6, 11, 9, 15)
    assert t.sla.resolution.warning_at == CAL.add_business_minutes(bj(2025, 6, 11, 9, 0), 195)
    assert t.sla.resolution.warning_at == bj(2025, 6, 11, 14, 45)


# ------------------------------------------------------------------ first response


async def test_first_response_is_a_reply_or_call_to_the_sme_not_assignment_nor_a_note(
    api: Api,
) -> None:
    agent = await api.user("agent", window_code="xingning")
    status, t = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert status == 201, t

    status, t = await api.call(
        "POST",
        f"/api/tickets/{t['id']}/actions",
        api.admin,
        json={"action": "assign", "assignee_id": agent.id},
    )
    assert status == 200, t
    assert t["sla"]["first_response"]["met_at"] is None

    status, body = await api.call(
        "POST", f"/api/tickets/{t['id']}/comments", agent, json={"kind": "note", "body": "内部备注"}
    )
    assert status == 201, body
    status, t = await api.call("GET", f"/api/tickets/{t['id']}", agent)
    assert t["sla"]["first_response"]["met_at"] is None

    status, reply = await api.call(
        "POST", f"/api/tickets/{t['id']}/comments", agent, json={"kind": "reply", "body": "您好"}
    )
    assert status == 201, reply
    status, t = await api.call("GET", f"/api/tickets/{t['id']}", agent)
    assert at(t["sla"]["first_response"]["met_at"]) == at(reply["created_at"])

    # A second reply does not move the first response.
    await api.call(
        "POST", f"/api/tickets/{t['id']}/comments", agent, json={"kind": "reply", "body": "补充"}
    )
    status, again = await api.call("GET", f"/api/tickets/{t['id']}", agent)
    assert again["sla"]["first_response"]["met_at"] == t["sla"]["first_response"]["met_at"]
    status, history = await api.call("GET", f"/api/tickets/{t['id']}/history", agent)
    assert [h["action"] for h in history["items"]].count("first_response") == 1

    # A logged call counts as well.
    status, t2 = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    status, call = await api.call(
        "POST",
        f"/api/tickets/{t2['id']}/comments",
        api.admin,
        json={"kind": "call", "body": "回访"},
    )
    assert status == 201, call
    status, t2 = await api.call("GET", f"/api/tickets/{t2['id']}", api.admin)
    assert at(t2["sla"]["first_response"]["met_at"]) == at(call["created_at"])


async def test_first_response_after_the_due_time_leaves_the_clock_breached(api: Api) -> None:
    assert api.admin is not None
    p = await principal(api, api.admin)
    # Urgent: 30 min -> due Wed 09:30.
    t = await service(api).create(p, create_in(priority="urgent"), now=bj(2025, 6, 11, 9, 0))
    await service(api).comment(
        p, t.id, CommentIn(kind=CommentKind.CALL, body="回电"), now=bj(2025, 6, 11, 9, 45)
    )
    out = await service(api).get(p, t.id, now=bj(2025, 6, 11, 9, 50))
    assert out.sla.first_response.met_at == bj(2025, 6, 11, 9, 45)
    assert out.sla.first_response.breached
    assert out.sla.state is SlaState.BREACHED


# ------------------------------------------------------------------ resolution clock


async def test_resolution_clock_pauses_while_waiting_for_the_customer_and_resumes_after(
    api: Api,
) -> None:
    assert api.admin is not None
    p = await principal(api, api.admin)
    # Normal default: 1950 business minutes (five business days). Mon 2025-06-09.
    t = await service(api).create(p, create_in(), now=bj(2025, 6, 9, 9, 0))
    assert t.sla.resolution.due_at == bj(2025, 6, 16, 9, 0)
    await act(api, p, t.id, Action.START, bj(2025, 6, 9, 9, 0))
    await service(api).comment(
        p, t.id, CommentIn(kind=CommentKind.CALL, body="请补充材料"), now=bj(2025, 6, 9, 9, 55)
    )
    out = await act(api, p, t.id, Action.WAIT_CUSTOMER, bj(2025, 6, 9, 10, 0))
    assert out.status is TicketStatus.WAITING_CUSTOMER
    assert out.sla.resolution.paused
    assert out.sla.resolution.due_at is None

    # Two days later, still paused: 60 minutes used, nothing more.
    later = await service(api).get(p, t.id, now=bj(2025, 6, 11, 14, 0))
    assert later.sla.resolution.elapsed_business_minutes == 60
    assert later.sla.resolution.paused
    assert later.sla.state is SlaState.OK

    # Resumed Wed 14:30 with 1890 left: Wed 180, Thu/Fri/Mon/Tue 4*390, Wed 06-18 150.
    out = await act(api, p, t.id, Action.RESUME, bj(2025, 6, 11, 14, 30))
    assert not out.sla.resolution.paused
    assert out.sla.resolution.due_at == bj(2025, 6, 18, 11, 0)
    assert out.sla.resolution.warning_at == CAL.add_business_minutes(
        bj(2025, 6, 11, 14, 30), 1950 * 0.75 - 60
    )
    now = bj(2025, 6, 12, 9, 0)
    assert (await service(api).get(p, t.id, now=now)).sla.resolution.elapsed_business_minutes == (
        60 + 180 + 30
    )


async def test_reopening_resumes_the_resolution_clock_where_it_stopped(api: Api) -> None:
    assert api.admin is not None
    p = await principal(api, api.admin)
    t = await service(api).create(p, create_in(), now=bj(2025, 6, 9, 9, 0))
    await act(api, p, t.id, Action.START, bj(2025, 6, 9, 9, 0))
    out = await act(api, p, t.id, Action.RESOLVE, bj(2025, 6, 9, 11, 0), resolution="已答复")
    assert out.sla.resolution.met_at == bj(2025, 6, 9, 11, 0)
    await act(api, p, t.id, Action.CLOSE, bj(2025, 6, 9, 11, 30))

    # The clock stood still while resolved and closed: 120 minutes used.
    closed = await service(api).get(p, t.id, now=bj(2025, 6, 10, 8, 0))
    assert closed.sla.resolution.elapsed_business_minutes == 120

    # Reopened Tue 09:00 with 1830 left (not 1950): Tue 360, Wed..Fri 3*390, Mon 06-16 300.
    out = await act(api, p, t.id, Action.REOPEN, bj(2025, 6, 10, 9, 0))
    assert out.status is TicketStatus.REOPENED
    assert out.sla.resolution.due_at == bj(2025, 6, 16, 16, 0)
    assert out.sla.resolution.due_at != CAL.add_business_minutes(bj(2025, 6, 10, 9, 0), 1950)
    assert out.sla.resolution.met_at is None


async def test_a_resolution_deadline_reached_just_before_the_pause_is_not_lost(api: Api) -> None:
    assert api.admin is not None
    p = await principal(api, api.admin)
    # Urgent: 390 minutes, opened Wed 2025-06-11 09:00 -> due Thu 06-12 09:00.
    opened = bj(2025, 6, 11, 9, 0)
    t = await service(api).create(p, create_in(priority="urgent"), now=opened)
    assert t.sla.resolution.due_at == bj(2025, 6, 12, 9, 0)
    await service(api).comment(
        p, t.id, CommentIn(kind=CommentKind.REPLY, body="您好"), now=bj(2025, 6, 11, 9, 5)
    )
    await act(api, p, t.id, Action.START, bj(2025, 6, 11, 9, 10))
    # Paused after the deadline, before any scheduler tick could raise it.
    await act(api, p, t.id, Action.WAIT_CUSTOMER, bj(2025, 6, 12, 9, 30))
    paused = await service(api).get(p, t.id, now=bj(2025, 6, 12, 10, 0))
    assert paused.sla.resolution.paused
    assert paused.sla.resolution.due_at == bj(2025, 6, 12, 9, 0)
    assert paused.sla.state is SlaState.BREACHED
    # Resolved straight from waiting_customer: still a late resolution.
    done = await act(api, p, t.id, Action.RESOLVE, bj(2025, 6, 12, 11, 0), resolution="已办结")
    assert done.sla.resolution.breached
    assert done.sla.state is SlaState.BREACHED


async def test_a_paused_work_order_past_its_warning_still_reads_as_warning(api: Api) -> None:
    assert api.admin is not None
    p = await principal(api, api.admin)
    opened = bj(2025, 6, 11, 9, 0)
    t = await service(api).create(p, create_in(priority="urgent"), now=opened)
    # Warning at 292.5 min: Wed 09:00-12:00 (180) + 14:30 + 112.5 min = 16:22:30.
    assert t.sla.resolution.warning_at == bj(2025, 6, 11, 16, 22) + timedelta(seconds=30)
    await service(api).comment(
        p, t.id, CommentIn(kind=CommentKind.REPLY, body="您好"), now=bj(2025, 6, 11, 9, 5)
    )
    await act(api, p, t.id, Action.START, opened)
    await act(api, p, t.id, Action.WAIT_CUSTOMER, bj(2025, 6, 11, 17, 0))
    later = await service(api).get(p, t.id, now=bj(2025, 6, 20, 10, 0))
    assert later.sla.resolution.paused
    assert later.sla.resolution.due_at is None
    assert later.sla.state is SlaState.WARNING
    # Resumed Mon 06-23 08:30 with 390 - (180 + 150) = 60 minutes left.
    out = await act(api, p, t.id, Action.RESUME, bj(2025, 6, 23, 8, 30))
    assert out.sla.resolution.due_at == bj(2025, 6, 23, 9, 30)
    assert out.sla.resolution.warning_at == bj(2025, 6, 11, 16, 22) + timedelta(seconds=30)


# ------------------------------------------------------------------ transfers


async def test_transfer_gives_the_handoff_its_own_deadline_and_keeps_the_resolution_due_time(
    api: Api,
) -> None:
    agency = await api.user("agency")
    status, t = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert status == 201, t
    due_before = t["sla"]["resolution"]["due_at"]

    status, moved = await api.call(
        "POST",
        f"/api/tickets/{t['id']}/actions",
        api.admin,
        json={"action": "transfer", "to_user_id": agency.id, "note": "转融资担保机构"},
    )
    assert status == 200, moved
    assert moved["assignee_id"] == agency.id
    handoff = moved["handoff"]
    assert handoff is not None
    assert handoff["to_user_id"] == agency.id
    assert handoff["target_minutes"] == 1170  # normal default
    transferred_at = at(handoff["created_at"])
    assert transferred_at is not None
    assert at(handoff["due_at"]) == CAL.add_business_minutes(transferred_at, 1170)
    assert moved["sla"]["resolution"]["due_at"] == due_before

    # The agency sees it and hands it back; the work order's due time still does not move.
    status, seen = await api.call("GET", f"/api/tickets/{t['id']}", agency)
    assert status == 200, seen
    status, back = await api.call(
        "POST", f"/api/tickets/{t['id']}/actions", agency, json={"action": "return"}
    )
    assert status == 200, back
    assert back["handoff"] is None
    assert back["sla"]["resolution"]["due_at"] == due_before


async def test_national_day_work_order_opened_friday_1720_is_due_at_the_right_hour(
    api: Api,
) -> None:
    assert api.admin is not None
    agency = await api.user("agency")
    p = await principal(api, api.admin)
    await put_policy(
        api,
        category_code="legal",
        priority="high",
        first_response_min=60,
        resolution_min=2340,  # six business days
        handoff_min=780,  # two business days
    )
    opened = bj(2025, 9, 26, 17, 20)  # the Friday before National Day
    t = await service(api).create(p, create_in(category_code="legal", priority="high"), now=opened)
    # First response 60: Fri 17:20-17:30 (10), Sat off, Sun 09-28 (调休) 08:30 + 50.
    assert t.sla.first_response.due_at == bj(2025, 9, 28, 9, 20)
    assert t.sla.first_response.warning_at == bj(2025, 9, 28, 9, 5)
    # Resolution 2340: Fri 10, Sun 28 390, Mon 29 390, Tue 30 390 (1180), 10-01..08 off,
    # Thu 10-09 390, Fri 10-10 390 (1960), Sat 10-11 (调休) 210 + 170 -> 17:20.
    assert t.sla.resolution.due_at == bj(2025, 10, 11, 17, 20)
    assert t.sla.resolution.due_at == datetime(2025, 10, 11, 9, 20, tzinfo=UTC)
    # Warning at 1755: ... Fri 10-10 08:30 + 185 min = 11:35.
    assert t.sla.resolution.warning_at == bj(2025, 10, 10, 11, 35)

    await service(api).comment(
        p, t.id, CommentIn(kind=CommentKind.REPLY, body="已受理"), now=bj(2025, 9, 28, 9, 0)
    )
    # The holiday consumes nothing: still ok late on 10-08, 16 calendar days after opening.
    assert (await service(api).get(p, t.id, now=bj(2025, 10, 8, 23, 0))).sla.state is SlaState.OK
    assert (
        await service(api).get(p, t.id, now=bj(2025, 10, 10, 11, 35))
    ).sla.state is SlaState.WARNING

    # Transfer on Mon 09-29 10:00: the handoff gets 780 minutes of its own:
    # Mon 120 + 180, Tue 390 (690), holiday, Thu 10-09 08:30 + 90 = 10:00.
    out = await act(api, p, t.id, Action.TRANSFER, bj(2025, 9, 29, 10, 0), to_user_id=agency.id)
    assert out.handoff is not None
    assert out.handoff.due_at == bj(2025, 10, 9, 10, 0)
    assert out.sla.resolution.due_at == bj(2025, 10, 11, 17, 20)
    out = await service(api).get(p, t.id, now=bj(2025, 10, 9, 9, 0))
    assert out.sla.resolution.due_at == bj(2025, 10, 11, 17, 20)


async def test_a_calendar_override_made_in_one_process_reaches_another_process(
    api: Api, database_url: str
) -> None:
    assert api.admin is not None
    other = create_app(make_settings(database_url), background=False)
    runner = web.AppRunner(other)
    await runner.setup()
    try:
        calendars = other[keys.CALENDARS]
        assert not await calendars.reload_if_changed()
        # Fri 2025-06-13 declared a day off in this process.
        status, body = await api.call(
            "PUT",
            "/api/calendar/overrides/2025-06-13",
            api.admin,
            json={"is_workday": False, "note": "停电"},
        )
        assert status == 204, body
        assert await calendars.reload_if_changed()
        assert not await calendars.reload_if_changed()
        p = await principal(api, api.admin)
        # Thu 17:20 + 30 minutes: 10 on Thursday, Friday off, Mon 06-16 08:50.
        t = await other[keys.TICKETS].create(
            p, create_in(priority="urgent"), now=bj(2025, 6, 12, 17, 20)
        )
        assert t.sla.first_response.due_at == bj(2025, 6, 16, 8, 50)

        status, body = await api.call("DELETE", "/api/calendar/overrides/2025-06-13", api.admin)
        assert status == 204, body
        assert await calendars.reload_if_changed()
        t = await other[keys.TICKETS].create(
            p, create_in(priority="urgent"), now=bj(2025, 6, 12, 17, 20)
        )
        assert t.sla.first_response.due_at == bj(2025, 6, 13, 8, 50)
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ process time zone


async def test_2350_and_0010_beijing_are_different_days_with_the_process_in_utc(
    api: Api, process_tz_utc: None
) -> None:
    assert time_module.strftime("%z", time_module.localtime()) == "+0000"
    assert api.admin is not None
    p = await principal(api, api.admin)
    # Sat 2025-09-27 23:50 and Sun 09-28 00:10 Beijing: both on Saturday 09-27 in UTC.
    late_saturday = bj(2025, 9, 27, 23, 50)
    early_sunday = bj(2025, 9, 28, 0, 10)
    assert late_saturday.astimezone(UTC).date() == early_sunday.astimezone(UTC).date()

    payload = create_in(priority="urgent")
    first = await service(api).create(p, payload, now=late_saturday)
    second = await service(api).create(p, payload, now=early_sunday)
    assert first.number == "MZ20250927-0001"
    assert second.number == "MZ20250928-0001"

    # Business days agree: Saturday is off, Sunday 09-28 is a working day (调休), so both
    # 30-minute first responses are due Sunday 09:00 Beijing = 01:00 UTC.
    assert first.sla.first_response.due_at == datetime(2025, 9, 28, 1, 0, tzinfo=UTC)
    assert second.sla.first_response.due_at == datetime(2025, 9, 28, 1, 0, tzinfo=UTC)
    # Resolution 390 = all of Sunday.
    assert second.sla.resolution.due_at == bj(2025, 9, 28, 17, 30)
    assert not CAL.is_workday(late_saturday.date()) and CAL.is_workday(early_sunday.date())

    # The scheduler agrees, and tells the deadline in Beijing time.
    await api.user("supervisor")
    result = await app_of(api)[keys.SCHEDULER].tick(datetime(2025, 9, 28, 1, 0, tzinfo=UTC))
    assert result.raised == 4  # both first responses: warning and breach
    async with app_of(api)[keys.SESSIONMAKER]() as db:
        bodies = list(
            await db.scalars(
                select(Notification.body).where(Notification.template_id == "ticket_sla_breached")
            )
        )
    assert bodies and all("2025-09-28 09:00" in body for body in bodies)

    # The list filters by Beijing day.
    status, page = await api.call(
        "GET", "/api/tickets?created_from=2025-09-28&created_to=2025-09-28", api.admin
    )
    assert status == 200, page
    assert [t["number"] for t in page["items"]] == ["MZ20250928-0001"]
    status, page = await api.call(
        "GET", "/api/tickets?created_from=2025-09-27&created_to=2025-09-27", api.admin
    )
    assert [t["number"] for t in page["items"]] == ["MZ20250927-0001"]


# ------------------------------------------------------------------ retargeting


async def test_priority_change_retargets_both_clocks_from_the_creation_time(api: Api) -> None:
    assert api.admin is not None
    p = await principal(api, api.admin)
    opened = bj(2025, 6, 9, 9, 0)
    t = await service(api).create(p, create_in(), now=opened)
    assert t.sla.first_response.due_at == CAL.add_business_minutes(opened, 390)
    out = await service(api).update(
        p,
        t.id,
        TicketUpdateIn(priority=Priority.URGENT, note="企业急需"),
        now=bj(2025, 6, 9, 9, 10),
    )
    # Urgent: 30 / 390 measured from creation, not from the change.
    assert out.sla.first_response.target_minutes == 30
    assert out.sla.first_response.due_at == bj(2025, 6, 9, 9, 30)
    assert out.sla.resolution.target_minutes == 390
    assert out.sla.resolution.due_at == bj(2025, 6, 10, 9, 0)


# ------------------------------------------------------------------ SlaRules properties

PROPERTIES = settings(max_examples=150, deadline=None)
RULES = SlaRules(0.75)

starts = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 6, 30)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
gaps = st.integers(min_value=0, max_value=10 * 24 * 3600).map(lambda s: timedelta(seconds=s))
targets = st.builds(
    Targets,
    first_response_min=st.integers(min_value=1, max_value=2000),
    resolution_min=st.integers(min_value=1, max_value=10_000),
    handoff_min=st.integers(min_value=1, max_value=5000),
)


def fresh_ticket(start: datetime, t: Targets) -> Ticket:
    ticket = Ticket(status=TicketStatus.IN_PROGRESS.value, created_at=start)
    RULES.start(ticket, t, CAL, start)
    return ticket


def consumed(ticket: Ticket, now: datetime) -> timedelta:
    used = timedelta(seconds=ticket.resolution_elapsed_s)
    if ticket.resolution_running_since is not None:
        used += CAL.business_time_between(ticket.resolution_running_since, now)
    return used


@PROPERTIES
@given(start=starts, t=targets, steps=st.lists(gaps, max_size=8))
def test_pause_and_resume_keep_the_business_time_consumed(
    start: datetime, t: Targets, steps: list[timedelta]
) -> None:
    ticket = fresh_ticket(start, t)
    now = start
    running_time = timedelta(0)
    for i, gap in enumerate(steps):
        later = now + gap
        if ticket.resolution_running_since is not None:
            running_time += CAL.business_time_between(now, later)
        now = later
        if i % 2 == 0:
            RULES.pause(ticket, CAL, now)
            assert ticket.resolution_running_since is None
            # While paused only a deadline already reached keeps its instant.
            reached = running_time >= timedelta(minutes=t.resolution_min)
            assert (ticket.resolution_due_at is not None) == reached
            if ticket.resolution_due_at is not None:
                assert ticket.resolution_due_at <= now
        else:
            RULES.resume(ticket, CAL, now)
    # Business time is counted only while the clock runs, and none is lost.
    assert consumed(ticket, now) == running_time
    if ticket.resolution_running_since is None:
        RULES.resume(ticket, CAL, now)
    target = timedelta(minutes=t.resolution_min)
    assert ticket.resolution_due_at is not None
    if running_time < target:
        # The due time is when the consumed time reaches the target.
        assert consumed(ticket, ticket.resolution_due_at) == target
        warning = timedelta(minutes=t.resolution_min * 0.75)
        if running_time < warning:
            assert ticket.resolution_warning_at is not None
            assert consumed(ticket, ticket.resolution_warning_at) == warning


@PROPERTIES
@given(start=starts, before=targets, after=targets, gap=gaps, paused=st.booleans())
def test_retarget_measures_the_new_targets_from_the_same_start(
    start: datetime, before: Targets, after: Targets, gap: timedelta, paused: bool
) -> None:
    ticket = fresh_ticket(start, before)
    now = start + gap
    if paused:
        RULES.pause(ticket, CAL, now)
    RULES.retarget(ticket, after, CAL, now)
    assert ticket.first_response_target_min == after.first_response_min
    assert ticket.resolution_target_min == after.resolution_min
    assert ticket.first_response_due_at == CAL.add_business_minutes(start, after.first_response_min)
    if paused:
        RULES.resume(ticket, CAL, now)
    used = CAL.business_time_between(start, now)
    target = timedelta(minutes=after.resolution_min)
    assert ticket.resolution_due_at is not None
    if used < target:
        assert consumed(ticket, ticket.resolution_due_at) == target
        if not paused:
            assert ticket.resolution_due_at == CAL.add_business_minutes(start, after.resolution_min)


def test_pause_with_sub_second_instants_loses_less_than_a_second_per_pause() -> None:
    # resolution_elapsed_s is whole seconds; each pause may drop the fraction.
    start = bj(2025, 6, 11, 9, 0)
    ticket = fresh_ticket(start, Targets(30, 600, 300))
    now = start
    for _ in range(5):
        now += timedelta(minutes=7, microseconds=600_000)
        RULES.pause(ticket, CAL, now)
        now += timedelta(minutes=3)
        RULES.resume(ticket, CAL, now)
    running = 5 * timedelta(minutes=7, microseconds=600_000)
    assert running - timedelta(seconds=5) < consumed(ticket, now) <= running


async def test_an_overdue_handoff_reads_as_breached_before_any_scheduler_tick(api: Api) -> None:
    expert = await api.user("expert")
    p = await principal(api, api.admin)
    opened = bj(2025, 11, 3, 9, 0)  # a Monday
    t = await service(api).create(p, create_in(), now=opened)
    moved = await act(api, p, t.id, Action.TRANSFER, opened, to_user_id=expert.id)
    assert moved.handoff is not None
    due = moved.handoff.due_at
    just_before = due - timedelta(minutes=1)
    seen = await service(api).get(p, t.id, now=just_before)
    assert seen.handoff is not None and seen.handoff.sla_state == "warning"
    seen = await service(api).get(p, t.id, now=due)
    assert seen.handoff is not None and seen.handoff.sla_state == "breached"
