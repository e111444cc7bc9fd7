"""The hotline's FastAGI handlers: route, survey, voicemail, callback.

The dialplan (``dialplan/extensions.conf``) sets safe defaults before each
AGI (city queue), so a handler that fails, is slow (the server's think
deadline, ~300 ms) or is unreachable never leaves a caller in silence; the
handlers only make the answer better. Variables they set are the contract
with the dialplan and with the AMI side (``telephony.calls``):

``route``     SMELINE_DECISION, split by the dialplan into SMELINE_ACTION
              (queue|afterhours), SMELINE_QUEUE, SMELINE_OVERFLOW, SMELINE_ANNOUNCE,
              SMELINE_PRIO, SMELINE_QUEUE_TIMEOUT, SMELINE_COUNTY, SMELINE_WINDOW,
              SMELINE_CATEGORY, SMELINE_CALLER_KEY (see DECISION_FIELDS)
``survey``    SMELINE_SURVEY = 1|2|3 (the dialplan set ``offered`` before)
``voicemail`` SMELINE_TICKET (short numeric reference, read back digit by digit)
``callback``  SMELINE_TICKET
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.agi_scripts.fastagi import AgiChannelDead, AgiSession, FastAgiServer
from smeline.auth.permissions import Principal
from smeline.auth.services import system_principal
from smeline.masking import mask_phone
from smeline.notifications.services import Outbox
from smeline.prompts.catalogue import CATEGORY_MENU, COUNTY_MENU
from smeline.routing.decide import CITY_WINDOW, RouteAction, county_from_menu
from smeline.routing.numbers import NumberKind, normalise
from smeline.routing.services import RoutingService
from smeline.ticketing.calendar import BusinessCalendar
from smeline.ticketing.models import Priority, Source
from smeline.ticketing.schemas import Link, TicketCreateIn
from smeline.ticketing.services import TicketService

logger = logging.getLogger(__name__)

HOTLINE_USERNAME = "hotline"

#: The work-order texts the hotline writes (zh-CN, one place).
TEXTS = {
    "voicemail_subject": "热线留言，请回电",
    "callback_subject": "来电请求回电",
    "voicemail_body": "来电号码 {phone} 在非工作时间留言。",
    "callback_body": "来电号码 {phone} 在排队时请求回电。",
    "recording": "留言录音：{file}",
    "unknown_phone": "未知",
    "hotline_user": "热线语音系统",
}

#: The route's answer is ONE variable, SMELINE_DECISION, these fields joined
#: by "~" in this order; the dialplan splits it with CUT() (one FastAGI round
#: trip instead of ten). Keep in step with [smeline-inbound].
DECISION_FIELDS = (
    "SMELINE_ACTION",
    "SMELINE_QUEUE",
    "SMELINE_OVERFLOW",
    "SMELINE_ANNOUNCE",
    "SMELINE_PRIO",
    "SMELINE_QUEUE_TIMEOUT",
    "SMELINE_COUNTY",
    "SMELINE_WINDOW",
    "SMELINE_CATEGORY",
    "SMELINE_CALLER_KEY",
)
_DECISION_SAFE = re.compile(r"^[A-Za-z0-9_+/\-]{0,64}$")


def pack_decision(fields: Mapping[str, str | None]) -> str:
    """``SMELINE_DECISION``; every value is a code, digits or a prompt name,
    so none can hold the separator (checked: a bad value is left empty)."""
    values = []
    for name in DECISION_FIELDS:
        value = fields.get(name) or ""
        values.append(value if _DECISION_SAFE.match(value) else "")
    return "~".join(values)


def unpack_decision(packed: str) -> dict[str, str]:
    """What the dialplan's CUT() calls make of it (tests, tools)."""
    parts = packed.split("~")
    return {name: parts[i] if i < len(parts) else "" for i, name in enumerate(DECISION_FIELDS)}


