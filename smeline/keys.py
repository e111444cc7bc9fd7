"""Typed keys of what the application object carries (wiring done in ``app.py``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from smeline.agi_scripts.fastagi import FastAgiServer
from smeline.api import API_SPECS as API_SPECS  # defined there: api.py registers routes
from smeline.auth.services import AuthService, UserService
from smeline.bus import EventBus, EventRegistry
from smeline.config import Settings
from smeline.notifications.dispatcher import Dispatcher
from smeline.notifications.services import Outbox
from smeline.reference.services import ReferenceService
from smeline.routing.services import RoutingService
from smeline.telephony.setup import Telephony
from smeline.ticketing.calendar_service import CalendarService
from smeline.ticketing.policies import PolicyBook
from smeline.ticketing.scheduler import SlaScheduler
from smeline.ticketing.services import TicketService

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
BUS = web.AppKey("bus", EventBus)
EVENT_REGISTRY = web.AppKey("event_registry", EventRegistry)
REFERENCE = web.AppKey("reference_service", ReferenceService)
CALENDARS = web.AppKey("calendar_service", CalendarService)
AUTH = web.AppKey("auth_service", AuthService)
USERS = web.AppKey("user_service", UserService)
TICKETS = web.AppKey("ticket_service", TicketService)
SCHEDULER = web.AppKey("sla_scheduler", SlaScheduler)
OUTBOX = web.AppKey("outbox", Outbox)
POLICIES = web.AppKey("policies", PolicyBook)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
ROUTING = web.AppKey("routing_service", RoutingService)
AGI_SERVER = web.AppKey("agi_server", FastAgiServer)
TELEPHONY = web.AppKey("telephony", Telephony)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])
