"""Delivers the notification outbox: claim due rows, send each, record the outcome.

Guarantees, on PostgreSQL and SQLite, with any number of dispatchers:

- None is lost. A row stays ``pending`` until a sender accepts it; a failing
  sender only moves ``next_attempt_at`` on (exponential back-off, 5 s doubling
  up to 15 min). The row becomes ``failed`` - visible, with ``last_error`` -
  only after ``max_attempts`` attempts, on a ``PermanentSendError``, or when no
  sender is configured for its channel.
- None is sent twice by two dispatchers. Claiming is one short transaction that
  sets ``locked_until = now + lease`` on due, unleased rows
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers), so two
  dispatchers claim disjoint rows. Sending happens outside any transaction.
  The outcome is written with ``WHERE id = :id AND locked_until = :our_lease``:
  a row's lease value only ever grows (a new claim needs ``locked_until < now``),
  so it identifies the claim, and a worker whose lease expired and was re-claimed
  by another cannot overwrite that worker's result.
- At-least-once, not exactly-once, across crashes: a dispatcher that dies (or
  stalls past its lease) between a successful send and recording it leaves the
  row leased; after the lease expires another dispatcher sends it again. That is
  why senders pass the notification id to the far side as an idempotency key
  (SMS ``out_id``, SMTP ``Message-ID``). To keep a slow batch from outliving its
  lease, a dispatcher stops sending after half the lease and hands the rest of
  the batch back; sender timeouts must stay well below half the lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.db import utcnow
from smeline.masking import mask_phones_in_text
from smeline.notifications.models import Notification, NotificationStatus
from smeline.notifications.senders import PermanentSendError, Sender, SendError

logger = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=15)
LAST_ERROR_MAX = 500


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt after ``attempts`` failed ones: 5 s, 10 s, 20 s … 15 min."""
    if attempts < 1:
        return timedelta(0)
    # Cap the exponent too, so a large attempt count cannot overflow timedelta.
    factor: int = 2 ** min(attempts - 1, 20)
    return min(BACKOFF_BASE * factor, BACKOFF_MAX)


@dataclass(frozen=True)
class DispatchResult:
    sent: int = 0
    retried: int = 0  # failed this time, pending again with a later next_attempt_at
    failed: int = 0  # gave up: permanent error, max_attempts, or no sender
    lost: int = 0  # our lease had been taken over; the outcome was not recorded
    released: int = 0  # claimed but handed back unsent because the lease ran short

    @property
    def claimed(self) -> int:
        return self.sent + self.retried + self.failed + self.lost + self.released


