"""Web chat domain logic: start and route a chat, messages, assignment,
transfer, end, rating, leaving a message; agents' presence and capacity.

The socket layer (``smeline/realtime``) and the REST handlers call the same
methods. Every state change publishes its event after its commit.

Assignment is cross-process through the database: presence lives in
``chat_agents`` (the socket layer calls :meth:`ChatService.agent_online` /
:meth:`agent_offline`), and a claim locks the agent's ``chat_agents`` row
(``FOR UPDATE SKIP LOCKED``), re-counts the agent's chats under that lock,
then takes the oldest queued chat (``FOR UPDATE SKIP LOCKED``) with a
conditional ``UPDATE … WHERE state = 'queued'``. Locks are always taken agent
first, chat second, so two claimers cannot deadlock. SQLite (the embedded,
single-process default) has no row locks: there the writes of this service go
one at a time through an asyncio lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol, cast

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    bindparam,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.auth.models import Role, User
from smeline.auth.permissions import Permission, Principal
from smeline.auth.services import system_principal
from smeline.bus import EventBus
from smeline.db import dialect_insert, utcnow
from smeline.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    ValidationFailed,
    field_error,
)
from smeline.masking import mask_phone
from smeline.portal_bridge.models import Enterprise, Member
from smeline.reference.data import CITY_CODE
from smeline.reference.services import ReferenceService
from smeline.routing.decide import CITY_WINDOW
from smeline.routing.services import RoutingService
from smeline.ticketing.calendar_service import CalendarService, parse_hours
from smeline.ticketing.models import Source
from smeline.ticketing.numbering import short_ref
from smeline.ticketing.schemas import Link, TicketCreateIn
from smeline.ticketing.services import TicketService
from smeline.ticketing.state_machine import ASSIGNABLE_ROLES
from smeline.webchat import attachments
from smeline.webchat import events as ev
from smeline.webchat.attachments import FileKind
from smeline.webchat.iplocation import IpAreaLookup, NoIpData
from smeline.webchat.models import (
    CannedReply,
    Chat,
    ChatAgent,
    ChatAttachment,
    ChatExpert,
    ChatIpRange,
    ChatMessage,
    ChatState,
    EndReason,
    Satisfaction,
    SenderKind,
)
from smeline.webchat.routing import (
    ChatWindowState,
    Network,
    VisitorFacts,
    choose_chat_window,
    identify_visitor,
    match_ip_range,
    parse_address,
)
from smeline.webchat.schemas import (
    CannedReplyIn,
    ChatListQuery,
    ChatStartIn,
    IpRangeIn,
    TransferIn,
)
from smeline.webchat.texts import TEXTS

logger = logging.getLogger(__name__)

WEBCHAT_USERNAME = "webchat"

#: Example networks → county, shipped so the routing can be seen working.
#: EXAMPLE DATA in RFC 5737's documentation range 198.51.100.0/24, which no
#: real visitor has: an administrator enters the real allocations (the
#: operators' or the government network's) before go-live.
EXAMPLE_IP_RANGES: tuple[tuple[str, str, str], ...] = (
    ("198.51.100.0/27", "441402", "示例：梅江区"),
    ("198.51.100.32/27", "441403", "示例：梅县区"),
    ("198.51.100.64/27", "441481", "示例：兴宁市"),
    ("198.51.100.96/27", "441426", "示例：平远县"),
    ("198.51.100.128/27", "441427", "示例：蕉岭县"),
    ("198.51.100.160/27", "441422", "示例：大埔县"),
    ("198.51.100.192/27", "441423", "示例：丰顺县"),
    ("198.51.100.224/27", "441424", "示例：五华县"),
)

_QUEUED = ChatState.QUEUED.value
_ASSIGNED = ChatState.ASSIGNED.value


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class VisitorIdentity:
    """Who a visitor token belongs to."""

    chat_id: int
    visitor_id: str


@dataclass(frozen=True, slots=True)
class ChatOptions:
    capacity: int = 3
    requeue_grace: timedelta = timedelta(seconds=60)
    message_max_chars: int = 2000
    messages_per_second: int = 5
    token_ttl: timedelta = timedelta(hours=24)
    starts_per_ip_per_minute: int = 20
    ip_ranges_refresh_seconds: float = 30.0
    attachment_max_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StartedChat:
    chat: Chat
    token: str
    queue_position: int | None
    overflowed: bool


@dataclass(frozen=True, slots=True)
class ChatView:
    chat: Chat
    queue_position: int | None
    agent_name: str | None


@dataclass(frozen=True, slots=True)
class PostedMessage:
    message: ChatMessage
    created: bool  # False: the same client id was seen before, nothing stored
    sender_name: str | None
    attachment: ev.AttachmentRef | None = None


class Line(NamedTuple):
    """A stored line as read back: the row, its sender's name, its file."""

    message: ChatMessage
    sender_name: str | None
    attachment: ev.AttachmentRef | None


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file to send: its cleaned name, its sniffed kind, its bytes."""

    filename: str
    kind: FileKind
    data: bytes


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file as downloaded."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class AgentSeat:
    """An agent of a window as a transfer target."""

    user_id: int
    display_name: str
    window_code: str
    online: bool
    capacity: int
    active_chats: int


class AssignGuard(Protocol):
    """Who may not take a chat now (the wrap-up rule of ``smeline/contacts``)."""

    def seat_condition(
        self, window_code: str, user_id: SQLColumnExpression[int], now: datetime
    ) -> ColumnElement[bool] | None:
        """SQL on the claim's candidate seats; None: no restriction in this window."""

    async def ensure_free(self, user_id: int, *, now: datetime) -> None:
        """Raise (409) when ``user_id`` may not take a chat now."""


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """A window's chat queue: the waiting chats, first in line first."""

    window_code: str
    chat_ids: list[int]
    oldest_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Seat:
    user_id: int
    capacity: int
    online: bool
    active_chats: int
    last_chat_at: datetime | None


class _Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, BaseModel]] = []

    def add(self, name: str, payload: BaseModel) -> None:
        self.items.append((name, payload))


class ChatLike(Protocol):
    """What the line path reads of a chat: the ORM row, or the columns the
    text-line UPDATE returns."""

    @property
    def id(self) -> int: ...
    @property
    def visitor_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def window_code(self) -> str: ...
    @property
    def wanted_window_code(self) -> str: ...
    @property
    def county_code(self) -> str | None: ...
    @property
    def category_code(self) -> str: ...
    @property
    def agent_id(self) -> int | None: ...
    @property
    def joint(self) -> bool: ...


def _base(chat: ChatLike) -> dict[str, Any]:
    return {
        "chat_id": chat.id,
        "visitor_id": chat.visitor_id,
        "state": chat.state,
        "window_code": chat.window_code,
        "wanted_window_code": chat.wanted_window_code,
        "county_code": chat.county_code,
        "category_code": chat.category_code,
        "agent_id": chat.agent_id,
    }


def _expert_event(chat: Chat, expert_id: int, by_user_id: int) -> ev.ChatExpertEvent:
    return ev.ChatExpertEvent(
        **_base(chat),
        expert_id=expert_id,
        by_user_id=by_user_id,
        visitor_name=chat.visitor_name,
        company=chat.company,
    )


def _check_rate(recent: int | None, per_second: int) -> None:
    """429 when a sender's lines of the last second reach the limit."""
    if (recent or 0) >= per_second:
        raise TooManyRequests(
            "Too many messages; slow down",
            error_id="chat_rate_limited",
            details={"per_second": per_second},
            headers={"Retry-After": "1"},
        )


