"""From the event bus to socket.io rooms: who hears which event.

The table :data:`ROUTES` says, for every bus event the browsers care about,
which rooms of which namespace receive it. A screen pop (``call.answered``)
goes to the room of the agent whose phone rang and never to a window's room,
so the other agents of the window do not see who is calling.

One process, or several sharing Redis: every process's bus hands it every
event (``RedisBus`` dispatches what it reads back, the publisher included), so
each process pushes an event only to the sockets connected to *itself*
(``ignore_queue``). Pushing through the socket.io Redis manager instead would
make every process relay the event to every other one: each browser would
get it once per process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel

from smeline.bus import Envelope, EventBus
from smeline.realtime.events import PushedEvent
from smeline.realtime.rooms import (
    AGENT_NAMESPACE,
    SUPERVISOR_NAMESPACE,
    SUPERVISORS,
    VISITOR_NAMESPACE,
    agent_room,
    chat_room,
    county_supervisors_room,
    window_room,
)
from smeline.telephony import events as call_events
from smeline.telephony.events import AgentState, CallOverflowed, CallState
from smeline.ticketing import events as ticket_events
from smeline.ticketing.events import TicketEvent, TicketTransferred
from smeline.webchat import events as chat_events

logger = logging.getLogger(__name__)

# The PJSIP endpoint smeline renders for each agent (telephony.phones.interface_of).
_AGENT_INTERFACE = re.compile(r"^PJSIP/agent-([1-9][0-9]{0,17})$")


class Target(NamedTuple):
    namespace: str
    room: str


@dataclass(frozen=True)
class Directory:
    """What the routes look up: a window's county, a queue's window."""

    county_of_window: Callable[[str], str | None]
    window_of_queue: Callable[[str], str | None]


def user_of_interface(interface: str | None) -> int | None:
    """The staff member behind a queue member interface (``PJSIP/agent-12`` → 12)."""
    if interface is None:
        return None
    match = _AGENT_INTERFACE.fullmatch(interface)
    return int(match.group(1)) if match else None


def _supervisors_of_county(county: str | None) -> list[Target]:
    targets = [Target(SUPERVISOR_NAMESPACE, SUPERVISORS)]
    if county is not None:
        targets.append(Target(SUPERVISOR_NAMESPACE, county_supervisors_room(county)))
    return targets


# -- rules: (payload, directory) → rooms ---------------------------------------------


def call_agent(call: CallState, d: Directory) -> list[Target]:
    user_id = user_of_interface(call.agent_interface)
    return [] if user_id is None else [Target(AGENT_NAMESPACE, agent_room(user_id))]


def call_window(call: CallState, d: Directory) -> list[Target]:
    return [] if call.window is None else [Target(AGENT_NAMESPACE, window_room(call.window))]


def overflow_windows(call: CallOverflowed, d: Directory) -> list[Target]:
    windows = {d.window_of_queue(call.from_queue), d.window_of_queue(call.to_queue), call.window}
    return [Target(AGENT_NAMESPACE, window_room(w)) for w in sorted(w for w in windows if w)]


def call_supervisors(call: CallState, d: Directory) -> list[Target]:
    return _supervisors_of_county(d.county_of_window(call.window) if call.window else None)


def member_agent(state: AgentState, d: Directory) -> list[Target]:
    user_id = user_of_interface(state.interface)
    return [] if user_id is None else [Target(AGENT_NAMESPACE, agent_room(user_id))]


def member_supervisors(state: AgentState, d: Directory) -> list[Target]:
    window = d.window_of_queue(state.queue) if state.queue else None
    return _supervisors_of_county(d.county_of_window(window) if window else None)


def ticket_assignee(ticket: TicketEvent, d: Directory) -> list[Target]:
    if ticket.assignee_id is None:
        return []
    return [Target(AGENT_NAMESPACE, agent_room(ticket.assignee_id))]


def transfer_target(ticket: TicketTransferred, d: Directory) -> list[Target]:
    return [Target(AGENT_NAMESPACE, agent_room(ticket.to_user_id))]


def ticket_supervisors(ticket: TicketEvent, d: Directory) -> list[Target]:
    return _supervisors_of_county(ticket.county_code)


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Route(Generic[M]):
    model: type[M]
    rules: tuple[Callable[[M, Directory], Iterable[Target]], ...]

    def targets(self, payload: BaseModel, directory: Directory) -> dict[str, list[str]]:
        """Rooms by namespace, each room once."""
        if not isinstance(payload, self.model):
            raise TypeError(f"expected {self.model.__qualname__}, got {type(payload).__qualname__}")
        by_namespace: dict[str, list[str]] = {}
        for rule in self.rules:
            for target in rule(payload, directory):
                rooms = by_namespace.setdefault(target.namespace, [])
                if target.room not in rooms:
                    rooms.append(target.room)
        return by_namespace


_TICKET = (ticket_assignee, ticket_supervisors)


# -- web chat: the socket contract's own payloads (docs/realtime.md) --------------------


class Push(NamedTuple):
    """One socket.io emit: ``event`` with ``data`` to ``rooms`` of ``namespace``."""

    namespace: str
    rooms: list[str]
    event: str
    data: dict[str, Any]


class ChatFacts(NamedTuple):
    routing_reason: str
    created_at: datetime
    agent_name: str | None


class ChatQueue(NamedTuple):
    """A window's chat queue: the waiting chats, first in line first."""

    chat_ids: list[int]
    longest_wait_seconds: int


