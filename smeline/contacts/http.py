"""Contacts over HTTP: my pending wrap-ups, recording one, and a work order
opened from a call or a chat (docs/wrapup.md)."""

from __future__ import annotations

from aiohttp import web

from smeline import keys
from smeline.api import ApiRoutes, json_ok, parse_body
from smeline.auth.middleware import principal_of
from smeline.contacts.schemas import (
    ContactTicketIn,
    PendingContactOut,
    PendingOut,
    WrapupIn,
    WrapupOut,
)
from smeline.contacts.services import ContactService
from smeline.contacts.setup import CONTACTS
from smeline.ticketing.schemas import TicketOut

routes = ApiRoutes(tag="contacts")


def _svc(request: web.Request) -> ContactService:
    return request.app[CONTACTS]


@routes.post(
    "/api/contacts/wrapups",
    summary="Record the wrap-up of one of my calls or chats (once per contact)",
    body=WrapupIn,
    response=WrapupOut,
    status=201,
    errors=(403, 404, 409, 422),
)
async def record_wrapup(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    data = await parse_body(request, WrapupIn)
    svc = _svc(request)
    wrapup = await svc.record(p, data, now=svc.now())
    # After-call work held only by this wrap-up ends now.
    await request.app[keys.TELEPHONY].agents.wrapup_recorded(p.user_id)
    return json_ok(
        WrapupOut(
            id=wrapup.id,
            contact_kind=wrapup.contact_kind,
            linkedid=wrapup.call_linkedid,
            chat_id=wrapup.chat_id,
            agent_user_id=wrapup.agent_user_id,
            window_code=wrapup.window_code,
            county_code=wrapup.county_code,
            enterprise_name=wrapup.enterprise_name,
            enterprise_id=wrapup.enterprise_id,
            category_code=wrapup.category_code,
            service_mode=wrapup.service_mode,
            result=wrapup.result,
            ticket_id=wrapup.ticket_id,
            created_at=wrapup.created_at,
        ),
        status=201,
    )


@routes.get(
    "/api/contacts/wrapups/pending",
    summary="My answered calls and ended chats still without a wrap-up, newest first",
    response=PendingOut,
    errors=(403,),
)
async def pending_wrapups(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    svc = _svc(request)
    required, contacts = await svc.pending(p, now=svc.now())
    return json_ok(
        PendingOut(
            required=required,
            items=[
                PendingContactOut(
                    contact_kind=c.kind,
                    linkedid=c.linkedid,
                    chat_id=c.chat_id,
                    joint=c.joint,
                    required=required,
                    window_code=c.window_code,
                    county_code=c.county_code,
                    category_code=c.category_code,
                    enterprise_name=c.enterprise_name,
                    caller=ContactService.shown_phone(p, c.phone),
                    visitor_name=c.visitor_name,
                    ended_at=c.ended_at,
                )
                for c in contacts
            ],
        )
    )


@routes.post(
    "/api/contacts/ticket",
    summary="Open a work order prefilled from my call or chat (category, county, "
    "enterprise, transcript or call link)",
    body=ContactTicketIn,
    response=TicketOut,
    status=201,
    errors=(403, 404, 422),
)
async def open_ticket(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    data = await parse_body(request, ContactTicketIn)
    svc = _svc(request)
    return json_ok(await svc.open_ticket(p, data, now=svc.now()), status=201)
