"""Event names and payloads published by ticketing (the only place that publishes them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from smeline.bus import EventRegistry


class TicketEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: int
    number: str
    status: str
    priority: str
    category_code: str
    county_code: str
    window_code: str
    assignee_id: int | None
    sla_state: str
    actor_id: int | None
    resolution_due_at: datetime | None


class TicketTransitioned(TicketEvent):
    action: str
    from_status: str


class TicketTransferred(TicketEvent):
    handoff_id: int
    to_user_id: int
    handoff_due_at: datetime


class TicketCommented(TicketEvent):
    comment_id: int
    kind: str


class TicketSlaEvent(TicketEvent):
    clock: str  # first_response | resolution | handoff
    due_at: datetime
    handoff_id: int | None
    escalated_to: list[int]


TICKET_CREATED = "ticket.created"
TICKET_UPDATED = "ticket.updated"
TICKET_ASSIGNED = "ticket.assigned"
TICKET_TRANSITIONED = "ticket.transitioned"
TICKET_TRANSFERRED = "ticket.transferred"
TICKET_COMMENTED = "ticket.commented"
TICKET_SLA_WARNING = "ticket.sla_warning"
TICKET_SLA_BREACHED = "ticket.sla_breached"

EVENTS: dict[str, type[BaseModel]] = {
    TICKET_CREATED: TicketEvent,
    TICKET_UPDATED: TicketEvent,
    TICKET_ASSIGNED: TicketEvent,
    TICKET_TRANSITIONED: TicketTransitioned,
    TICKET_TRANSFERRED: TicketTransferred,
    TICKET_COMMENTED: TicketCommented,
    TICKET_SLA_WARNING: TicketSlaEvent,
    TICKET_SLA_BREACHED: TicketSlaEvent,
}


def register(registry: EventRegistry) -> None:
    for name, model in EVENTS.items():
        registry.register(name, model)