class ChatLookups(Protocol):
    """What the chat routes read (implemented over ``ChatService``,
    ``smeline/webchat/socket.py``): payloads of the bus carry ids, the browsers
    want names, queue counts and positions."""

    async def user_name(self, user_id: int) -> str | None: ...

    async def facts(self, chat_id: int) -> ChatFacts | None: ...

    async def queue(self, window_code: str) -> ChatQueue: ...


class NoChatLookups:
    """Until the web-chat service is wired: names unknown, queues not pushed."""

    async def user_name(self, user_id: int) -> str | None:
        return None

    async def facts(self, chat_id: int) -> ChatFacts | None:
        return None

    async def queue(self, window_code: str) -> ChatQueue:
        return ChatQueue([], 0)


CHAT_STATE = "chat.state"
CHAT_QUEUE = "chat.queue"
CHAT_TYPING = "chat.typing"


def message_out(event: chat_events.ChatMessageEvent, sender_name: str | None) -> dict[str, Any]:
    """The contract's MessageOut (``id`` is ``"<chat id>:<seq>"``: unique and
    the same in the acknowledgement, the push and ``chat.fetch``)."""
    return {
        "id": f"{event.chat_id}:{event.seq}",
        "seq": event.seq,
        "chat_id": event.chat_id,
        "sender_kind": event.sender_kind,
        "sender_name": sender_name,
        "body": event.body,
        "client_id": event.client_id,
        "created_at": event.created_at.isoformat(),
        "attachment": event.attachment.model_dump() if event.attachment is not None else None,
    }


def state_out(
    chat_id: int, state: str, queue_position: int | None, agent_name: str | None
) -> dict[str, Any]:
    return {
        "chat_id": chat_id,
        "state": state,
        "queue_position": queue_position,
        "agent_name": agent_name,
    }


def _agent_target(agent_id: int | None, expert_ids: Sequence[int] = ()) -> list[str]:
    # Invited experts hear the chat in their own /agent room, as its agent does.
    rooms = [] if agent_id is None else [agent_room(agent_id)]
    return rooms + [agent_room(e) for e in expert_ids if e != agent_id]


def _supervisor_rooms(county: str | None) -> list[str]:
    return [t.room for t in _supervisors_of_county(county)]