#: What the dialplan does when a handler cannot answer: the city queue.
ROUTE_FALLBACK = {
    "SMELINE_ACTION": "queue",
    "SMELINE_QUEUE": CITY_WINDOW,
    "SMELINE_ROUTE": "fallback",
}


@dataclass(frozen=True, slots=True)
class IvrOptions:
    menu_timeout_ms: int = 6000
    menu_attempts: int = 2
    county_queue_timeout: int = 60  # seconds in a county queue before overflowing to the city
    city_queue_timeout: int = 300
    callback_within: timedelta = timedelta(hours=1)  # after the next business morning opens


def next_business_morning(cal: BusinessCalendar, now: datetime, within: timedelta) -> datetime:
    """The callback deadline of a voicemail: the next working day's first
    business period start, plus ``within`` (in business time)."""
    day = now.astimezone(cal.tz).date() + timedelta(days=1)
    while not cal.is_workday(day):
        day += timedelta(days=1)
    opening = cal.business_intervals(day)[0][0]
    return cal.add_business_time(opening, within)


def sms_to_caller(
    sessionmaker: async_sessionmaker[AsyncSession], outbox: Outbox, now: Callable[[], datetime]
) -> Callable[[str, str, str], Coroutine[Any, Any, None]]:
    """The caller gets the work order's reference by SMS too (an outbox row)."""

    async def send(phone: str, template_id: str, ref: str) -> None:
        async with sessionmaker() as db, db.begin():
            await outbox.enqueue_to_phone(
                db,
                phone=phone,
                template_id=template_id,
                params={"ref": ref},
                dedupe_key=f"hotline:{template_id}:{ref}",
                now=now(),
            )

    return send


async def hotline_principal(sessionmaker: async_sessionmaker[AsyncSession]) -> Principal:
    """The account work orders from the hotline IVR are created by."""
    return await system_principal(
        sessionmaker,
        username=HOTLINE_USERNAME,
        display_name=TEXTS["hotline_user"],
        window_code=CITY_WINDOW,
    )


