"""The wallboard's socket event and the bus events that make it stale."""

from __future__ import annotations

from smeline.telephony import events as call_events
from smeline.ticketing import events as ticket_events
from smeline.webchat import events as chat_events

#: Pushed to ``/supervisor`` rooms: the same JSON as ``GET /api/wallboard``.
WALLBOARD_UPDATE = "wallboard.update"

#: Bus events after which the wallboard is recomputed and pushed (debounced).
#: Chat messages and comments are left out: they change no figure.
TRIGGERS: frozenset[str] = frozenset(
    {
        call_events.CALL_QUEUED,
        call_events.CALL_ANSWERED,
        call_events.CALL_OVERFLOWED,
        call_events.CALL_QUEUE_TIMEOUT,
        call_events.CALL_ABANDONED,
        call_events.CALL_AGENT_COMPLETED,
        call_events.CALL_ENDED,
        call_events.AGENT_STATE,
        chat_events.CHAT_QUEUED,
        chat_events.CHAT_ASSIGNED,
        chat_events.CHAT_ENDED,
        ticket_events.TICKET_CREATED,
        ticket_events.TICKET_UPDATED,
        ticket_events.TICKET_ASSIGNED,
        ticket_events.TICKET_TRANSITIONED,
        ticket_events.TICKET_TRANSFERRED,
        ticket_events.TICKET_SLA_WARNING,
        ticket_events.TICKET_SLA_BREACHED,
    }
)
