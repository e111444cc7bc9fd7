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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel

from smeline.bus import Envelope, EventBus
from smeline.realtime.events import PushedEvent
from smeline.realtime.rooms import (
    AGENT_NAMESPACE,
    SUPERVISOR_NAMESPACE,
    SUPERVISORS,
    agent_room,
    county_supervisors_room,
    window_room,
)
from smeline.telephony import events as call_events
from smeline.telephony.events import AgentState, CallOverflowed, CallState
from smeline.ticketing import events as ticket_events
from smeline.ticketing.events import TicketEvent, TicketTransferred

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

ROUTES: Mapping[str, Route[Any]] = {
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
}

LocalEmit = Callable[[str, dict[str, Any], str, list[str]], Awaitable[None]]


class Bridge:
    """Subscribes to the bus and pushes each routed event to its rooms on
    this process's sockets."""

    def __init__(
        self,
        *,
        bus: EventBus,
        directory: Directory,
        emit_local: LocalEmit,
        routes: Mapping[str, Route[Any]] = ROUTES,
    ) -> None:
        self._bus = bus
        self._directory = directory
        self._emit_local = emit_local
        # Only events this deployment registers (a part may be absent).
        known = set(bus.registry.names())
        self._routes = {name: route for name, route in routes.items() if name in known}
        for name, route in self._routes.items():
            registered = bus.registry.model_for(name)
            if not issubclass(registered, route.model):
                raise TypeError(f"route for {name!r} expects {route.model.__qualname__}")
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._bus.subscribe(self.on_event, list(self._routes))

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def on_event(self, envelope: Envelope) -> None:
        route = self._routes.get(envelope.name)
        if route is None:
            return
        targets = route.targets(envelope.parsed(self._bus.registry), self._directory)
        if not targets:
            return
        pushed = PushedEvent(
            id=envelope.id, name=envelope.name, at=envelope.at, payload=envelope.payload
        ).model_dump(mode="json")
        for namespace, rooms in targets.items():
            await self._emit_local(envelope.name, pushed, namespace, rooms)