async def queue_pushes(window_code: str, d: Directory, lookups: ChatLookups) -> list[Push]:
    """A window's queue changed: its counts to the window's room and the
    wallboards, and each waiting visitor their new place in line."""
    queue = await lookups.queue(window_code)
    counts = {
        "window_code": window_code,
        "waiting": len(queue.chat_ids),
        "longest_wait_seconds": queue.longest_wait_seconds,
    }
    pushes = [
        Push(AGENT_NAMESPACE, [window_room(window_code)], CHAT_QUEUE, counts),
        Push(
            SUPERVISOR_NAMESPACE,
            _supervisor_rooms(d.county_of_window(window_code)),
            CHAT_QUEUE,
            counts,
        ),
    ]
    for position, chat_id in enumerate(queue.chat_ids, start=1):
        pushes.append(
            Push(
                VISITOR_NAMESPACE,
                [chat_room(chat_id)],
                CHAT_STATE,
                state_out(chat_id, "queued", position, None),
            )
        )
    return pushes


async def chat_message(
    e: chat_events.ChatMessageEvent, d: Directory, lookups: ChatLookups
) -> list[Push]:
    # The chat's visitor and its agent; never the window (other agents do not
    # read the conversation) nor the wallboard.
    name = await lookups.user_name(e.sender_user_id) if e.sender_user_id is not None else None
    data = message_out(e, name)
    return [
        Push(VISITOR_NAMESPACE, [chat_room(e.chat_id)], chat_events.CHAT_MESSAGE, data),
        Push(
            AGENT_NAMESPACE,
            _agent_target(e.agent_id, e.expert_ids),
            chat_events.CHAT_MESSAGE,
            data,
        ),
    ]


def _chat_pop(
    e: chat_events.ChatAssigned | chat_events.ChatExpertEvent, facts: ChatFacts
) -> dict[str, Any]:
    """Who the visitor is, for the console that gets the chat."""
    return {
        "chat_id": e.chat_id,
        "window_code": e.window_code,
        "visitor_name": e.visitor_name,
        "company": e.company,
        "county_code": e.county_code,
        "category_code": e.category_code,
        "routing_reason": facts.routing_reason,
        "created_at": facts.created_at.isoformat(),
    }


async def chat_assigned(
    e: chat_events.ChatAssigned, d: Directory, lookups: ChatLookups
) -> list[Push]:
    facts = await lookups.facts(e.chat_id)
    if facts is None:
        return []
    # The screen pop of a chat: the agent who got it, nobody else.
    pop = _chat_pop(e, facts)
    pushes = [
        Push(AGENT_NAMESPACE, [agent_room(e.agent_id)], chat_events.CHAT_ASSIGNED, pop),
        Push(
            VISITOR_NAMESPACE,
            [chat_room(e.chat_id)],
            CHAT_STATE,
            state_out(e.chat_id, e.state, None, facts.agent_name),
        ),
    ]
    if e.previous_agent_id is not None and e.previous_agent_id != e.agent_id:
        # Transferred away: the previous agent's console drops the chat.
        pushes.append(
            Push(
                AGENT_NAMESPACE,
                [agent_room(e.previous_agent_id)],
                chat_events.CHAT_ENDED,
                {"chat_id": e.chat_id, "reason": "transferred"},
            )
        )
    return pushes + await queue_pushes(e.window_code, d, lookups)


async def chat_queued(e: chat_events.ChatQueued, d: Directory, lookups: ChatLookups) -> list[Push]:
    # queue_pushes gives this visitor their place along with the others.
    return await queue_pushes(e.window_code, d, lookups)


