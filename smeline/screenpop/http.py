"""The screen pop: ``GET /api/screen-pop?phone=…`` (or ``?linkedid=…`` for a
call, whose number smeline already has).

It tells the agent who it is — the registered member and enterprise behind
the number (portal bridge), the county routing knows for it — then their
previous calls, chats and work orders, open work orders first. The number is
normalised once (``routing.numbers``), so ``+86 139…``, ``0139…`` and
``139…`` are the same person. Work orders are found by their contact phone
as the normaliser writes it or as typed, through the work-order list (so its
county scoping and phone masking apply); phones in the answer are masked for
roles that do not see phone numbers.

Pushing it only to the agent who got the contact is the realtime layer's job
(``call.answered`` / ``chat.assigned`` go to ``agent:<id>`` only); the console
then asks here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints
from sqlalchemy import select

from smeline import keys
from smeline.api import ApiRoutes, Out, QuerySchema, json_ok, parse_query
from smeline.auth.middleware import principal_of
from smeline.auth.permissions import Permission, Principal
from smeline.errors import NotFound, ValidationFailed, field_error
from smeline.masking import mask_phone
from smeline.portal_bridge.models import Enterprise, Member
from smeline.telephony.models import CallRecord
from smeline.ticketing.models import OPEN_STATUSES
from smeline.ticketing.schemas import TicketListQuery, TicketSummaryOut
from smeline.webchat.models import Chat

routes = ApiRoutes(tag="screen-pop")

HISTORY = 10


class ScreenPopQuery(QuerySchema):
    phone: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="The caller ID or the phone given in the chat form"
    )
    linkedid: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="A call smeline recorded: its number is used"
    )


class EnterpriseOut(Out):
    id: int
    name: str
    credit_code: str | None
    county_code: str | None


class MemberOut(Out):
    id: int
    name: str
    enterprise_id: int | None
    county_code: str | None


class PastCallOut(Out):
    linkedid: str
    started_at: datetime
    outcome: str
    window: str | None
    agent_name: str | None
    wait_seconds: int
    talk_seconds: int
    joint: bool
    ticket_ref: str | None


class PastChatOut(Out):
    id: int
    created_at: datetime
    state: str
    window_code: str | None
    category_code: str | None


class ScreenPopOut(Out):
    phone: str | None = Field(description="Masked unless the role sees phone numbers")
    kind: str = Field(description="mobile | landline | service | international | anonymous …")
    is_meizhou: bool
    county_code: str | None
    county_source: str = Field(description="member | profile | landline | ivr | default …")
    enterprise: EnterpriseOut | None
    member: MemberOut | None
    calls: list[PastCallOut]
    chats: list[PastChatOut]
    tickets: list[TicketSummaryOut] = Field(description="Open ones first, then the newest")


@routes.get(
    "/api/screen-pop",
    summary="Who it is: member, enterprise, county, previous calls, chats and work orders",
    query=ScreenPopQuery,
    response=ScreenPopOut,
    errors=(403, 404, 422),
)
async def screen_pop(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    p.require(Permission.TICKETS_READ)
    q = parse_query(request, ScreenPopQuery)
    if (q.phone is None) == (q.linkedid is None):
        raise ValidationFailed(
            "Give a phone or a linkedid, not both",
            details=[field_error("phone", "one_of", "phone or linkedid")],
        )
    sessionmaker = request.app[keys.SESSIONMAKER]
    raw = q.phone
    if q.linkedid is not None:
        async with sessionmaker() as db:
            raw = await db.scalar(
                select(CallRecord.caller_number).where(CallRecord.linkedid == q.linkedid)
            )
        if raw is None:
            raise NotFound("No such call", error_id="call_not_found")
    return json_ok(await _pop(request, p, raw or ""))


async def _pop(request: web.Request, p: Principal, raw: str) -> ScreenPopOut:
    routing = request.app[keys.ROUTING]
    identified = await routing.identify(raw)
    key = identified.key.key
    sessionmaker = request.app[keys.SESSIONMAKER]
    enterprise = member = None
    calls: list[PastCallOut] = []
    chats: list[PastChatOut] = []
    if key:
        async with sessionmaker() as db:
            member = await db.scalar(
                select(Member).where(Member.phone_key == key).order_by(Member.id).limit(1)
            )
            enterprise_id = member.enterprise_id if member is not None else None
            if enterprise_id is not None:
                enterprise = await db.get(Enterprise, enterprise_id)
            if enterprise is None:
                enterprise = await db.scalar(
                    select(Enterprise)
                    .where(Enterprise.phone_key == key)
                    .order_by(Enterprise.id)
                    .limit(1)
                )
            call_rows = await db.scalars(
                select(CallRecord)
                .where(CallRecord.caller_key == key)
                .order_by(CallRecord.started_at.desc())
                .limit(HISTORY)
            )
            calls = [
                PastCallOut(
                    linkedid=c.linkedid,
                    started_at=c.started_at,
                    outcome=c.outcome,
                    window=c.answered_window or (c.windows[-1] if c.windows else None),
                    agent_name=c.agent_name,
                    wait_seconds=c.wait_seconds,
                    talk_seconds=c.talk_seconds,
                    joint=c.joint,
                    ticket_ref=c.ticket_ref,
                )
                for c in call_rows
            ]
            chat_rows = await db.scalars(
                select(Chat).where(Chat.phone_key == key).order_by(Chat.id.desc()).limit(HISTORY)
            )
            chats = [
                PastChatOut(
                    id=c.id,
                    created_at=c.created_at,
                    state=c.state,
                    window_code=c.window_code,
                    category_code=c.category_code,
                )
                for c in chat_rows
            ]
    tickets = await _tickets(request, p, raw, key)
    sees = p.can(Permission.PHONE_NUMBERS)
    return ScreenPopOut(
        phone=(key if sees else mask_phone(key)) or None,
        kind=identified.key.kind.value,
        is_meizhou=identified.facts.is_meizhou,
        county_code=identified.county.county,
        county_source=identified.county.source.value,
        enterprise=None
        if enterprise is None
        else EnterpriseOut(
            id=enterprise.id,
            name=enterprise.name,
            credit_code=enterprise.credit_code,
            county_code=enterprise.county_code,
        ),
        member=None
        if member is None
        else MemberOut(
            id=member.id,
            name=member.name,
            enterprise_id=member.enterprise_id,
            county_code=member.county_code,
        ),
        calls=calls,
        chats=chats,
        tickets=tickets,
    )


async def _tickets(
    request: web.Request, p: Principal, raw: str, key: str
) -> list[TicketSummaryOut]:
    """Through the work-order list: its scoping and masking apply. Matched on
    the contact phone as the normaliser writes it, the usual typed forms
    (``+86…``, ``0…``) and as it arrived (a phone typed with spaces or dashes
    is not found: a normalised key on work orders is left to do)."""
    if not key or not p.can(Permission.PHONE_NUMBERS):
        return []
    tickets = request.app[keys.TICKETS]
    found: dict[int, TicketSummaryOut] = {}
    # How people type it: the key, with +86, with the trunk 0, and as it arrived.
    for term in dict.fromkeys((key, f"+86{key}", f"0{key}", raw.strip())):
        if not term or not term.replace("+", "").isdigit():
            continue
        items, _ = await tickets.list_page(p, TicketListQuery(q=term, limit=HISTORY * 2))
        for item in items:
            found.setdefault(item.id, item)
    open_values = {s.value for s in OPEN_STATUSES}
    ordered = sorted(
        found.values(),
        key=lambda t: (t.status.value not in open_values, -t.created_at.timestamp()),
    )
    return ordered[:HISTORY]
