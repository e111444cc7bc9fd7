"""Notifications: each user reads their own; administrators and supervisors read all
(to see what failed to be delivered)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from smeline import keys
from smeline.api import ApiRoutes, Out, QuerySchema, RowId, json_ok, parse_query
from smeline.auth.middleware import principal_of
from smeline.auth.permissions import Permission
from smeline.errors import Forbidden
from smeline.notifications.models import NotificationStatus

routes = ApiRoutes(tag="notifications")


class NotificationOut(Out):
    id: int
    channel: str
    recipient_user_id: int | None
    template_id: str
    subject: str
    body: str
    status: NotificationStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class NotificationPageOut(Out):
    items: list[NotificationOut]
    next_cursor: str | None


class NotificationQuery(QuerySchema):
    status: NotificationStatus | None = None
    recipient_user_id: RowId | None = Field(
        default=None, description="Defaults to me; others need notifications.read"
    )
    everyone: bool = Field(default=False, description="All recipients (notifications.read)")
    channel: str | None = Field(default=None, max_length=10)
    limit: int = Field(default=50, ge=1, le=200)
    cursor: RowId | None = None


@routes.get(
    "/api/notifications",
    summary="Notifications (mine by default), newest first",
    query=NotificationQuery,
    response=NotificationPageOut,
)
async def list_notifications(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    q = parse_query(request, NotificationQuery)
    if (q.everyone or (q.recipient_user_id not in (None, p.user_id))) and not p.can(
        Permission.NOTIFICATIONS_READ
    ):
        raise Forbidden("Only your own notifications", error_id="permission_denied")
    rows, cursor = await request.app[keys.OUTBOX].page(
        request.app[keys.SESSIONMAKER],
        recipient_user_id=None if q.everyone else (q.recipient_user_id or p.user_id),
        status=q.status,
        channel=q.channel,
        limit=q.limit,
        before_id=q.cursor,
    )
    return json_ok(
        NotificationPageOut(
            items=[NotificationOut.model_validate(r) for r in rows], next_cursor=cursor
        )
    )