class HotlineIvr:
    def __init__(
        self,
        *,
        routing: RoutingService,
        tickets: TicketService,
        principal: Principal,
        now: Callable[[], datetime],
        options: IvrOptions | None = None,
        text_caller: Callable[[str, str, str], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.routing = routing
        self.tickets = tickets
        self.principal = principal
        self.now = now
        self.options = options or IvrOptions()
        # (mobile, template id, reference): the reference by SMS, off the call path.
        self.text_caller = text_caller

    def register(self, server: FastAgiServer) -> None:
        server.add_route("route", self.route, fallback=ROUTE_FALLBACK)
        server.add_route("survey", self.survey, fallback={})
        server.add_route("voicemail", self.voicemail, fallback={})
        server.add_route("callback", self.callback, fallback={})

    async def _menu(
        self, session: AgiSession, prompt: str, menu: tuple[tuple[str, str], ...]
    ) -> str | None:
        for attempt in range(self.options.menu_attempts):
            reply = await session.get_data(
                prompt if attempt == 0 else "smeline/invalid-choice",
                self.options.menu_timeout_ms,
                1,
            )
            choice = county_from_menu(reply.digits, menu)
            if choice is not None:
                return choice
        return None

    async def route(self, session: AgiSession) -> None:
        identified = await self.routing.identify(session.request.callerid)
        county = identified.county
        if county.ask:
            choice = await self._menu(session, "smeline/county-menu", COUNTY_MENU)
            county = self.routing.chosen(identified, choice)
        category = await self._menu(session, "smeline/category-menu", CATEGORY_MENU)
        decision = self.routing.queue_for(county, self.now())
        queue_timeout = (
            self.options.county_queue_timeout
            if decision.overflow_window
            else self.options.city_queue_timeout
        )
        fields = {
            "SMELINE_ACTION": decision.action.value,
            "SMELINE_QUEUE": decision.window if decision.action is RouteAction.QUEUE else None,
            "SMELINE_OVERFLOW": decision.overflow_window,
            "SMELINE_ANNOUNCE": "smeline/overflow-city" if decision.announce_overflow else None,
            "SMELINE_PRIO": "0",
            "SMELINE_QUEUE_TIMEOUT": str(queue_timeout),
            "SMELINE_COUNTY": county.county,
            "SMELINE_WINDOW": decision.wanted_window,
            "SMELINE_CATEGORY": category,
            "SMELINE_CALLER_KEY": identified.key.key,
        }
        await session.set_variable("SMELINE_DECISION", pack_decision(fields))
        if not logger.isEnabledFor(logging.DEBUG):
            # The call record keeps county, window and category; a line per
            # decision at INFO cost ~0.15 ms of CPU per call and, written by
            # the log thread, GIL hand-overs that doubled the p99 at 1,000
            # calls/s (bench/RESULTS.md). SMELINE_LOG_LEVEL=DEBUG shows it.
            return
        logger.debug(
            "routed caller=%s county=%s via=%s action=%s queue=%s",
            mask_phone(identified.key.key) or "-",
            county.county or "-",
            county.source.value,
            decision.action.value,
            decision.window or "-",
        )

    async def survey(self, session: AgiSession) -> None:
        for attempt in range(self.options.menu_attempts):
            reply = await session.get_data(
                "smeline/survey" if attempt == 0 else "smeline/survey-invalid",
                self.options.menu_timeout_ms,
                1,
            )
            if reply.digits in ("1", "2", "3"):
                await session.set_variable("SMELINE_SURVEY", reply.digits)
                await session.stream_file("smeline/survey-thanks")
                return
        # No valid answer: SMELINE_SURVEY stays "offered" → recorded as no answer.

    async def _ticket(self, session: AgiSession, *, voicemail: bool) -> None:
        request = session.request
        message = await session.get_variable("SMELINE_MESSAGE") if voicemail else None
        county = await session.get_variable("SMELINE_COUNTY")
        category = await session.get_variable("SMELINE_CATEGORY")
        linkedid = await session.get_full_variable("${CHANNEL(linkedid)}")
        key = normalise(request.callerid, self.routing.plan)
        now = self.now()
        window = self.routing.window_for_county(county or None)
        links = [Link(kind="call", ref=linkedid or request.uniqueid)]
        if message:
            links.append(Link(kind="voicemail", ref=message[-128:]))
        data = TicketCreateIn(
            subject=TEXTS["voicemail_subject" if voicemail else "callback_subject"],
            description=(
                TEXTS["voicemail_body" if voicemail else "callback_body"].format(
                    phone=key.key or TEXTS["unknown_phone"]
                )
                + (TEXTS["recording"].format(file=message) if message else "")
            ),
            source=Source.VOICEMAIL if voicemail else Source.PHONE,
            category_code=category or "other",
            county_code=county or None,
            window_code=window,
            priority=Priority.NORMAL,
            contact_phone=key.key or None,
            links=links,
        )
        due = next_business_morning(
            self.tickets.calendar_for(window), now, self.options.callback_within
        )
        ticket = await self.tickets.create(self.principal, data, now=now, first_response_due=due)
        if self.text_caller is not None and key.kind is NumberKind.MOBILE:
            template = "hotline_voicemail_reference" if voicemail else "hotline_callback_reference"
            self.routing.spawn(self.text_caller(key.key, template, ticket.short_ref), "sms")
        await session.set_variable("SMELINE_TICKET", ticket.short_ref)
        logger.info(
            "%s work order %s for caller=%s",
            "voicemail" if voicemail else "callback",
            ticket.number,
            mask_phone(key.key) or "-",
        )

    async def voicemail(self, session: AgiSession) -> None:
        try:
            await self._ticket(session, voicemail=True)
        except AgiChannelDead:
            logger.info("caller hung up before the voicemail work order was read back")

    async def callback(self, session: AgiSession) -> None:
        try:
            await self._ticket(session, voicemail=False)
        except AgiChannelDead:
            logger.info("caller hung up before the callback reference was read back")
