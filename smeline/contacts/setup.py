"""Wiring of contacts: the service from explicit dependencies; it becomes
the chat service's assignment guard (no chat for an agent owing a wrap-up)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.config import Settings
from smeline.contacts.services import ContactService, WrapupOptions
from smeline.reference.services import ReferenceService
from smeline.ticketing.services import TicketService
from smeline.webchat.services import ChatService

#: ``app[CONTACTS]`` (the telephony state endpoint asks it before "ready").
CONTACTS = web.AppKey("contacts", ContactService)


def build_contacts(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    reference: ReferenceService,
    tickets: TicketService,
    chat: ChatService,
) -> ContactService:
    contacts = ContactService(
        sessionmaker=sessionmaker,
        reference=reference,
        tickets=tickets,
        chat=chat,
        options=WrapupOptions(
            optional_windows=frozenset(settings.wrapup_optional_windows),
            pending_window=timedelta(hours=settings.wrapup_pending_hours),
        ),
    )
    chat.assign_guard = contacts
    return contacts


def install(app: web.Application, contacts: ContactService) -> None:
    app[CONTACTS] = contacts
