"""The outbox: notifications are written with the change that causes them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.auth.models import User
from smeline.db import dialect_insert
from smeline.notifications.models import Notification, NotificationStatus
from smeline.notifications.templates import render


def _row_key(dedupe_key: str, channel: str) -> str:
    # Long causes are hashed rather than cut, so the channel suffix always survives.
    if len(dedupe_key) > 100:
        dedupe_key = "sha256:" + hashlib.sha256(dedupe_key.encode()).hexdigest()
    return f"{dedupe_key}:{channel}"


class Outbox:
    """Queues notifications inside the caller's transaction; the dispatcher delivers them."""

    def __init__(self, *, channels: Sequence[str]) -> None:
        self.channels = tuple(channels)

    def addresses(self, user: User) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for channel in self.channels:
            if channel == "log":
                out.append(("log", user.username))
            elif channel == "smtp" and user.email:
                out.append(("smtp", user.email))
            elif channel == "sms" and user.phone:
                out.append(("sms", user.phone))
        return out

    async def enqueue(
        self,
        db: AsyncSession,
        *,
        recipient: User,
        template_id: str,
        params: dict[str, str],
        dedupe_key: str,
        now: datetime,
    ) -> int:
        """Adds one row per enabled channel; a repeated ``dedupe_key`` adds nothing."""
        return await self.enqueue_many(
            db,
            recipients=[recipient],
            template_id=template_id,
            params=params,
            dedupe_key=lambda _user: dedupe_key,
            now=now,
        )

    async def enqueue_to_phone(
        self,
        db: AsyncSession,
        *,
        phone: str,
        template_id: str,
        params: dict[str, str],
        dedupe_key: str,
        now: datetime,
    ) -> int:
        """A message to someone who is not a user (an SME caller): by SMS when
        SMS is enabled, and to the log channel when that is enabled (so a
        deployment without a gateway still shows what would have been sent)."""
        subject, body = render(template_id, params)
        rows = [
            {
                "dedupe_key": _row_key(dedupe_key, channel),
                "channel": channel,
                "recipient_user_id": None,
                "address": phone,
                "template_id": template_id,
                "params": params,
                "subject": subject[:200],
                "body": body,
                "status": NotificationStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for channel in self.channels
            if channel in ("sms", "log")
        ]
        return await self.insert_rows(db, rows)

    async def enqueue_many(
        self,
        db: AsyncSession,
        *,
        recipients: Sequence[User],
        template_id: str,
        params: dict[str, str],
        dedupe_key: Callable[[User], str],
        now: datetime,
    ) -> int:
        """One statement for every recipient and channel of the same message."""
        rows = self.rows(
            recipients=recipients,
            template_id=template_id,
            params=params,
            dedupe_key=dedupe_key,
            now=now,
        )
        return await self.insert_rows(db, rows)

    def rows(
        self,
        *,
        recipients: Sequence[User],
        template_id: str,
        params: dict[str, str],
        dedupe_key: Callable[[User], str],
        now: datetime,
    ) -> list[dict[str, Any]]:
        subject, body = render(template_id, params)
        return [
            {
                "dedupe_key": _row_key(dedupe_key(recipient), channel),
                "channel": channel,
                "recipient_user_id": recipient.id,
                "address": address,
                "template_id": template_id,
                "params": params,
                "subject": subject[:200],
                "body": body,
                "status": NotificationStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for recipient in recipients
            for channel, address in self.addresses(recipient)
        ]

    @staticmethod
    async def insert_rows(db: AsyncSession, rows: list[dict[str, Any]]) -> int:
        """Inserts outbox rows; rows whose ``dedupe_key`` exists already are skipped."""
        insert = dialect_insert(db)
        added = 0
        for start in range(0, len(rows), 1000):
            stmt = (
                insert(Notification)
                .values(rows[start : start + 1000])
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
            )
            result = await db.execute(stmt)
            added += int(getattr(result, "rowcount", 0) or 0)
        return added

    @staticmethod
    async def page(
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        recipient_user_id: int | None,
        status: NotificationStatus | None,
        channel: str | None,
        limit: int,
        before_id: int | None,
    ) -> tuple[list[Notification], str | None]:
        stmt = select(Notification).order_by(Notification.id.desc()).limit(limit + 1)
        if recipient_user_id is not None:
            stmt = stmt.where(Notification.recipient_user_id == recipient_user_id)
        if status is not None:
            stmt = stmt.where(Notification.status == status.value)
        if channel is not None:
            stmt = stmt.where(Notification.channel == channel)
        if before_id is not None:
            stmt = stmt.where(Notification.id < before_id)
        async with sessionmaker() as db:
            rows = list((await db.scalars(stmt)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (str(rows[-1].id) if more and rows else None)
