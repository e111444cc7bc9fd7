"""Wiring of the hotline's FastAGI side: routing service, handlers, server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.agi_scripts.fastagi import FastAgiServer
from smeline.agi_scripts.handlers import (
    ROUTE_FALLBACK,
    HotlineIvr,
    IvrOptions,
    hotline_principal,
    sms_to_caller,
)
from smeline.config import Settings
from smeline.db import utcnow
from smeline.notifications.services import Outbox
from smeline.reference.services import ReferenceService
from smeline.routing.numbers import NumberPlan, load_mobile_segments
from smeline.routing.services import CallerLookup, RoutingService
from smeline.ticketing.calendar_service import CalendarService
from smeline.ticketing.services import TicketService


def number_plan(settings: Settings) -> NumberPlan:
    return NumberPlan(
        local_area_code=settings.local_area_code,
        local_subscriber_lengths=tuple(settings.local_subscriber_lengths),
        ip_dial_prefixes=tuple(settings.ip_dial_prefixes),
        hotline_number=settings.hotline_number,
        out_of_town_mobile_prefix_zero=settings.out_of_town_mobile_prefix_zero,
    )


def build_routing(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    reference: ReferenceService,
    calendars: CalendarService,
    agents_ready: Callable[[str], int | None],
) -> RoutingService:
    return RoutingService(
        sessionmaker=sessionmaker,
        plan=number_plan(settings),
        reference=lambda: reference.data,
        calendars=calendars,
        agents_ready=agents_ready,
        # PostgreSQL: the caller look-up gets its own asyncpg pool (started
        # with the FastAGI server); SQLite goes through the engine.
        lookup=None if settings.is_sqlite else CallerLookup(settings.database_url),
    )


def build_agi_server(settings: Settings) -> FastAgiServer:
    return FastAgiServer(
        host=settings.agi_host,
        port=settings.agi_port,
        think_deadline=settings.agi_think_deadline_seconds,
        default_fallback=ROUTE_FALLBACK,
    )


def agi_lifecycle(
    settings: Settings,
    *,
    server: FastAgiServer,
    routing: RoutingService,
    tickets: TicketService,
    sessionmaker: async_sessionmaker[AsyncSession],
    outbox: Outbox,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context: start after the shared services loaded."""

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await routing.seed_example_prefixes()
        if not settings.agi_running:
            yield
            return
        # Reads the segment database file: once, off the event loop.
        await asyncio.to_thread(load_mobile_segments)
        await routing.load_prefixes()
        if routing.lookup is not None:
            await routing.lookup.start()
        principal = await hotline_principal(sessionmaker)
        HotlineIvr(
            routing=routing,
            tickets=tickets,
            principal=principal,
            now=utcnow,
            options=IvrOptions(
                menu_timeout_ms=settings.ivr_menu_timeout_ms,
                county_queue_timeout=settings.county_queue_timeout_seconds,
                city_queue_timeout=settings.city_queue_timeout_seconds,
                callback_within=timedelta(hours=1),
            ),
            text_caller=sms_to_caller(sessionmaker, outbox, utcnow),
        ).register(server)
        await server.start()
        try:
            yield
        finally:
            await server.stop()
            await routing.drain()
            if routing.lookup is not None:
                await routing.lookup.close()

    return lifecycle