async def chat_ended(e: chat_events.ChatEnded, d: Directory, lookups: ChatLookups) -> list[Push]:
    ended = {"chat_id": e.chat_id, "reason": e.end_reason}
    pushes = [
        Push(
            VISITOR_NAMESPACE,
            [chat_room(e.chat_id)],
            CHAT_STATE,
            state_out(e.chat_id, e.state, None, None),
        ),
        Push(VISITOR_NAMESPACE, [chat_room(e.chat_id)], chat_events.CHAT_ENDED, ended),
        Push(
            AGENT_NAMESPACE, _agent_target(e.agent_id, e.expert_ids), chat_events.CHAT_ENDED, ended
        ),
    ]
    if e.agent_id is None:  # it left a queue
        pushes += await queue_pushes(e.window_code, d, lookups)
    return pushes


CHAT_INVITED = "chat.invited"


async def chat_expert_invited(
    e: chat_events.ChatExpertEvent, d: Directory, lookups: ChatLookups
) -> list[Push]:
    # Like the screen pop of chat.assigned, to the invited expert only.
    facts = await lookups.facts(e.chat_id)
    if facts is None:
        return []
    invited = {**_chat_pop(e, facts), "agent_name": facts.agent_name}
    return [Push(AGENT_NAMESPACE, [agent_room(e.expert_id)], CHAT_INVITED, invited)]


async def chat_expert_left(
    e: chat_events.ChatExpertEvent, d: Directory, lookups: ChatLookups
) -> list[Push]:
    # The expert's console drops the chat (the others read the system line).
    left = {"chat_id": e.chat_id, "reason": "expert_left"}
    return [Push(AGENT_NAMESPACE, [agent_room(e.expert_id)], chat_events.CHAT_ENDED, left)]


E = TypeVar("E", bound=BaseModel)


@dataclass(frozen=True)
class Relay(Generic[E]):
    """A bus event the browsers hear in the socket contract's own shape
    (web chat), rather than wrapped as a :class:`PushedEvent`."""

    model: type[E]
    render: Callable[[E, Directory, ChatLookups], Awaitable[Sequence[Push]]]

    async def pushes(
        self, payload: BaseModel, directory: Directory, lookups: ChatLookups
    ) -> Sequence[Push]:
        if not isinstance(payload, self.model):
            raise TypeError(f"expected {self.model.__qualname__}, got {type(payload).__qualname__}")
        return await self.render(payload, directory, lookups)


ROUTES: Mapping[str, Route[Any] | Relay[Any]] = {
    # Queue picture: the window's agents and the supervisors.
    call_events.CALL_QUEUED: Route(call_events.CallQueued, (call_window, call_supervisors)),
    call_events.CALL_ABANDONED: Route(CallState, (call_window, call_supervisors)),
    call_events.CALL_QUEUE_TIMEOUT: Route(
        call_events.CallQueueTimeout, (call_window, call_supervisors)
    ),
    call_events.CALL_OVERFLOWED: Route(CallOverflowed, (overflow_windows, call_supervisors)),
    # The screen pop: the answering agent only (and the wallboard).
    call_events.CALL_ANSWERED: Route(call_events.CallAnswered, (call_agent, call_supervisors)),
    call_events.CALL_AGENT_COMPLETED: Route(
        call_events.CallAgentCompleted, (call_agent, call_supervisors)
    ),
    call_events.CALL_ENDED: Route(call_events.CallEnded, (call_agent, call_supervisors)),
    call_events.CONFERENCE_MEMBER_JOINED: Route(
        call_events.ConferenceMember, (call_agent, call_supervisors)
    ),
    call_events.CONFERENCE_MEMBER_LEFT: Route(
        call_events.ConferenceMember, (call_agent, call_supervisors)
    ),
    call_events.AGENT_STATE: Route(AgentState, (member_agent, member_supervisors)),
    # Work orders: their assignee, and the SLA board of the supervisors.
    ticket_events.TICKET_CREATED: Route(TicketEvent, _TICKET),
    ticket_events.TICKET_UPDATED: Route(TicketEvent, _TICKET),
    ticket_events.TICKET_ASSIGNED: Route(TicketEvent, _TICKET),
    ticket_events.TICKET_TRANSITIONED: Route(ticket_events.TicketTransitioned, _TICKET),
    ticket_events.TICKET_TRANSFERRED: Route(TicketTransferred, (*_TICKET, transfer_target)),
    ticket_events.TICKET_COMMENTED: Route(ticket_events.TicketCommented, _TICKET),
    ticket_events.TICKET_SLA_WARNING: Route(ticket_events.TicketSlaEvent, _TICKET),
    ticket_events.TICKET_SLA_BREACHED: Route(ticket_events.TicketSlaEvent, _TICKET),
    # Web chat: the conversation to its visitor and its agent only; the
    # screen pop to the agent who got the chat; queue counts to the window
    # and the wallboards.
    chat_events.CHAT_MESSAGE: Relay(chat_events.ChatMessageEvent, chat_message),
    chat_events.CHAT_ASSIGNED: Relay(chat_events.ChatAssigned, chat_assigned),
    chat_events.CHAT_QUEUED: Relay(chat_events.ChatQueued, chat_queued),
    chat_events.CHAT_ENDED: Relay(chat_events.ChatEnded, chat_ended),
    chat_events.CHAT_EXPERT_INVITED: Relay(chat_events.ChatExpertEvent, chat_expert_invited),
    chat_events.CHAT_EXPERT_LEFT: Relay(chat_events.ChatExpertEvent, chat_expert_left),
}

