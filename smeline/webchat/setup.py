"""Wiring of web chat: the service from explicit dependencies, its start-up
(example IP ranges, the IP data file) and the periodic sweep."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.bus import EventBus
from smeline.config import Settings
from smeline.db import utcnow
from smeline.reference.services import ReferenceService
from smeline.routing.services import RoutingService
from smeline.ticketing.calendar_service import CalendarService
from smeline.ticketing.services import TicketService
from smeline.webchat.iplocation import load_ip_lookup
from smeline.webchat.routing import Network
from smeline.webchat.services import ChatOptions, ChatService

logger = logging.getLogger(__name__)

#: The chat service on the application: ``app[CHAT_SERVICE]`` (the socket layer uses it too).
CHAT_SERVICE = web.AppKey("chat_service", ChatService)
#: Networks of reverse proxies whose X-Forwarded-For is believed.
TRUSTED_PROXIES = web.AppKey("chat_trusted_proxies", list[Network])


def build_chat(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    reference: ReferenceService,
    calendars: CalendarService,
    routing: RoutingService,
    tickets: TicketService,
    bus: EventBus,
) -> ChatService:
    return ChatService(
        sessionmaker=sessionmaker,
        reference=reference,
        calendars=calendars,
        routing=routing,
        tickets=tickets,
        bus=bus,
        options=ChatOptions(
            capacity=settings.chat_agent_capacity,
            attachment_max_bytes=settings.chat_attachment_max_bytes,
            requeue_grace=timedelta(seconds=settings.chat_requeue_grace_seconds),
            message_max_chars=settings.chat_message_max_chars,
            messages_per_second=settings.chat_messages_per_second,
            token_ttl=timedelta(hours=settings.chat_token_ttl_hours),
            starts_per_ip_per_minute=settings.chat_starts_per_ip_per_minute,
        ),
    )


def trusted_proxies(settings: Settings) -> list[Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.chat_trusted_proxies]


def install(app: web.Application, settings: Settings, chat: ChatService) -> None:
    app[CHAT_SERVICE] = chat
    app[TRUSTED_PROXIES] = trusted_proxies(settings)


def chat_lifecycle(
    settings: Settings, chat: ChatService, *, background: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context, after the shared services loaded."""

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await chat.seed_example_ip_ranges()
        await chat.load_ip_ranges()
        # Reads ~11 MB: once, off the event loop.
        chat.ip_lookup = await asyncio.to_thread(
            load_ip_lookup, settings.chat_ip_lookup, settings.chat_ip_region_db
        )
        sweeper: asyncio.Task[None] | None = None
        if background and settings.scheduler_enabled:
            sweeper = asyncio.create_task(_sweep_forever(chat, settings.chat_sweep_seconds))
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper

    return lifecycle


async def _sweep_forever(chat: ChatService, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await chat.sweep(utcnow())
        except Exception:
            logger.exception("chat sweep failed")
