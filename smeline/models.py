"""Imports every table so that ``Base.metadata`` is complete (Alembic, tests)."""

from smeline.auth.models import AuthSession, LoginFailure, User
from smeline.contacts.models import Wrapup
from smeline.db import Base
from smeline.expert_pool.models import Consultation, Expert
from smeline.notifications.models import Notification
from smeline.portal_bridge.models import Enterprise, Member
from smeline.reference.models import Category, Channel, County, Window
from smeline.routing.models import CallerProfile, LandlinePrefix
from smeline.telephony.models import (
    AgentEndpoint,
    CallRecord,
    QueueMembership,
    TelephonyAudit,
)
from smeline.ticketing.models import (
    CalendarOverride,
    CalendarYear,
    Escalation,
    Handoff,
    SlaEvent,
    SlaPolicy,
    Ticket,
    TicketComment,
    TicketDayCounter,
    TicketHistory,
    TicketShare,
)
from smeline.webchat.models import (
    CannedReply,
    Chat,
    ChatAgent,
    ChatIpRange,
    ChatMessage,
)

__all__ = [
    "AgentEndpoint",
    "CallRecord",
    "CallerProfile",
    "CannedReply",
    "Chat",
    "ChatAgent",
    "ChatIpRange",
    "ChatMessage",
    "Enterprise",
    "LandlinePrefix",
    "Member",
    "TelephonyAudit",
    "AuthSession",
    "Base",
    "CalendarOverride",
    "CalendarYear",
    "Category",
    "Channel",
    "Consultation",
    "County",
    "Escalation",
    "Expert",
    "Handoff",
    "LoginFailure",
    "Notification",
    "QueueMembership",
    "SlaEvent",
    "SlaPolicy",
    "Ticket",
    "TicketComment",
    "TicketDayCounter",
    "TicketHistory",
    "TicketShare",
    "User",
    "Window",
    "Wrapup",
]