# Built once: a chat line is the hottest write (bench_realtime: building the
# statements per call cost about as much as running them).
_LOCK_CHAT = (
    select(Chat)
    .where(Chat.id == bindparam("chat_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_SAME_CLIENT_ID = select(ChatMessage).where(
    ChatMessage.chat_id == bindparam("chat_id"),
    ChatMessage.sender_kind == bindparam("kind"),
    ChatMessage.client_id == bindparam("client_id"),
)
_RECENT_LINES = (
    select(func.count())
    .select_from(ChatMessage)
    .where(
        ChatMessage.chat_id == bindparam("chat_id"),
        ChatMessage.sender_kind == bindparam("kind"),
        ChatMessage.created_at > bindparam("since"),
    )
)
_INSERT_LINE = insert(ChatMessage).returning(ChatMessage.id)
# A text line in four statements and no ORM objects (bench_realtime: the ORM's
# loading of the locked chat and the flush of its counter were most of a
# line's CPU). The UPDATE takes the chat's row lock, as FOR UPDATE did, and
# hands out the line's number; a refusal afterwards rolls it back.
_LINE_ID_OF_CLIENT_ID = select(ChatMessage.id).where(
    ChatMessage.chat_id == bindparam("chat_id"),
    ChatMessage.sender_kind == bindparam("kind"),
    ChatMessage.client_id == bindparam("client_id"),
)
_NEXT_SEQ = (
    update(Chat)
    .where(Chat.id == bindparam("chat_id"))
    .values(last_seq=Chat.last_seq + 1)
    .returning(
        Chat.id,
        Chat.visitor_id,
        Chat.state,
        Chat.window_code,
        Chat.wanted_window_code,
        Chat.county_code,
        Chat.category_code,
        Chat.agent_id,
        Chat.joint,
        Chat.last_seq,
        Chat.first_agent_reply_at,
    )
    .execution_options(synchronize_session=False)
)
_FIRST_AGENT_REPLY = (
    update(Chat)
    .where(Chat.id == bindparam("chat_id"), Chat.first_agent_reply_at.is_(None))
    .values(first_agent_reply_at=bindparam("at"))
    .execution_options(synchronize_session=False)
)
_ACTIVE_EXPERTS = (
    select(ChatExpert.user_id)
    .where(ChatExpert.chat_id == bindparam("chat_id"), ChatExpert.left_at.is_(None))
    .order_by(ChatExpert.id)
)
_ATTACHMENT_REF = select(
    ChatAttachment.id, ChatAttachment.filename, ChatAttachment.content_type, ChatAttachment.size
)


def _invited(user_id: int) -> ColumnElement[bool]:
    return Chat.id.in_(
        select(ChatExpert.chat_id).where(
            ChatExpert.user_id == user_id, ChatExpert.left_at.is_(None)
        )
    )


def _ref(row: Any) -> ev.AttachmentRef:
    return ev.AttachmentRef(
        id=row.id, filename=row.filename, content_type=row.content_type, size=row.size
    )


class ChatService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        reference: ReferenceService,
        calendars: CalendarService,
        routing: RoutingService,
        tickets: TicketService,
        bus: EventBus,
        options: ChatOptions | None = None,
        ip_lookup: IpAreaLookup | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        # What "now" is for the HTTP handlers (tests set a business day).
        self.clock = clock
        self._sessionmaker = sessionmaker
        self._reference = reference
        self._calendars = calendars
        self._routing = routing
        self._tickets = tickets
        self._bus = bus
        self.options = options or ChatOptions()
        self.ip_lookup: IpAreaLookup = ip_lookup or NoIpData()
        self._ranges: list[tuple[Network, str]] = []
        self._ranges_loaded_at = 0.0
        self._principal: Principal | None = None
        bind = sessionmaker.kw.get("bind")
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        self._sqlite_lock = asyncio.Lock()
        #: Set by the wiring (``smeline/contacts``): agents owing a wrap-up take no chat.
        self.assign_guard: AssignGuard | None = None

    def now(self) -> datetime:
        return self.clock()

    # --- plumbing ---------------------------------------------------------------------

    @asynccontextmanager
    async def _serial(self) -> AsyncIterator[None]:
        """SQLite has no row locks: this service's writes go one at a time there."""
        if self._sqlite:
            async with self._sqlite_lock:
                yield
        else:
            yield

    async def _publish(self, events: _Events) -> None:
        for name, payload in events.items:
            try:
                await self._bus.publish(name, payload)
            except Exception:
                # The change is committed; a bus hiccup must not turn it into an error.
                logger.exception("could not publish %s", name)

    async def _append(
        self,
        db: AsyncSession,
        chat: Chat,
        kind: SenderKind,
        body: str,
        now: datetime,
        events: _Events,
        *,
        user_id: int | None = None,
        client_id: str | None = None,
        attachment: ev.AttachmentRef | None = None,
    ) -> ChatMessage:
        """A line at the end of a chat whose row this transaction holds."""
        chat.last_seq += 1
        values = {
            "chat_id": chat.id,
            "seq": chat.last_seq,
            "sender_kind": kind.value,
            "sender_user_id": user_id,
            "client_id": client_id or f"sys-{secrets.token_hex(8)}",
            "body": body,
            "created_at": now,
            "attachment_id": attachment.id if attachment is not None else None,
        }
        # A Core INSERT, not the unit of work: the line is never changed after.
        new_id = await db.scalar(_INSERT_LINE, values)
        message = ChatMessage(id=new_id, **values)
        events.add(
            ev.CHAT_MESSAGE,
            ev.ChatMessageEvent(
                **_base(chat),
                seq=message.seq,
                sender_kind=message.sender_kind,
                sender_user_id=user_id,
                client_id=message.client_id,
                body=body,
                created_at=now,
                attachment=attachment,
                expert_ids=await self._experts(db, chat),
            ),
        )
        return message

    @staticmethod
    async def _experts(db: AsyncSession, chat: ChatLike) -> list[int]:
        """The experts in the chat now; no query for the (many) chats without one."""
        if not chat.joint:
            return []
        return list(await db.scalars(_ACTIVE_EXPERTS, {"chat_id": chat.id}))

    async def _back_in_queue(
        self, db: AsyncSession, chat: Chat, cause: str, events: _Events
    ) -> None:
        """A chat put (back) into its window's queue: tell who waits where."""
        await db.flush()
        events.add(
            ev.CHAT_QUEUED,
            ev.ChatQueued(
                **_base(chat),
                routing_reason=chat.routing_reason,
                queue_position=await self.queue_position(db, chat) or 1,
                cause=cause,
            ),
        )

    async def _locked_chat(self, db: AsyncSession, chat_id: int) -> Chat:
        chat = await db.scalar(_LOCK_CHAT, {"chat_id": chat_id})
        if chat is None:
            raise NotFound("No such chat", error_id="chat_not_found")
        return chat

    def _window_name(self, code: str) -> str:
        window = self._reference.data.windows.get(code)
        return window.name if window else code

    async def _display_name(self, db: AsyncSession, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        return await db.scalar(select(User.display_name).where(User.id == user_id))

    async def display_name(self, user_id: int) -> str | None:
        async with self._sessionmaker() as db:
            return await self._display_name(db, user_id)

    async def queue_snapshot(self, window_code: str) -> QueueSnapshot:
        """The live queue of a window, for the socket layer's counts and positions."""
        async with self._sessionmaker() as db:
            rows = (
                await db.execute(
                    select(Chat.id, Chat.created_at)
                    .where(Chat.state == _QUEUED, Chat.window_code == window_code)
                    .order_by(Chat.created_at, Chat.id)
                )
            ).all()
        return QueueSnapshot(
            window_code=window_code,
            chat_ids=[row.id for row in rows],
            oldest_created_at=rows[0].created_at if rows else None,
        )

    async def queue_position(self, db: AsyncSession, chat: Chat) -> int | None:
        if chat.state != _QUEUED:
            return None
        ahead = await db.scalar(
            select(func.count())
            .select_from(Chat)
            .where(
                Chat.state == _QUEUED,
                Chat.window_code == chat.window_code,
                tuple_(Chat.created_at, Chat.id) < tuple_(chat.created_at, chat.id),
            )
        )
        return int(ahead or 0) + 1

    # --- IP ranges ----------------------------------------------------------------------

    async def seed_example_ip_ranges(self) -> None:
        """Ship the example table on an empty table (marked as example)."""
        async with self._sessionmaker() as db, db.begin():
            if await db.scalar(select(ChatIpRange.id).limit(1)) is not None:
                return
            db.add_all(
                ChatIpRange(cidr=c, county_code=county, note=n, example=True)
                for c, county, n in EXAMPLE_IP_RANGES
            )

    async def load_ip_ranges(self) -> None:
        async with self._sessionmaker() as db:
            rows = (await db.execute(select(ChatIpRange.cidr, ChatIpRange.county_code))).all()
        ranges: list[tuple[Network, str]] = []
        for cidr, county in rows:
            try:
                ranges.append((ipaddress.ip_network(cidr, strict=False), county))
            except ValueError:
                logger.warning("ignoring bad network %r in chat_ip_ranges", cidr)
        self._ranges = ranges
        self._ranges_loaded_at = time.monotonic()

    async def _ip_ranges(self) -> Sequence[tuple[Network, str]]:
        # Other processes' edits show up within the refresh period.
        if time.monotonic() - self._ranges_loaded_at > self.options.ip_ranges_refresh_seconds:
            await self.load_ip_ranges()
        return self._ranges

    async def list_ip_ranges(self) -> list[ChatIpRange]:
        async with self._sessionmaker() as db:
            return list(await db.scalars(select(ChatIpRange).order_by(ChatIpRange.cidr)))

    async def add_ip_range(self, data: IpRangeIn, now: datetime) -> ChatIpRange:
        self._check_county(data.county_code, "county_code")
        async with self._sessionmaker() as db:
            row = ChatIpRange(
                cidr=data.cidr, county_code=data.county_code, note=data.note, updated_at=now
            )
            db.add(row)
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()
                raise Conflict(
                    "That network is already in the table",
                    error_id="ip_range_exists",
                    details={"cidr": data.cidr},
                ) from None
        await self.load_ip_ranges()
        return row

    async def delete_ip_range(self, range_id: int) -> None:
        async with self._sessionmaker() as db, db.begin():
            row = await db.get(ChatIpRange, range_id)
            if row is None:
                raise NotFound("No such IP range", error_id="ip_range_not_found")
            await db.delete(row)
        await self.load_ip_ranges()

    # --- canned replies ---------------------------------------------------------------

    async def canned_replies(self, p: Principal) -> list[CannedReply]:
        p.require(Permission.TELEPHONY_AGENT)
        stmt = select(CannedReply).order_by(CannedReply.window_code.nulls_first(), CannedReply.id)
        if p.window_code and not p.can(Permission.TICKETS_READ_ALL):
            stmt = stmt.where(
                or_(CannedReply.window_code.is_(None), CannedReply.window_code == p.window_code)
            )
        async with self._sessionmaker() as db:
            return list(await db.scalars(stmt))

    async def add_canned_reply(
        self, p: Principal, data: CannedReplyIn, now: datetime
    ) -> CannedReply:
        if data.window_code is not None and data.window_code not in self._reference.data.windows:
            raise ValidationFailed(
                "Unknown window",
                details=[field_error("window_code", "unknown", "no such window")],
            )
        async with self._sessionmaker() as db:
            row = CannedReply(
                window_code=data.window_code,
                title=data.title,
                body=data.body,
                created_by_id=p.user_id,
                created_at=now,
            )
            db.add(row)
            await db.commit()
        return row

    # --- starting a chat ----------------------------------------------------------------

    def _check_county(self, code: str | None, field: str) -> None:
        if code is not None and code not in self._reference.data.counties:
            raise ValidationFailed(
                "Unknown county", details=[field_error(field, "unknown", "no such county")]
            )

    async def _member_county(self, db: AsyncSession, member_id: int | None) -> str | None:
        if member_id is None:
            return None
        row = (
            await db.execute(
                select(Member.county_code, Enterprise.county_code)
                .outerjoin(Enterprise, Enterprise.id == Member.enterprise_id)
                .where(Member.id == member_id)
            )
        ).first()
        if row is None:
            return None
        return row[0] or row[1]

    async def window_states(
        self, now: datetime, codes: Sequence[str]
    ) -> dict[str, ChatWindowState]:
        """Open (hours, holidays) and agents online / with a free slot, per window."""
        windows = self._reference.data.windows
        wanted = [c for c in dict.fromkeys(codes) if c in windows and windows[c].active]
        if not wanted:
            return {}
        active = (
            select(func.count())
            .select_from(Chat)
            .where(Chat.agent_id == ChatAgent.user_id, Chat.state == _ASSIGNED)
            .scalar_subquery()
        )
        capacity = func.coalesce(ChatAgent.capacity, self.options.capacity)
        async with self._sessionmaker() as db:
            rows = (
                await db.execute(
                    select(User.window_code, ChatAgent.user_id, active < capacity)
                    .join(ChatAgent, ChatAgent.user_id == User.id)
                    .where(
                        User.window_code.in_(wanted),
                        User.active.is_(True),
                        ChatAgent.connections > 0,
                    )
                )
            ).all()
        online: dict[str, int] = {}
        free: dict[str, int] = {}
        for window_code, _user_id, has_room in rows:
            if window_code is None:
                continue
            online[window_code] = online.get(window_code, 0) + 1
            if has_room:
                free[window_code] = free.get(window_code, 0) + 1
        states = {}
        for code in wanted:
            hours = parse_hours(windows[code].hours, self._calendars.default_hours)
            is_open = self._calendars.calendar(hours).is_business_time(now)
            states[code] = ChatWindowState(code, is_open, online.get(code, 0), free.get(code, 0))
        return states

    async def start(self, data: ChatStartIn, *, ip: str | None, now: datetime) -> StartedChat:
        ref = self._reference.data
        if data.category_code not in ref.categories:
            raise ValidationFailed(
                "Unknown service category",
                details=[field_error("category_code", "unknown", "no such category")],
            )
        self._check_county(data.county_code, "county_code")
        await self._calendars.refresh_now_and_then()
        address = parse_address(ip)
        visitor_ip = str(address) if address is not None else None
        async with self._sessionmaker() as db:
            if visitor_ip is not None and self.options.starts_per_ip_per_minute > 0:
                recent = await db.scalar(
                    select(func.count())
                    .select_from(Chat)
                    .where(
                        Chat.visitor_ip == visitor_ip,
                        Chat.created_at > now - timedelta(minutes=1),
                    )
                )
                if (recent or 0) >= self.options.starts_per_ip_per_minute:
                    raise TooManyRequests(
                        "Too many chats started from this address; try again in a minute",
                        error_id="chat_start_throttled",
                        details={"retry_after_seconds": 60},
                        headers={"Retry-After": "60"},
                    )
            member_county = await self._member_county(db, data.member_id)
        phone_county: str | None = None
        phone_key = ""
        if data.phone:
            identified = await self._routing.identify(data.phone)
            phone_key = identified.key.key
            phone_county = identified.county.county
        ip_county = match_ip_range(address, await self._ip_ranges())
        ip_area = self.ip_lookup.area(address)
        who = identify_visitor(
            VisitorFacts(
                member_county=member_county,
                form_county=data.county_code,
                phone_county=phone_county,
                ip_county=ip_county,
            )
        )
        wanted_window = self._routing.window_for_county(
            who.county if who.county != CITY_CODE else None
        )
        states = await self.window_states(now, [wanted_window, CITY_WINDOW])
        decision = choose_chat_window(wanted_window, states)
        token = secrets.token_urlsafe(32)
        events = _Events()
        async with self._serial(), self._sessionmaker() as db:
            chat = Chat(
                token_hash=token_digest(token),
                visitor_id=secrets.token_hex(8),
                visitor_name=data.name,
                company=data.company,
                phone=data.phone,
                phone_key=phone_key,
                member_id=data.member_id if member_county is not None else None,
                chosen_county_code=data.county_code,
                county_code=who.county,
                category_code=data.category_code,
                wanted_window_code=wanted_window,
                window_code=decision.window or wanted_window,
                routing_reason=who.reason.value,
                visitor_ip=visitor_ip,
                ip_area=ip_area.value,
                state=_QUEUED if decision.window else ChatState.ENDED.value,
                end_reason=None if decision.window else EndReason.CLOSED.value,
                ended_at=None if decision.window else now,
                created_at=now,
                requeued=0,
                last_seq=0,
            )
            db.add(chat)
            await db.flush()
            position = await self.queue_position(db, chat)
            await db.commit()
        if position is not None:
            events.add(
                ev.CHAT_QUEUED,
                ev.ChatQueued(
                    **_base(chat),
                    routing_reason=chat.routing_reason,
                    queue_position=position,
                    cause="started",
                ),
            )
        await self._publish(events)
        logger.info(
            "chat %s started county=%s via=%s window=%s state=%s phone=%s ip_area=%s",
            chat.id,
            chat.county_code or "-",
            chat.routing_reason,
            chat.window_code,
            chat.state,
            mask_phone(phone_key) or "-",
            chat.ip_area,
        )
        if decision.window:
            await self.dispatch(decision.window, now)
            view = await self.view(chat.id)
            chat, position = view.chat, view.queue_position
        return StartedChat(chat, token, position, decision.overflowed)

    # --- visitors -----------------------------------------------------------------------

    async def authenticate(self, token: str, *, now: datetime) -> VisitorIdentity | None:
        """The chat a visitor token opens, or None (unknown, or older than its lifetime)."""
        if not token or len(token) > 128:
            return None
        async with self._sessionmaker() as db:
            row = (
                await db.execute(
                    select(Chat.id, Chat.visitor_id, Chat.created_at).where(
                        Chat.token_hash == token_digest(token)
                    )
                )
            ).first()
        if row is None or row.created_at + self.options.token_ttl < now:
            return None
        return VisitorIdentity(chat_id=row.id, visitor_id=row.visitor_id)

    @staticmethod
    def own_chat(identity: VisitorIdentity, chat_id: int) -> None:
        """A visitor token opens its own chat only; another chat does not exist for it."""
        if identity.chat_id != chat_id:
            raise NotFound("No such chat", error_id="chat_not_found")

    async def view(self, chat_id: int) -> ChatView:
        async with self._sessionmaker() as db:
            chat = await db.get(Chat, chat_id)
            if chat is None:
                raise NotFound("No such chat", error_id="chat_not_found")
            return ChatView(
                chat,
                await self.queue_position(db, chat),
                await self._display_name(db, chat.agent_id),
            )

    def window_name(self, code: str) -> str:
        return self._window_name(code)

    async def post_message(
        self,
        chat_id: int,
        *,
        kind: SenderKind,
        client_id: str,
        body: str,
        now: datetime,
        user_id: int | None = None,
        file: NewFile | None = None,
    ) -> PostedMessage:
        """Idempotent: the same (chat, sender kind, client id) returns the line
        stored the first time, whatever its body (or file) says now. A line
        with ``file`` stores the file in the same transaction, its name as body."""
        if file is not None:
            body = file.filename
            if len(file.data) > self.options.attachment_max_bytes:
                raise attachments.too_large(self.options.attachment_max_bytes)
        elif len(body) > self.options.message_max_chars:
            raise ValidationFailed(
                "Message too long",
                error_id="message_too_long",
                details=[
                    field_error(
                        "body", "too_long", f"at most {self.options.message_max_chars} characters"
                    )
                ],
            )
        if file is None:
            return await self._post_text(
                chat_id, kind=kind, client_id=client_id, body=body, now=now, user_id=user_id
            )
        events = _Events()
        try:
            async with self._serial(), self._sessionmaker() as db, db.begin():
                chat = await self._locked_chat(db, chat_id)
                existing = await db.scalar(
                    _SAME_CLIENT_ID,
                    {"chat_id": chat_id, "kind": kind.value, "client_id": client_id},
                )
                if existing is not None:
                    return await self._echo(db, existing)
                await self._may_post(db, chat, kind, user_id)
                recent = await db.scalar(
                    _RECENT_LINES,
                    {"chat_id": chat_id, "kind": kind.value, "since": now - timedelta(seconds=1)},
                )
                _check_rate(recent, self.options.messages_per_second)
                ref: ev.AttachmentRef | None = None
                if file is not None:
                    ref = await self._store_file(db, chat, kind, user_id, file, now)
                message = await self._append(
                    db,
                    chat,
                    kind,
                    body,
                    now,
                    events,
                    user_id=user_id,
                    client_id=client_id,
                    attachment=ref,
                )
                if kind is SenderKind.AGENT and chat.first_agent_reply_at is None:
                    chat.first_agent_reply_at = now
                name = await self._display_name(db, user_id)
        except IntegrityError:
            # The same client id arrived twice at once (no row lock on SQLite):
            # the first one won, this one is its echo (its file was rolled back).
            async with self._sessionmaker() as db:
                existing = await db.scalar(
                    select(ChatMessage).where(
                        ChatMessage.chat_id == chat_id,
                        ChatMessage.sender_kind == kind.value,
                        ChatMessage.client_id == client_id,
                    )
                )
                if existing is None:
                    raise
                return await self._echo(db, existing)
        await self._publish(events)
        return PostedMessage(message, True, name, ref)

    async def _post_text(
        self,
        chat_id: int,
        *,
        kind: SenderKind,
        client_id: str,
        body: str,
        now: datetime,
        user_id: int | None,
    ) -> PostedMessage:
        """:meth:`post_message` of a text line, the hot path: Core statements
        on the session's connection, the same checks in the same order."""
        key = {"chat_id": chat_id, "kind": kind.value, "client_id": client_id}
        try:
            async with self._serial(), self._sessionmaker() as db, db.begin():
                conn = await db.connection()
                existing_id = (await conn.execute(_LINE_ID_OF_CLIENT_ID, key)).scalar()
                if existing_id is not None:
                    existing = await db.get(ChatMessage, existing_id)
                    assert existing is not None
                    return await self._echo(db, existing)
                row = (await conn.execute(_NEXT_SEQ, {"chat_id": chat_id})).first()
                if row is None:
                    raise NotFound("No such chat", error_id="chat_not_found")
                chat = cast(ChatLike, row)
                await self._may_post(db, chat, kind, user_id)
                recent = (
                    await conn.execute(
                        _RECENT_LINES,
                        {**key, "since": now - timedelta(seconds=1)},
                    )
                ).scalar()
                _check_rate(recent, self.options.messages_per_second)
                values = {
                    "chat_id": chat_id,
                    "seq": row.last_seq,
                    "sender_kind": kind.value,
                    "sender_user_id": user_id,
                    "client_id": client_id,
                    "body": body,
                    "created_at": now,
                    "attachment_id": None,
                }
                new_id = (await conn.execute(_INSERT_LINE, values)).scalar_one()
                if kind is SenderKind.AGENT and row.first_agent_reply_at is None:
                    await conn.execute(_FIRST_AGENT_REPLY, {"chat_id": chat_id, "at": now})
                message = ChatMessage(id=new_id, **values)
                event = ev.ChatMessageEvent(
                    **_base(chat),
                    seq=row.last_seq,
                    sender_kind=kind.value,
                    sender_user_id=user_id,
                    client_id=client_id,
                    body=body,
                    created_at=now,
                    attachment=None,
                    expert_ids=await self._experts(db, chat),
                )
                name = await self._display_name(db, user_id)
        except IntegrityError:
            # The same client id arrived twice at once: the first one won.
            async with self._sessionmaker() as db:
                existing = await db.scalar(_SAME_CLIENT_ID, key)
                if existing is None:
                    raise
                return await self._echo(db, existing)
        events = _Events()
        events.add(ev.CHAT_MESSAGE, event)
        await self._publish(events)
        return PostedMessage(message, True, name, None)

    async def _echo(self, db: AsyncSession, existing: ChatMessage) -> PostedMessage:
        ref = None
        if existing.attachment_id is not None:
            row = (
                await db.execute(_ATTACHMENT_REF.where(ChatAttachment.id == existing.attachment_id))
            ).first()
            ref = _ref(row) if row is not None else None
        name = await self._display_name(db, existing.sender_user_id)
        return PostedMessage(existing, False, name, ref)

    async def _may_post(
        self, db: AsyncSession, chat: ChatLike, kind: SenderKind, user_id: int | None
    ) -> None:
        if kind is SenderKind.VISITOR and chat.state not in (_QUEUED, _ASSIGNED):
            raise Conflict(
                "The chat has ended", error_id="chat_ended", details={"state": chat.state}
            )
        if kind is SenderKind.AGENT and (chat.state != _ASSIGNED or chat.agent_id != user_id):
            raise Conflict(
                "Only the agent the chat is assigned to can reply",
                error_id="chat_not_yours",
                details={"state": chat.state},
            )
        if kind is SenderKind.EXPERT and (
            chat.state != _ASSIGNED or user_id not in await self._experts(db, chat)
        ):
            raise Conflict(
                "Only an expert in a going chat can write in it",
                error_id="chat_not_yours",
                details={"state": chat.state},
            )

    async def _store_file(
        self,
        db: AsyncSession,
        chat: Chat,
        kind: SenderKind,
        user_id: int | None,
        file: NewFile,
        now: datetime,
    ) -> ev.AttachmentRef:
        row = ChatAttachment(
            chat_id=chat.id,
            sender_kind=kind.value,
            sender_user_id=user_id,
            filename=file.filename,
            content_type=file.kind.content_type,
            size=len(file.data),
            sha256=hashlib.sha256(file.data).hexdigest(),
            data=file.data,
            created_at=now,
        )
        db.add(row)
        await db.flush()
        return ev.AttachmentRef(
            id=row.id, filename=row.filename, content_type=row.content_type, size=row.size
        )

    async def messages(self, chat_id: int, *, since: int, limit: int) -> tuple[list[Line], int]:
        async with self._sessionmaker() as db:
            last_seq = await db.scalar(select(Chat.last_seq).where(Chat.id == chat_id))
            if last_seq is None:
                raise NotFound("No such chat", error_id="chat_not_found")
            rows = (
                await db.execute(
                    select(
                        ChatMessage,
                        User.display_name,
                        ChatAttachment.filename,
                        ChatAttachment.content_type,
                        ChatAttachment.size,
                    )
                    .outerjoin(User, User.id == ChatMessage.sender_user_id)
                    .outerjoin(ChatAttachment, ChatAttachment.id == ChatMessage.attachment_id)
                    .where(ChatMessage.chat_id == chat_id, ChatMessage.seq > since)
                    .order_by(ChatMessage.seq)
                    .limit(limit)
                )
            ).all()
        lines = [
            Line(
                m,
                name,
                ev.AttachmentRef(
                    id=m.attachment_id, filename=filename, content_type=ctype, size=size
                )
                if m.attachment_id is not None
                else None,
            )
            for m, name, filename, ctype, size in rows
        ]
        return lines, int(last_seq)

    async def attachment(self, chat_id: int, attachment_id: int) -> StoredFile:
        """A file of ``chat_id`` (the caller checked who may read the chat)."""
        async with self._sessionmaker() as db:
            row = await db.scalar(
                select(ChatAttachment).where(
                    ChatAttachment.id == attachment_id, ChatAttachment.chat_id == chat_id
                )
            )
        if row is None:
            raise NotFound("No such attachment", error_id="attachment_not_found")
        return StoredFile(row.filename, row.content_type, row.data)

    async def _principal_for_tickets(self) -> Principal:
        """The account work orders from web chat are created by (never able to log in)."""
        if self._principal is None:
            self._principal = await system_principal(
                self._sessionmaker,
                username=WEBCHAT_USERNAME,
                display_name=TEXTS["chat_user"],
                window_code=CITY_WINDOW,
            )
        return self._principal

    async def leave_message(
        self, chat_id: int, *, body: str, phone: str | None, now: datetime
    ) -> Chat:
        """A work order for the visitor's own window; its short reference is
        what the visitor keeps. Repeating the call returns the same work order."""
        async with self._serial(), self._sessionmaker() as db, db.begin():
            chat = await self._locked_chat(db, chat_id)
            if chat.state == ChatState.LEFT_MESSAGE.value:
                if chat.ticket_id is None:
                    raise Conflict("The message is being filed", error_id="leave_message_pending")
                return chat
            never_served = chat.state == ChatState.ENDED.value and chat.assigned_at is None
            if chat.state != _QUEUED and not never_served:
                raise Conflict(
                    "A message can be left while waiting or when nobody could take the chat",
                    error_id="chat_not_waiting",
                    details={"state": chat.state},
                )
            previous = (chat.state, chat.end_reason, chat.ended_at, chat.phone)
            chat.state = ChatState.LEFT_MESSAGE.value
            chat.end_reason = EndReason.LEFT_MESSAGE.value
            chat.ended_at = chat.ended_at or now
            if phone and not chat.phone:
                chat.phone = phone
            snapshot = (chat.id, chat.visitor_name, chat.company, chat.phone)
        try:
            principal = await self._principal_for_tickets()
            ticket = await self._tickets.create(
                principal,
                TicketCreateIn(
                    subject=TEXTS["message_subject"],
                    description=TEXTS["message_body"].format(
                        name=snapshot[1], company=snapshot[2] or TEXTS["no_company"], body=body
                    ),
                    source=Source.WEB_CHAT,
                    category_code=chat.category_code,
                    county_code=chat.county_code,
                    window_code=chat.wanted_window_code,
                    enterprise_name=snapshot[2] or None,
                    contact_name=snapshot[1],
                    contact_phone=snapshot[3],
                    links=[Link(kind="chat", ref=str(snapshot[0]))],
                ),
                now=now,
            )
        except BaseException:
            async with self._serial(), self._sessionmaker() as db, db.begin():
                chat = await self._locked_chat(db, chat_id)
                chat.state, chat.end_reason, chat.ended_at, chat.phone = previous
            raise
        events = _Events()
        async with self._serial(), self._sessionmaker() as db, db.begin():
            chat = await self._locked_chat(db, chat_id)
            chat.ticket_id = ticket.id
            events.add(
                ev.CHAT_ENDED,
                ev.ChatEnded(
                    **_base(chat),
                    end_reason=EndReason.LEFT_MESSAGE.value,
                    satisfaction=None,
                    ticket_id=ticket.id,
                ),
            )
        await self._publish(events)
        logger.info("chat %s left a message: work order %s", chat.id, ticket.number)
        return chat

    async def rate(
        self, chat_id: int, *, satisfaction: Satisfaction, comment: str | None, now: datetime
    ) -> Chat:
        """Once per chat, for a chat an agent served; rating a chat still going ends it."""
        events = _Events()
        async with self._serial(), self._sessionmaker() as db, db.begin():
            chat = await self._locked_chat(db, chat_id)
            if chat.assigned_at is None or chat.state not in (_ASSIGNED, ChatState.ENDED.value):
                raise Conflict(
                    "Only a chat an agent served can be rated",
                    error_id="chat_not_rateable",
                    details={"state": chat.state},
                )
            if chat.rated_at is not None:
                raise Conflict("The chat is already rated", error_id="chat_already_rated")
            chat.satisfaction = satisfaction.value
            chat.satisfaction_comment = comment or None
            chat.rated_at = now
            if chat.state == _ASSIGNED:
                await self._end(db, chat, EndReason.VISITOR_LEFT, now, events)
            events.add(ev.CHAT_RATED, ev.ChatRated(**_base(chat), satisfaction=satisfaction.value))
        await self._publish(events)
        await self._freed(chat, now)
        return chat

    async def visitor_end(self, chat_id: int, *, now: datetime) -> Chat:
        """The visitor leaves (closes the widget): idempotent."""
        events = _Events()
        async with self._serial(), self._sessionmaker() as db, db.begin():
            chat = await self._locked_chat(db, chat_id)
            if chat.state in (_QUEUED, _ASSIGNED):
                await self._end(db, chat, EndReason.VISITOR_LEFT, now, events)
        await self._publish(events)
        await self._freed(chat, now)
        return chat

    async def _end(
        self, db: AsyncSession, chat: Chat, reason: EndReason, now: datetime, events: _Events
    ) -> None:
        served = chat.state == _ASSIGNED
        chat.state = ChatState.ENDED.value
        chat.end_reason = reason.value
        chat.ended_at = now
        if served and chat.satisfaction is None:
            # Until the visitor rates: ending without a rating is "no answer".
            chat.satisfaction = Satisfaction.NO_ANSWER.value
        text = TEXTS["ended_by_agent" if reason is EndReason.AGENT_CLOSED else "ended_by_visitor"]
        await self._append(db, chat, SenderKind.SYSTEM, text, now, events)
        events.add(
            ev.CHAT_ENDED,
            ev.ChatEnded(
                **_base(chat),
                end_reason=reason.value,
                satisfaction=chat.satisfaction,
                ticket_id=chat.ticket_id,
                expert_ids=await self._experts(db, chat),
            ),
        )

    async def _freed(self, chat: Chat, now: datetime) -> None:
        """A chat of an agent ended: their idle clock restarts and the slot is
        offered to the window's queue."""
        if chat.agent_id is None or chat.state != ChatState.ENDED.value:
            return
        await self._touch_agent(chat.agent_id, now)
        await self.dispatch(chat.window_code, now)

    async def _touch_agent(self, user_id: int | None, now: datetime) -> None:
        """The idle clock restarts when a chat of the agent ends; a short
        statement of its own, never while a chat row is held (lock order)."""
        if user_id is None:
            return
        async with self._serial(), self._sessionmaker() as db, db.begin():
            await db.execute(
                update(ChatAgent).where(ChatAgent.user_id == user_id).values(last_chat_at=now)
            )

    # --- agents: scope and reads -------------------------------------------------------------

    def _visibility(self, p: Principal) -> ColumnElement[bool] | None:
        """None: every chat. Otherwise what ``p`` may see (as work orders)."""
        if p.can(Permission.TICKETS_READ_ALL):
            return None
        mine = Chat.agent_id == p.user_id
        if p.role is Role.COUNTY_ADMIN and p.county_code:
            windows = [
                w.code
                for w in self._reference.data.windows.values()
                if w.county_code == p.county_code
            ]
            return or_(Chat.county_code == p.county_code, Chat.window_code.in_(windows), mine)
        if p.window_code:
            return or_(Chat.window_code == p.window_code, mine)
        return mine

    async def _scoped(self, db: AsyncSession, p: Principal, chat_id: int) -> Chat:
        if p.role is Role.EXPERT:
            # An expert reads only the chats they are in now.
            chat = await db.scalar(select(Chat).where(Chat.id == chat_id, _invited(p.user_id)))
            if chat is None:
                raise Forbidden(
                    "Experts see the chats they are invited to only",
                    error_id="chat_not_invited",
                )
            return chat
        p.require(Permission.TELEPHONY_AGENT)
        stmt: Select[Chat] = select(Chat).where(Chat.id == chat_id)
        condition = self._visibility(p)
        if condition is not None:
            stmt = stmt.where(condition)
        chat = await db.scalar(stmt)
        if chat is None:
            raise NotFound("No such chat", error_id="chat_not_found")
        return chat

    async def get_for_agent(self, p: Principal, chat_id: int) -> ChatView:
        async with self._sessionmaker() as db:
            chat = await self._scoped(db, p, chat_id)
            return ChatView(
                chat,
                await self.queue_position(db, chat),
                await self._display_name(db, chat.agent_id),
            )

    async def check_agent_scope(self, p: Principal, chat_id: int) -> None:
        async with self._sessionmaker() as db:
            await self._scoped(db, p, chat_id)

    async def list_chats(self, p: Principal, query: ChatListQuery) -> list[ChatView]:
        p.require(Permission.TELEPHONY_AGENT)
        stmt: Select[Chat] = select(Chat)
        condition = self._visibility(p)
        if condition is not None:
            stmt = stmt.where(condition)
        if query.state is not None:
            stmt = stmt.where(Chat.state == query.state.value)
        if query.mine:
            stmt = stmt.where(Chat.agent_id == p.user_id)
        if query.window_code is not None:
            stmt = stmt.where(Chat.window_code == query.window_code)
        if query.state is ChatState.QUEUED:
            stmt = stmt.order_by(Chat.created_at, Chat.id)  # the queue, first in line first
        else:
            stmt = stmt.order_by(Chat.id.desc())
        async with self._sessionmaker() as db:
            chats = list(await db.scalars(stmt.limit(query.limit)))
            names: dict[int, str] = {}
            agent_ids = {c.agent_id for c in chats if c.agent_id is not None}
            if agent_ids:
                rows = await db.execute(
                    select(User.id, User.display_name).where(User.id.in_(agent_ids))
                )
                names = {user_id: name for user_id, name in rows}
            return [
                ChatView(c, await self.queue_position(db, c), names.get(c.agent_id or 0))
                for c in chats
            ]

    @staticmethod
    def shown_phone(p: Principal, phone: str | None) -> str | None:
        return phone if p.can(Permission.PHONE_NUMBERS) else mask_phone(phone)

    @staticmethod
    def ticket_ref(chat: Chat) -> str | None:
        return short_ref(chat.ticket_id) if chat.ticket_id is not None else None

    # --- presence, capacity, assignment ---------------------------------------------------------

    async def _ensure_seat(self, db: AsyncSession, user_id: int) -> None:
        insert = dialect_insert(db)(ChatAgent).values(user_id=user_id, connections=0)
        await db.execute(insert.on_conflict_do_nothing(index_elements=["user_id"]))

    async def agent_online(self, user_id: int, *, now: datetime) -> None:
        """One more chat connection of this agent (the socket layer calls this
        per connection, and :meth:`agent_offline` when it closes)."""
        async with self._serial(), self._sessionmaker() as db, db.begin():
            await self._ensure_seat(db, user_id)
            await db.execute(
                update(ChatAgent)
                .where(ChatAgent.user_id == user_id)
                .values(
                    connections=ChatAgent.connections + 1,
                    online_since=func.coalesce(ChatAgent.online_since, now),
                    offline_since=None,
                )
            )
            window = await db.scalar(select(User.window_code).where(User.id == user_id))
        if window:
            await self.dispatch(window, now)

    async def agent_offline(self, user_id: int, *, now: datetime) -> None:
        """One chat connection fewer; at none, the grace period of the agent's chats starts."""
        async with self._serial(), self._sessionmaker() as db, db.begin():
            await db.execute(
                update(ChatAgent)
                .where(ChatAgent.user_id == user_id, ChatAgent.connections > 0)
                .values(connections=ChatAgent.connections - 1)
            )
            await db.execute(
                update(ChatAgent)
                .where(ChatAgent.user_id == user_id, ChatAgent.connections == 0)
                .values(
                    online_since=None,
                    offline_since=func.coalesce(ChatAgent.offline_since, now),
                )
            )

    async def set_capacity(self, user_id: int, capacity: int | None, *, now: datetime) -> None:
        async with self._serial(), self._sessionmaker() as db, db.begin():
            await self._ensure_seat(db, user_id)
            await db.execute(
                update(ChatAgent).where(ChatAgent.user_id == user_id).values(capacity=capacity)
            )
            window = await db.scalar(select(User.window_code).where(User.id == user_id))
        if window:
            await self.dispatch(window, now)

    async def set_capacity_for(
        self, p: Principal, user_id: int, capacity: int | None, *, now: datetime
    ) -> None:
        """A supervisor sets a chat capacity, within their county for a county admin."""
        p.require(Permission.TELEPHONY_SUPERVISE)
        async with self._sessionmaker() as db:
            user = await db.get(User, user_id)
        in_scope = user is not None and (
            p.can(Permission.TICKETS_READ_ALL)
            or (p.county_code is not None and user.county_code == p.county_code)
            or (
                user.window_code is not None
                and self._reference.data.windows[user.window_code].county_code == p.county_code
            )
        )
        if user is None or not in_scope:
            raise NotFound("No such user", error_id="user_not_found")
        await self.set_capacity(user_id, capacity, now=now)

    async def seat(self, user_id: int) -> Seat:
        async with self._sessionmaker() as db:
            row = await db.get(ChatAgent, user_id)
            active = await self._active_count(db, user_id)
        return Seat(
            user_id=user_id,
            capacity=(row.capacity if row and row.capacity else self.options.capacity),
            online=bool(row and row.connections > 0),
            active_chats=active,
            last_chat_at=row.last_chat_at if row else None,
        )

    @staticmethod
    async def _active_count(db: AsyncSession, user_id: int) -> int:
        count = await db.scalar(
            select(func.count())
            .select_from(Chat)
            .where(Chat.agent_id == user_id, Chat.state == _ASSIGNED)
        )
        return int(count or 0)

    async def _lock_seat_with_room(self, db: AsyncSession, user_id: int) -> None:
        """Lock the agent's seat and check a free slot under the lock."""
        await self._ensure_seat(db, user_id)
        seat = await db.scalar(
            select(ChatAgent)
            .where(ChatAgent.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert seat is not None
        capacity = seat.capacity or self.options.capacity
        if await self._active_count(db, user_id) >= capacity:
            raise Conflict(
                "No free chat slot", error_id="chat_capacity_full", details={"capacity": capacity}
            )

    async def _claim(self, window_code: str, now: datetime) -> tuple[Chat, int] | None:
        """One atomic claim: the longest-idle online agent of the window with a
        free slot takes the oldest queued chat of the window. None: no agent
        with room, or no chat waiting."""
        active = (
            select(func.count())
            .select_from(Chat)
            .where(Chat.agent_id == ChatAgent.user_id, Chat.state == _ASSIGNED)
            .scalar_subquery()
        )
        capacity = func.coalesce(ChatAgent.capacity, self.options.capacity)
        guard = (
            self.assign_guard.seat_condition(window_code, ChatAgent.user_id, now)
            if self.assign_guard is not None
            else None
        )
        for _attempt in range(5):
            events = _Events()
            async with self._serial(), self._sessionmaker() as db, db.begin():
                seat = await db.scalar(
                    select(ChatAgent)
                    .join(User, User.id == ChatAgent.user_id)
                    .where(
                        User.window_code == window_code,
                        User.active.is_(True),
                        ChatAgent.connections > 0,
                        active < capacity,
                        *([guard] if guard is not None else []),
                    )
                    .order_by(ChatAgent.last_chat_at.asc().nulls_first(), ChatAgent.user_id)
                    .limit(1)
                    .with_for_update(of=ChatAgent, skip_locked=True)
                    .execution_options(populate_existing=True)
                )
                if seat is None:
                    return None
                # The count above may predate a claim committed just before our
                # lock: count again, now that nobody else can add to it.
                if await self._active_count(db, seat.user_id) >= (
                    seat.capacity or self.options.capacity
                ):
                    continue
                chat = await db.scalar(
                    select(Chat)
                    .where(Chat.state == _QUEUED, Chat.window_code == window_code)
                    .order_by(Chat.created_at, Chat.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                    .execution_options(populate_existing=True)
                )
                if chat is None:
                    return None
                claimed = await db.execute(
                    update(Chat)
                    .where(Chat.id == chat.id, Chat.state == _QUEUED)
                    .values(state=_ASSIGNED, agent_id=seat.user_id, assigned_at=now)
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                await db.refresh(chat)
                seat.last_chat_at = now
                await self._assigned(db, chat, seat.user_id, None, "assigned", now, events)
            await self._publish(events)
            return chat, seat.user_id
        return None

    async def _assigned(
        self,
        db: AsyncSession,
        chat: Chat,
        agent_id: int,
        previous: int | None,
        cause: str,
        now: datetime,
        events: _Events,
    ) -> None:
        name = await self._display_name(db, agent_id) or ""
        text = TEXTS["transferred_agent" if cause == "transferred" else "assigned"]
        await self._append(db, chat, SenderKind.SYSTEM, text.format(agent=name), now, events)
        events.add(
            ev.CHAT_ASSIGNED,
            ev.ChatAssigned(
                **{**_base(chat), "agent_id": agent_id},
                previous_agent_id=previous,
                visitor_name=chat.visitor_name,
                company=chat.company,
                cause=cause,
            ),
        )

    async def dispatch(self, window_code: str, now: datetime) -> list[int]:
        """Hand out the window's queue while there are agents with room. Safe to
        run in any number of processes at once."""
        given: list[int] = []
        while True:
            claimed = await self._claim(window_code, now)
            if claimed is None:
                return given
            given.append(claimed[0].id)

    async def sweep(self, now: datetime) -> None:
        """Periodic: chats whose agent stayed disconnected past the grace period
        go back to the front of their queue; every queue with waiting chats is
        dispatched (claims other processes could not make)."""
        cutoff = now - self.options.requeue_grace
        events = _Events()
        touched: set[str] = set()
        async with self._serial(), self._sessionmaker() as db, db.begin():
            gone = select(ChatAgent.user_id).where(
                ChatAgent.connections == 0,
                ChatAgent.offline_since.is_not(None),
                ChatAgent.offline_since <= cutoff,
            )
            chats = list(
                await db.scalars(
                    select(Chat)
                    .where(Chat.state == _ASSIGNED, Chat.agent_id.in_(gone))
                    .order_by(Chat.id)
                    .with_for_update(skip_locked=True)
                )
            )
            for chat in chats:
                previous = chat.agent_id
                chat.state = _QUEUED
                chat.agent_id = None
                chat.requeued += 1
                await self._append(db, chat, SenderKind.SYSTEM, TEXTS["requeued"], now, events)
                await self._back_in_queue(db, chat, "requeued", events)
                logger.info("chat %s re-queued: agent user_id=%s disconnected", chat.id, previous)
            waiting = await db.scalars(
                select(Chat.window_code).where(Chat.state == _QUEUED).distinct()
            )
            touched.update(waiting)
        await self._publish(events)
        for window_code in sorted(touched):
            await self.dispatch(window_code, now)

    # --- agents: actions ------------------------------------------------------------------

    async def accept(self, p: Principal, chat_id: int, *, now: datetime) -> Chat:
        """The agent takes a queued chat of their scope (the claim, by hand)."""
        p.require(Permission.TELEPHONY_AGENT)
        async with self._sessionmaker() as db:
            await self._scoped(db, p, chat_id)
        if self.assign_guard is not None:
            await self.assign_guard.ensure_free(p.user_id, now=now)
        events = _Events()
        async with self._serial(), self._sessionmaker() as db, db.begin():
            await self._lock_seat_with_room(db, p.user_id)  # agent first, then chat
            chat = await self._locked_chat(db, chat_id)
            if chat.state != _QUEUED:
                raise Conflict(
                    "The chat is no longer waiting",
                    error_id="chat_not_queued",
                    details={"state": chat.state, "agent_id": chat.agent_id},
                )
            chat.state = _ASSIGNED
            chat.agent_id = p.user_id
            chat.assigned_at = now
            await db.execute(
                update(ChatAgent).where(ChatAgent.user_id == p.user_id).values(last_chat_at=now)
            )
            await self._assigned(db, chat, p.user_id, None, "accepted", now, events)
        await self._publish(events)
        return chat

    async def agent_reply(
        self,
        p: Principal,
        chat_id: int,
        *,
        client_id: str,
        body: str,
        now: datetime,
        file: NewFile | None = None,
    ) -> PostedMessage:
        """A line from the staff side (the chat's agent or an invited expert):
        text, or a ``file`` (its name is the line's body)."""
        await self.check_agent_scope(p, chat_id)
        return await self.post_message(
            chat_id,
            kind=self.staff_kind(p),
            client_id=client_id,
            body=body,
            now=now,
            user_id=p.user_id,
            file=file,
        )

    @staticmethod
    def staff_kind(p: Principal) -> SenderKind:
        """How a staff member's lines are marked: an invited expert, or the desk."""
        return SenderKind.EXPERT if p.role is Role.EXPERT else SenderKind.AGENT

    async def staff_attachment(self, p: Principal, chat_id: int, attachment_id: int) -> StoredFile:
        """A file of a chat for staff: the chat's agent, an expert in it, or a
        supervisor whose scope holds the chat — not every agent of the window
        (they may list the chat, the visitor's files are not theirs to open)."""
        async with self._sessionmaker() as db:
            chat = await self._scoped(db, p, chat_id)
        if not (
            chat.agent_id == p.user_id
            or p.role is Role.EXPERT  # _scoped let them through: they are in the chat
            or p.can(Permission.TELEPHONY_SUPERVISE)
        ):
            raise Forbidden(
                "Only the chat's agent, its experts or a supervisor can open its files",
                error_id="chat_not_yours",
                details={"agent_id": chat.agent_id},
            )
        return await self.attachment(chat_id, attachment_id)

    # --- experts in a chat ---------------------------------------------------------------

    async def invite_expert(
        self, p: Principal, chat_id: int, user_id: int, *, now: datetime
    ) -> Chat:
        """The chat's agent (or a supervisor) brings an expert (a user with the
        expert role) into a going chat: it becomes joint (协同)."""
        p.require(Permission.TELEPHONY_AGENT)
        async with self._sessionmaker() as db:
            self._may_move(p, await self._scoped(db, p, chat_id))
            expert = await db.get(User, user_id)
            if expert is None or not expert.active or Role(expert.role) is not Role.EXPERT:
                raise ValidationFailed(
                    "Not an expert who can be invited",
                    details=[field_error("user_id", "not_expert", "no active expert with this id")],
                )
            expert_name = expert.display_name
        events = _Events()
        async with self._serial(), self._sessionmaker() as db, db.begin():
            chat = await self._locked_chat(db, chat_id)
            self._may_move(p, chat)
            if chat.state != _ASSIGNED:
                raise Conflict(
                    "Experts join a chat an agent is serving",
                    error_id="chat_not_assigned",
                    details={"state": chat.state},
                )
            if user_id in await self._experts(db, chat):
                raise Conflict("The expert is already in the chat", error_id="chat_expert_already")
            db.add(
                ChatExpert(
                    chat_id=chat.id, user_id=user_id, invited_by_id=p.user_id, invited_at=now
                )
            )
            chat.joint = True
            await db.flush()
            # The expert's console learns of the chat before its next line.
            events.add(ev.CHAT_EXPERT_INVITED, _expert_event(chat, user_id, p.user_id))
            text = TEXTS["expert_joined"].format(expert=expert_name)
            await self._append(db, chat, SenderKind.SYSTEM, text, now, events)
        await self._publish(events)
        logger.info("chat %s: expert user_id=%s invited by user_id=%s", chat_id, user_id, p.user_id)
        return chat

    async def remove_expert(
        self, p: Principal, chat_id: int, user_id: int, *, now: datetime
    ) -> Chat:
        """The expert leaves, or the chat's agent (a supervisor) lets them go."""
        async with self._sessionmaker() as db:
            chat = await self._scoped(db, p, chat_id)
            if p.user_id != user_id:
                self._may_move(p, chat)
            expert_name = await self._display_name(db, user_id) or ""
        events = _Events()
        async with self._serial(), self._sessionmaker() as db, db.begin():
            chat = await self._locked_chat(db, chat_id)
            row = await db.scalar(
                select(ChatExpert)
                .where(
                    ChatExpert.chat_id == chat_id,
                    ChatExpert.user_id == user_id,
                    ChatExpert.left_at.is_(None),
                )
                .order_by(ChatExpert.id)
                .limit(1)
            )
            if row is None:
                raise NotFound("The expert is not in the chat", error_id="chat_expert_not_found")
            row.left_at = now
            events.add(ev.CHAT_EXPERT_LEFT, _expert_event(chat, user_id, p.user_id))
            await db.flush()
            if chat.state in (_QUEUED, _ASSIGNED):
                text = TEXTS["expert_left"].format(expert=expert_name)
                await self._append(db, chat, SenderKind.SYSTEM, text, now, events)
        await self._publish(events)
        return chat

    async def invited_chats(self, p: Principal) -> list[ChatView]:
        """The going chats ``p`` is an expert in, newest first."""
        async with self._sessionmaker() as db:
            chats = list(
                await db.scalars(
                    select(Chat)
                    .where(_invited(p.user_id), Chat.state == _ASSIGNED)
                    .order_by(Chat.id.desc())
                    .limit(100)
                )
            )
            return [ChatView(c, None, await self._display_name(db, c.agent_id)) for c in chats]

    async def window_agents(self, p: Principal, window_code: str) -> list[AgentSeat]:
        """The agents of a window as transfer targets: online for chat, and
        their chats in hand against their capacity."""
        p.require(Permission.TELEPHONY_AGENT)
        if window_code not in self._reference.data.windows:
            raise ValidationFailed(
                "Unknown window",
                details=[field_error("window_code", "unknown", "no such window")],
            )
        active = (
            select(func.count())
            .select_from(Chat)
            .where(Chat.agent_id == User.id, Chat.state == _ASSIGNED)
            .scalar_subquery()
        )
        async with self._sessionmaker() as db:
            rows = (
                await db.execute(
                    select(
                        User.id,
                        User.display_name,
                        ChatAgent.capacity,
                        ChatAgent.connections,
                        active,
                    )
                    .outerjoin(ChatAgent, ChatAgent.user_id == User.id)
                    .where(
                        User.window_code == window_code,
                        User.active.is_(True),
                        User.role.in_([r.value for r in ASSIGNABLE_ROLES]),
                    )
                    .order_by(User.display_name, User.id)
                )
            ).all()
        return [
            AgentSeat(
                user_id=user_id,
                display_name=name,
                window_code=window_code,
                online=bool(connections),
                capacity=capacity or self.options.capacity,
                active_chats=int(count or 0),
            )
            for user_id, name, capacity, connections, count in rows
        ]

    def _may_move(self, p: Principal, chat: Chat) -> None:
        if chat.agent_id == p.user_id:
            return
        if not p.can(Permission.TELEPHONY_SUPERVISE):
            raise Forbidden(
                "Only the chat's agent or a supervisor can do this",
                error_id="chat_not_yours",
                details={"agent_id": chat.agent_id},
            )

    async def close(self, p: Principal, chat_id: int, *, now: datetime) -> Chat:
        events = _Events()
        async with self._sessionmaker() as db:
            self._may_move(p, await self._scoped(db, p, chat_id))
        async with self._serial(), self._sessionmaker() as db, db.begin():
            chat = await self._locked_chat(db, chat_id)
            self._may_move(p, chat)
            if chat.state not in (_QUEUED, _ASSIGNED):
                raise Conflict(
                    "The chat has ended", error_id="chat_ended", details={"state": chat.state}
                )
            await self._end(db, chat, EndReason.AGENT_CLOSED, now, events)
        await self._publish(events)
        await self._freed(chat, now)
        return chat

    async def transfer(
        self, p: Principal, chat_id: int, data: TransferIn, *, now: datetime
    ) -> Chat:
        async with self._sessionmaker() as db:
            self._may_move(p, await self._scoped(db, p, chat_id))
            target: User | None = None
            if data.to_user_id is not None:
                target = await db.get(User, data.to_user_id)
                if (
                    target is None
                    or not target.active
                    or Role(target.role) not in ASSIGNABLE_ROLES
                    or not target.window_code
                ):
                    raise ValidationFailed(
                        "Cannot transfer to that user",
                        details=[
                            field_error(
                                "to_user_id", "not_assignable", "no such agent with a window"
                            )
                        ],
                    )
        if data.window_code is not None:
            window = self._reference.data.windows.get(data.window_code)
            if window is None or not window.active:
                raise ValidationFailed(
                    "Unknown window",
                    details=[field_error("window_code", "unknown", "no such window")],
                )
        if target is not None and self.assign_guard is not None:
            # An agent who owes a wrap-up takes no new contact, handed over or not.
            await self.assign_guard.ensure_free(target.id, now=now)
        events = _Events()
        async with self._serial(), self._sessionmaker() as db, db.begin():
            if target is not None:
                await self._lock_seat_with_room(db, target.id)  # agent first, then chat
            chat = await self._locked_chat(db, chat_id)
            self._may_move(p, chat)
            if chat.state not in (_QUEUED, _ASSIGNED):
                raise Conflict(
                    "The chat has ended", error_id="chat_ended", details={"state": chat.state}
                )
            previous = chat.agent_id
            if target is not None:
                if target.id == previous:
                    raise Conflict("The chat is already theirs", error_id="chat_same_agent")
                assert target.window_code is not None
                chat.state = _ASSIGNED
                chat.agent_id = target.id
                chat.window_code = target.window_code
                chat.assigned_at = chat.assigned_at or now
                await db.execute(
                    update(ChatAgent).where(ChatAgent.user_id == target.id).values(last_chat_at=now)
                )
                await self._assigned(db, chat, target.id, previous, "transferred", now, events)
            else:
                assert data.window_code is not None
                chat.state = _QUEUED
                chat.agent_id = None
                chat.window_code = data.window_code
                await self._append(
                    db,
                    chat,
                    SenderKind.SYSTEM,
                    TEXTS["transferred_window"].format(window=self._window_name(data.window_code)),
                    now,
                    events,
                )
                await self._back_in_queue(db, chat, "transferred", events)
        await self._publish(events)
        logger.info(
            "chat %s transferred by user_id=%s to %s",
            chat.id,
            p.user_id,
            f"user_id={target.id}" if target is not None else f"window={data.window_code}",
        )
        if previous is not None and previous != chat.agent_id:
            await self._touch_agent(previous, now)
        if data.window_code is not None:
            await self.dispatch(data.window_code, now)
            chat = (await self.view(chat.id)).chat
        return chat
