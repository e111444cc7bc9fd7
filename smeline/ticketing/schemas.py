"""Request and response models of the work-order endpoints."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from smeline.api import Out, QuerySchema, RowId, Schema
from smeline.ticketing.credit_code import normalise_credit_code
from smeline.ticketing.models import (
    CommentKind,
    Priority,
    ServiceMode,
    SlaState,
    Source,
    TicketStatus,
)
from smeline.ticketing.state_machine import Action

Code = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]
CountyCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
Phone = Annotated[
    str, StringConstraints(min_length=3, max_length=32, pattern=r"^[+0-9０-９\-() ]+$")
]
Email = Annotated[
    str, StringConstraints(max_length=254, pattern=r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
Note = Annotated[str, StringConstraints(max_length=5_000)]


class Link(Schema):
    kind: Literal["call", "chat", "voicemail", "email", "portal", "counter"]
    ref: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TicketCreateIn(Schema):
    subject: Subject
    description: LongText
    source: Source
    category_code: Code
    county_code: CountyCode | None = Field(
        default=None, description="Defaults to the county of the window"
    )
    window_code: Code | None = Field(
        default=None, description="Defaults to the creating agent's window, else the county's"
    )
    channel_code: Code | None = Field(default=None, description="服务方式; derived from source")
    service_mode: ServiceMode | None = None
    priority: Priority = Priority.NORMAL
    enterprise_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    credit_code: Annotated[str, StringConstraints(max_length=18)] | None = None
    contact_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    links: Annotated[list[Link], Field(max_length=20)] = []
    assignee_id: RowId | None = None

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalise_credit_code(value)


class TicketUpdateIn(Schema):
    subject: Subject | None = None
    description: LongText | None = None
    category_code: Code | None = None
    channel_code: Code | None = None
    service_mode: ServiceMode | None = None
    priority: Priority | None = None
    enterprise_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    credit_code: Annotated[str, StringConstraints(max_length=18)] | None = None
    contact_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    links: Annotated[list[Link], Field(max_length=20)] | None = None
    note: Note | None = None

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalise_credit_code(value)


class ActionIn(Schema):
    action: Action
    note: Note | None = None
    assignee_id: RowId | None = Field(default=None, description="assign")
    to_user_id: RowId | None = Field(default=None, description="transfer")
    resolution: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] | None = Field(
        default=None, description="resolve"
    )


class CommentIn(Schema):
    kind: CommentKind
    body: LongText


class ShareIn(Schema):
    user_id: RowId | None = None
    county_code: CountyCode | None = None


class SlaClockOut(Out):
    target_minutes: int
    due_at: datetime | None
    warning_at: datetime | None
    met_at: datetime | None = None
    paused: bool = False
    breached: bool
    elapsed_business_minutes: float | None = None


class SlaOut(Out):
    state: SlaState
    first_response: SlaClockOut
    resolution: SlaClockOut
    calendar_warning: str | None = Field(
        default=None, description="Set when a due date falls in a year without holiday data"
    )


class HandoffOut(Out):
    id: int
    from_user_id: int | None
    to_user_id: int
    note: str | None
    created_at: datetime
    target_minutes: int
    due_at: datetime
    completed_at: datetime | None
    outcome: str | None
    sla_state: SlaState


class TicketOut(Out):
    id: int
    number: str
    short_ref: str
    status: TicketStatus
    priority: Priority
    source: Source
    channel_code: str
    category_code: str
    service_mode: ServiceMode
    county_code: str
    window_code: str
    subject: str
    description: str
    enterprise_name: str | None
    credit_code: str | None
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    links: list[Link]
    created_by_id: int | None
    assignee_id: int | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    archived_at: datetime | None
    resolution: str | None
    sla: SlaOut
    handoff: HandoffOut | None = Field(default=None, description="The open handoff, if any")


class TicketSummaryOut(Out):
    id: int
    number: str
    short_ref: str
    status: TicketStatus
    priority: Priority
    category_code: str
    county_code: str
    window_code: str
    subject: str
    enterprise_name: str | None
    contact_phone: str | None
    assignee_id: int | None
    created_at: datetime
    sla_state: SlaState
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None


class TicketPageOut(Out):
    items: list[TicketSummaryOut]
    next_cursor: str | None = Field(description="Pass as cursor= for the next page")


class TicketListQuery(QuerySchema):
    status: list[TicketStatus] | TicketStatus | None = None
    county_code: CountyCode | None = None
    window_code: Code | None = None
    category_code: Code | None = None
    assignee_id: RowId | None = None
    sla_state: SlaState | None = None
    priority: Priority | None = None
    due_before: datetime | None = Field(default=None, description="Resolution due before")
    # Bounded so that a Beijing day, made a UTC range, stays a representable datetime.
    created_from: date | None = Field(default=None, ge=date(1900, 1, 1), le=date(9998, 12, 31))
    created_to: date | None = Field(default=None, ge=date(1900, 1, 1), le=date(9998, 12, 31))
    q: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description="Number, short reference or phone"
    )
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str, StringConstraints(max_length=100)] | None = None

    @field_validator("due_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("must include a time zone offset")
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range once in UTC") from None
        return value


class HistoryOut(Out):
    id: int
    at: datetime
    actor_id: int | None
    action: str
    field: str | None
    from_value: str | None
    to_value: str | None
    note: str | None


class HistoryListOut(Out):
    items: list[HistoryOut]


class CommentOut(Out):
    id: int
    author_id: int | None
    kind: CommentKind
    body: str
    created_at: datetime


class CommentListOut(Out):
    items: list[CommentOut]


class ShareOut(Out):
    id: int
    user_id: int | None
    county_code: str | None
    created_at: datetime
