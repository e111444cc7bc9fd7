"""Request and response models of the contacts endpoints (wrap-ups, work
orders opened from a contact)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from smeline.api import Out, RowId, Schema
from smeline.contacts.models import ContactKind, WrapupResult
from smeline.ticketing.models import ServiceMode
from smeline.ticketing.schemas import Code, Subject
from smeline.webchat.schemas import Line

Linkedid = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")
]
EnterpriseName = Annotated[Line, StringConstraints(min_length=1, max_length=200)]


class ContactRef(Schema):
    """Which contact: a call by its Linkedid, or a chat by its id."""

    contact_kind: ContactKind
    linkedid: Linkedid | None = Field(default=None, description="The call (contact_kind=call)")
    chat_id: RowId | None = Field(default=None, description="The chat (contact_kind=chat)")

    @model_validator(mode="after")
    def _one_contact(self) -> Self:
        if self.contact_kind is ContactKind.CALL and (self.linkedid is None or self.chat_id):
            raise ValueError("a call is named by linkedid (and no chat_id)")
        if self.contact_kind is ContactKind.CHAT and (self.chat_id is None or self.linkedid):
            raise ValueError("a chat is named by chat_id (and no linkedid)")
        return self

    @property
    def ref(self) -> str:
        return self.linkedid if self.linkedid is not None else str(self.chat_id)


class WrapupIn(ContactRef):
    enterprise_name: EnterpriseName
    enterprise_id: RowId | None = Field(
        default=None, description="The portal's enterprise, when the agent found it"
    )
    category_code: Code
    service_mode: ServiceMode | None = Field(
        default=None,
        description="online / offline / joint; an escalated call or a chat with an invited "
        "expert is joint and nothing else",
    )
    result: WrapupResult
    ticket_id: RowId | None = Field(
        default=None, description="result=ticket: the work order, linked to this contact"
    )

    @model_validator(mode="after")
    def _ticket_with_result(self) -> Self:
        if self.result is WrapupResult.TICKET and self.ticket_id is None:
            raise ValueError("result=ticket needs the ticket_id of the work order")
        if self.result is WrapupResult.RESOLVED and self.ticket_id is not None:
            raise ValueError("ticket_id goes with result=ticket only")
        return self


class WrapupOut(Out):
    id: int
    contact_kind: ContactKind
    linkedid: str | None
    chat_id: int | None
    agent_user_id: int
    window_code: str | None
    county_code: str | None
    enterprise_name: str
    enterprise_id: int | None
    category_code: str
    service_mode: ServiceMode
    result: WrapupResult
    ticket_id: int | None
    created_at: datetime


class PendingContactOut(Out):
    contact_kind: ContactKind
    linkedid: str | None
    chat_id: int | None
    joint: bool = Field(
        description="An escalated call or a chat with an invited expert: joint, and nothing "
        "else can be chosen"
    )
    required: bool
    window_code: str | None
    county_code: str | None
    category_code: str | None
    enterprise_name: str | None
    caller: str | None = Field(description="The caller's or visitor's phone (masked if need be)")
    visitor_name: str | None
    ended_at: datetime | None


class PendingOut(Out):
    required: bool = Field(description="My window requires a wrap-up before the next contact")
    items: list[PendingContactOut]


class ContactTicketIn(ContactRef):
    """Everything else comes from the contact; these override it."""

    subject: Subject | None = None
    category_code: Code | None = None
    enterprise_name: EnterpriseName | None = None
