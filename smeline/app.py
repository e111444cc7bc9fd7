"""The web application factory: builds every service from explicit dependencies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from smeline import __version__, gc_policy, keys
from smeline.agent_console.static import add_console_routes
from smeline.agi_scripts.setup import (
    agi_lifecycle,
    build_agi_server,
    build_routing,
    number_plan,
)
from smeline.api import ApiRoutes, Out, json_ok
from smeline.auth import http as auth_http
from smeline.auth.middleware import make_auth_middleware
from smeline.auth.passwords import Passwords
from smeline.auth.services import AuthService, SessionCache, UserService
from smeline.bus import EventRegistry, make_bus
from smeline.config import Settings
from smeline.contacts import http as contacts_http
from smeline.contacts.setup import build_contacts
from smeline.contacts.setup import install as install_contacts
from smeline.db import make_engine, make_sessionmaker, utcnow
from smeline.errors import error_middleware
from smeline.expert_pool import http as expert_http
from smeline.gc_policy import GC_YOUNG_THRESHOLD as GC_YOUNG_THRESHOLD
from smeline.notifications import http as notification_http
from smeline.notifications.dispatcher import Dispatcher
from smeline.notifications.senders import build_senders
from smeline.notifications.services import Outbox
from smeline.openapi import build_openapi, openapi_handler
from smeline.realtime.auth import VisitorsNow
from smeline.realtime.setup import build_realtime, install_realtime, realtime_lifecycle
from smeline.reference import http as reference_http
from smeline.reference.services import ReferenceService
from smeline.screenpop import http as screenpop_http
from smeline.telephony import escalation_http
from smeline.telephony import events as telephony_events
from smeline.telephony import http as telephony_http
from smeline.telephony.console_presence import PauseOnConsoleLoss
from smeline.telephony.setup import build_telephony, telephony_lifecycle
from smeline.ticketing import events as ticket_events
from smeline.ticketing import http as ticket_http
from smeline.ticketing.calendar_service import CalendarService
from smeline.ticketing.policies import PolicyBook, seed_default_policies
from smeline.ticketing.scheduler import SlaScheduler
from smeline.ticketing.services import TicketService
from smeline.ticketing.sla import SlaRules
from smeline.wallboard import http as wallboard_http
from smeline.wallboard.setup import build_wallboard, wallboard_lifecycle
from smeline.wallboard.setup import install as install_wallboard
from smeline.webchat import events as chat_events
from smeline.webchat import http as chat_http
from smeline.webchat.cors import make_widget_cors_middleware
from smeline.webchat.presence import ChatSeats
from smeline.webchat.setup import build_chat, chat_lifecycle
from smeline.webchat.setup import install as install_chat
from smeline.webchat.socket import install as install_chat_socket

logger = logging.getLogger(__name__)

meta_routes = ApiRoutes(tag="service")


class HealthOut(Out):
    status: str
    version: str
    database: str
    redis: bool
    telephony: str


@meta_routes.get(
    "/api/health", summary="Liveness and configuration", response=HealthOut, public=True
)
async def health(request: web.Request) -> web.StreamResponse:
    settings: Settings = request.app[keys.SETTINGS]
    return json_ok(
        HealthOut(
            status="ok",
            version=__version__,
            database="sqlite" if settings.is_sqlite else "postgresql",
            redis=settings.redis_url is not None,
            telephony="configured" if settings.telephony_configured else "not_configured",
        )
    )


def event_registry() -> EventRegistry:
    registry = EventRegistry()
    ticket_events.register(registry)
    telephony_events.register(registry)
    chat_events.register(registry)
    return registry


def freeze_gc_after_startup(app: web.Application, refreeze_seconds: float = 60.0) -> None:
    """The serving process's garbage-collector policy (``smeline/gc_policy.py``):
    freeze what start-up loaded, refreeze long-lived objects every minute, one
    full collection a night. Only for the serving process: tests build many
    apps and would keep them all."""
    gc_policy.install(app, gc_policy.GcPolicy(refreeze_seconds=refreeze_seconds))


def create_app(settings: Settings, *, background: bool = True) -> web.Application:
    """``background=False`` leaves the scheduler and dispatcher to the caller (tests)."""
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    passwords = Passwords(
        time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
    )
    registry = event_registry()
    bus = make_bus(registry, settings.redis_url)
    reference = ReferenceService(sessionmaker=sessionmaker)
    calendars = CalendarService(
        sessionmaker=sessionmaker, default_hours=tuple(settings.business_hours)
    )
    rules = SlaRules(settings.sla_warning_ratio)
    outbox = Outbox(channels=settings.notification_senders)
    session_cache = SessionCache(ttl_seconds=settings.session_cache_seconds)
    auth = AuthService(
        sessionmaker=sessionmaker,
        passwords=passwords,
        session_ttl=timedelta(hours=settings.session_ttl_hours),
        max_failures=settings.login_max_failures,
        failure_window=timedelta(minutes=settings.login_failure_window_minutes),
        cache=session_cache,
    )
    users = UserService(sessionmaker=sessionmaker, passwords=passwords, cache=session_cache)
    policies = PolicyBook(sessionmaker=sessionmaker)
    tickets = TicketService(
        sessionmaker=sessionmaker,
        reference=reference,
        calendars=calendars,
        rules=rules,
        outbox=outbox,
        bus=bus,
        policies=policies,
        number_prefix=settings.ticket_number_prefix,
    )
    scheduler = SlaScheduler(
        sessionmaker=sessionmaker,
        tickets=tickets,
        rules=rules,
        calendars=calendars,
        outbox=outbox,
        bus=bus,
        escalate_to_roles=settings.escalate_to_roles,
        archive_after_days=settings.archive_after_days,
        tick_seconds=settings.sla_tick_seconds,
    )

    telephony = build_telephony(
        settings, sessionmaker=sessionmaker, bus=bus, plan=number_plan(settings)
    )
    routing = build_routing(
        settings,
        sessionmaker=sessionmaker,
        reference=reference,
        calendars=calendars,
        # From the AMI live picture; None (unknown) while Asterisk is not
        # connected, so the queue is tried and Asterisk's joinempty decides.
        agents_ready=telephony.agents_ready,
    )
    agi_server = build_agi_server(settings)
    realtime, realtime_bridge = build_realtime(settings, auth=auth, reference=reference, bus=bus)
    chat = build_chat(
        settings,
        sessionmaker=sessionmaker,
        reference=reference,
        calendars=calendars,
        routing=routing,
        tickets=tickets,
        bus=bus,
    )
    # Consoles (/agent sockets): visitors are the chat service's; an open
    # console is a chat seat; a console gone for good pauses the agent.
    # The chat service's clock, as on the REST API (tests set a business day).
    realtime.set_visitor_authenticator(VisitorsNow(chat, now=chat.now))
    realtime.presence.add_listener(ChatSeats(chat, utcnow))
    install_chat_socket(chat, realtime, realtime_bridge)
    # Wrap-ups: an agent owing one takes no chat and cannot say ready.
    contacts = build_contacts(
        settings, sessionmaker=sessionmaker, reference=reference, tickets=tickets, chat=chat
    )
    # ... nor leave after-call work when its time is up (docs/wrapup.md)
    telephony.agents.ready_guard = contacts
    console_loss = PauseOnConsoleLoss(
        agents=telephony.agents,
        configured=lambda: telephony.configured,
        sockets=realtime.presence.sockets,
        grace_seconds=settings.console_disconnect_grace_seconds,
    )
    realtime.presence.add_listener(console_loss)
    wallboard, wallboard_publisher = build_wallboard(
        settings,
        sessionmaker=sessionmaker,
        reference=reference,
        routing=routing,
        telephony=telephony,
        bus=bus,
        realtime=realtime,
    )

    dispatcher = Dispatcher(
        sessionmaker=sessionmaker,
        senders=build_senders(settings),
        max_attempts=settings.notification_max_attempts,
    )

    route_tables = [
        meta_routes,
        auth_http.routes,
        reference_http.routes,
        ticket_http.routes,
        ticket_http.policy_routes,
        ticket_http.calendar_routes,
        notification_http.routes,
        telephony_http.routes,
        escalation_http.routes,
        expert_http.routes,
        screenpop_http.routes,
        *chat_http.ROUTE_TABLES,
        contacts_http.routes,
        wallboard_http.routes,
    ]
    public = {(s.method, s.path) for table in route_tables for s in table.specs if s.public}
    public.add(("GET", "/api/openapi.json"))
    app = web.Application(
        middlewares=[
            # the portal widget's calls to the visitor API (before the error
            # middleware, so error answers are readable cross-origin too)
            make_widget_cors_middleware(settings.realtime_allowed_origins),
            error_middleware,
            make_auth_middleware(auth, public),
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.ENGINE] = engine
    app[keys.SESSIONMAKER] = sessionmaker
    app[keys.BUS] = bus
    app[keys.EVENT_REGISTRY] = registry
    app[keys.REFERENCE] = reference
    app[keys.CALENDARS] = calendars
    app[keys.AUTH] = auth
    app[keys.USERS] = users
    app[keys.TICKETS] = tickets
    app[keys.SCHEDULER] = scheduler
    app[keys.OUTBOX] = outbox
    app[keys.POLICIES] = policies
    app[keys.DISPATCHER] = dispatcher
    app[keys.ROUTING] = routing
    app[keys.AGI_SERVER] = agi_server
    app[keys.TELEPHONY] = telephony
    install_chat(app, settings, chat)
    install_contacts(app, contacts)
    install_wallboard(app, wallboard, wallboard_publisher)
    for table in route_tables:
        table.register(app)
    app.router.add_get("/api/openapi.json", openapi_handler)
    # A SIP WebSocket outside the console's own origin (SMELINE_WEBRTC_WS_URL)
    # must be in the console's CSP connect-src, or JsSIP cannot connect to it.
    sip_ws = settings.webrtc_ws_url
    add_console_routes(app, connect_sources=[sip_ws] if sip_ws else [])
    app[keys.OPENAPI_DOCUMENT] = build_openapi(app[keys.API_SPECS])
    install_realtime(app, realtime, realtime_bridge)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await reference.seed()
        await seed_default_policies(sessionmaker)
        await policies.load()
        await reference.load()
        await calendars.load()
        await bus.start()
        if background and settings.scheduler_enabled:
            scheduler.start()
            dispatcher.start()
        logger.info(
            "smeline started database=%s redis=%s telephony=%s",
            "sqlite" if settings.is_sqlite else "postgresql",
            settings.redis_url is not None,
            "configured" if settings.telephony_configured else "not configured",
        )
        yield
        await scheduler.stop()
        await dispatcher.stop()
        await bus.close()
        await engine.dispose()

    app.cleanup_ctx.append(lifecycle)

    async def presence_lifecycle(_app: web.Application) -> AsyncIterator[None]:
        yield
        # The sockets are closed by now: let the listeners finish (chat seats
        # released) while the database is still there.
        await realtime.presence.drain()
        await console_loss.close()

    app.cleanup_ctx.append(presence_lifecycle)
    # After the bus has started; stops (closing every socket) before it closes.
    app.cleanup_ctx.append(realtime_lifecycle(realtime, realtime_bridge))
    # After the socket layer: stops pushing before the sockets close.
    app.cleanup_ctx.append(wallboard_lifecycle(wallboard_publisher))
    app.cleanup_ctx.append(telephony_lifecycle(telephony))
    app.cleanup_ctx.append(
        agi_lifecycle(
            settings,
            server=agi_server,
            routing=routing,
            tickets=tickets,
            sessionmaker=sessionmaker,
            outbox=outbox,
        )
    )
    app.cleanup_ctx.append(chat_lifecycle(settings, chat, background=background))
    return app