LocalEmit = Callable[[str, dict[str, Any], str, list[str]], Awaitable[None]]

# What orders the pushes: a browser must see one chat's, call's, work order's
# or phone's events in the order they happened; different ones may overtake
# each other (with Redis the bus runs their pushes side by side).
_LANE_FIELDS = ("chat_id", "linkedid", "ticket_id", "interface")


def push_lane(envelope: Envelope) -> tuple[str, object]:
    for field_name in _LANE_FIELDS:
        value = envelope.payload.get(field_name)
        if value is not None:
            return field_name, value
    return "event", envelope.name


class Bridge:
    """Subscribes to the bus and pushes each routed event to its rooms on
    this process's sockets."""

    def __init__(
        self,
        *,
        bus: EventBus,
        directory: Directory,
        emit_local: LocalEmit,
        routes: Mapping[str, Route[Any] | Relay[Any]] = ROUTES,
        chat_lookups: ChatLookups | None = None,
    ) -> None:
        self._bus = bus
        self._directory = directory
        self._emit_local = emit_local
        self._chat_lookups: ChatLookups = chat_lookups or NoChatLookups()
        # Only events this deployment registers (a part may be absent).
        known = set(bus.registry.names())
        self._routes = {name: route for name, route in routes.items() if name in known}
        for name, route in self._routes.items():
            registered = bus.registry.model_for(name)
            if not issubclass(registered, route.model):
                raise TypeError(f"route for {name!r} expects {route.model.__qualname__}")
        self._unsubscribe: Callable[[], None] | None = None

    def set_chat_lookups(self, lookups: ChatLookups) -> None:
        self._chat_lookups = lookups

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._bus.subscribe(
                self.on_event, list(self._routes), lane=push_lane
            )

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def on_event(self, envelope: Envelope) -> None:
        route = self._routes.get(envelope.name)
        if route is None:
            return
        if isinstance(route, Relay):
            payload = envelope.parsed(self._bus.registry)
            for push in await route.pushes(payload, self._directory, self._chat_lookups):
                if push.rooms:  # an empty list would be socket.io's "everyone"
                    await self._emit_local(push.event, push.data, push.namespace, push.rooms)
            return
        targets = route.targets(envelope.parsed(self._bus.registry), self._directory)
        if not targets:
            return
        pushed = PushedEvent(
            id=envelope.id, name=envelope.name, at=envelope.at, payload=envelope.payload
        ).model_dump(mode="json")
        for namespace, rooms in targets.items():
            await self._emit_local(envelope.name, pushed, namespace, rooms)