class Dispatcher:
    """Polls the outbox and hands each due notification to the sender of its channel."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        senders: Mapping[str, Sender],
        max_attempts: int,
        batch_size: int = 100,
        lease: timedelta = timedelta(seconds=60),
        poll_seconds: float = 1.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if lease <= timedelta(0):
            raise ValueError("lease must be positive")
        self.sessionmaker = sessionmaker
        self.senders = dict(senders)
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.lease = lease
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- one pass -------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> DispatchResult:
        """Claims up to ``batch_size`` due rows, sends them, records each outcome."""
        now = now or utcnow()
        if now.tzinfo is None:
            raise ValueError("run_once needs a timezone-aware now")
        our_lease = now + self.lease
        claimed = await self._claim(now, our_lease)
        if not claimed:
            return DispatchResult()

        loop = asyncio.get_running_loop()
        # Real time, not ``now``: the budget protects the lease against slow senders.
        deadline = loop.time() + self.lease.total_seconds() / 2
        counts = {"sent": 0, "retried": 0, "failed": 0, "lost": 0, "released": 0}
        for index, n in enumerate(claimed):
            if loop.time() >= deadline:
                rest = claimed[index:]
                released = await self._release(rest, our_lease)
                counts["released"] += released
                counts["lost"] += len(rest) - released
                logger.warning(
                    "notification batch ran past half its lease; handed back %s rows", len(rest)
                )
                break
            outcome = await self._deliver(n, now, our_lease)
            counts[outcome] += 1
        return DispatchResult(**counts)

    async def _claim(self, now: datetime, our_lease: datetime) -> list[Notification]:
        async with self.sessionmaker() as db, db.begin():
            due = (
                select(Notification.id)
                .where(
                    Notification.status == NotificationStatus.PENDING.value,
                    Notification.next_attempt_at <= now,
                    or_(Notification.locked_until.is_(None), Notification.locked_until < now),
                )
                .order_by(Notification.id)
                .limit(self.batch_size)
            )
            if db.get_bind().dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            # One statement: on SQLite the UPDATE takes the write lock before it reads,
            # so two dispatchers cannot both see a row as unleased.
            stmt = (
                update(Notification)
                .where(Notification.id.in_(due.scalar_subquery()))
                .values(locked_until=our_lease)
                .returning(Notification)
                .execution_options(synchronize_session=False)
            )
            rows = list((await db.scalars(stmt)).all())
        rows.sort(key=lambda n: n.id)
        return rows

    async def _deliver(self, n: Notification, now: datetime, our_lease: datetime) -> str:
        sender = self.senders.get(n.channel)
        if sender is None:
            return await self._fail(n, our_lease, f"no sender for channel {n.channel}")
        attempts = n.attempts + 1
        try:
            await sender.send(n)
        except PermanentSendError as exc:
            error = _error_text(exc)
            logger.warning("notification %s via %s rejected: %s", n.id, n.channel, error)
            return await self._fail(n, our_lease, error, attempts=attempts)
        except Exception as exc:
            # SendError is the expected case; anything else is a sender bug, retried the
            # same way so that it neither wedges the batch nor loses the row.
            if not isinstance(exc, SendError):
                logger.exception(
                    "sender %s raised unexpectedly for notification %s", n.channel, n.id
                )
            error = _error_text(exc)
            if attempts >= self.max_attempts:
                logger.warning(
                    "notification %s via %s failed after %s attempts: %s",
                    n.id,
                    n.channel,
                    attempts,
                    error,
                )
                return await self._fail(n, our_lease, error, attempts=attempts)
            retry_at = now + backoff(attempts)
            logger.info(
                "notification %s via %s attempt %s/%s failed, retry at %s: %s",
                n.id,
                n.channel,
                attempts,
                self.max_attempts,
                retry_at.isoformat(),
                error,
            )
            return await self._finish(
                n,
                our_lease,
                "retried",
                attempts=attempts,
                last_error=error,
                next_attempt_at=retry_at,
            )
        return await self._finish(
            n,
            our_lease,
            "sent",
            status=NotificationStatus.SENT.value,
            attempts=attempts,
            sent_at=now,
        )

    async def _fail(
        self, n: Notification, our_lease: datetime, error: str, *, attempts: int | None = None
    ) -> str:
        values: dict[str, Any] = {"status": NotificationStatus.FAILED.value, "last_error": error}
        if attempts is not None:
            values["attempts"] = attempts
        return await self._finish(n, our_lease, "failed", **values)

    async def _finish(
        self, n: Notification, our_lease: datetime, outcome: str, **values: Any
    ) -> str:
        """Records an outcome (and ends the lease) only if the row is still under our lease."""
        async with self.sessionmaker() as db, db.begin():
            result = await db.execute(
                update(Notification)
                .where(Notification.id == n.id, Notification.locked_until == our_lease)
                .values(**values, locked_until=None)
                .execution_options(synchronize_session=False)
            )
            updated = int(getattr(result, "rowcount", 0) or 0)
        if updated == 0:
            logger.warning(
                "notification %s: lease expired before its outcome (%s) was recorded; "
                "another dispatcher owns it now",
                n.id,
                outcome,
            )
            return "lost"
        return outcome

    async def _release(self, rows: list[Notification], our_lease: datetime) -> int:
        async with self.sessionmaker() as db, db.begin():
            result = await db.execute(
                update(Notification)
                .where(
                    Notification.id.in_([n.id for n in rows]),
                    Notification.locked_until == our_lease,
                )
                .values(locked_until=None)
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # -- background loop -------------------------------------------------------

    def start(self) -> None:
        """Runs ``run_once`` every ``poll_seconds`` until ``stop()``."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="notification-dispatcher")

    async def stop(self) -> None:
        """Lets the current pass finish, then ends the loop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            # A pass is bounded by half the lease plus one sender timeout.
            await asyncio.wait_for(asyncio.shield(task), timeout=self.lease.total_seconds())
        except TimeoutError:
            logger.warning("notification dispatcher did not stop in time; cancelling")
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            full_batch = False
            try:
                result = await self.run_once()
                full_batch = result.claimed >= self.batch_size
            except Exception:
                logger.exception("notification dispatch pass failed")
            if full_batch:
                # A backlog: go straight on, but still yield to the rest of the process.
                await asyncio.sleep(0)
                continue
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, SendError):
        text = f"{type(exc).__name__}: {text}"
    return mask_phones_in_text(text)[:LAST_ERROR_MAX]
