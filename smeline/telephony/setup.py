"""Wiring of telephony: AMI client, live picture, call records, agents, actions.

With no ``ami_host`` telephony is not configured: the agent and action
services still exist and answer every request with ``telephony_not_configured``
(HTTP 503), so the console can say so plainly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.bus import EventBus
from smeline.config import Settings
from smeline.db import utcnow
from smeline.routing.numbers import NumberPlan, normalise
from smeline.telephony.actions import TelephonyActions
from smeline.telephony.agents import AgentService
from smeline.telephony.ami import DEFAULT_IGNORED_EVENTS, AmiClient
from smeline.telephony.calls import CallTracker
from smeline.telephony.exceptions import TelephonyNotConfigured
from smeline.telephony.live import LivePicture
from smeline.telephony.recordings import RecordingArchive
from smeline.telephony.records import CallRecordStore
from smeline.telephony.services import TelephonyService


@dataclass
class Telephony:
    """Everything telephony, as the app carries it; ``service`` is None when
    no Asterisk is configured."""

    service: TelephonyService | None
    agents: AgentService
    actions: TelephonyActions
    recordings: RecordingArchive

    @property
    def configured(self) -> bool:
        return self.service is not None

    @property
    def connected(self) -> bool:
        return self.service is not None and self.service.client.connected

    def require_configured(self) -> None:
        if self.service is None:
            raise TelephonyNotConfigured("Telephony is not configured (no Asterisk)")

    def agents_ready(self, window: str) -> int | None:
        return None if self.service is None else self.service.agents_ready(window)


def build_telephony(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    bus: EventBus,
    plan: NumberPlan,
) -> Telephony:
    client: AmiClient | None = None
    service: TelephonyService | None = None
    tracker: CallTracker | None = None
    if settings.ami_host is not None:
        client = AmiClient(
            host=settings.ami_host,
            port=settings.ami_port,
            username=settings.ami_username,
            secret=settings.ami_secret,
            # VarSet passes: manager.conf lets only SMELINE_* through, and the
            # call tracker reads those.
            ignored_events=DEFAULT_IGNORED_EVENTS - {"VarSet"},
        )
        tracker = CallTracker()
    agents = AgentService(
        sessionmaker=sessionmaker,
        ami=client,
        now=utcnow,
        wrapup_seconds=settings.wrapup_seconds,
    )
    if client is not None and tracker is not None:
        service = TelephonyService(
            client=client,
            tracker=tracker,
            live=LivePicture(),
            store=CallRecordStore(
                sessionmaker=sessionmaker, caller_key=lambda raw: normalise(raw, plan).key
            ),
            bus=bus,
            agents=agents,
            now=utcnow,
            queue_log_path=settings.queue_log_path,
        )
    actions = TelephonyActions(
        ami=client, tracker=tracker, sessionmaker=sessionmaker, plan=plan, now=utcnow
    )
    recordings = RecordingArchive(
        root=settings.recordings_dir,
        retention_days=settings.recording_retention_days,
        now=utcnow,
    )
    return Telephony(service=service, agents=agents, actions=actions, recordings=recordings)


def telephony_lifecycle(
    telephony: Telephony,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        if telephony.service is None:
            yield
            return
        await telephony.service.start()
        purge = asyncio.get_running_loop().create_task(telephony.recordings.purge_forever())
        try:
            yield
        finally:
            purge.cancel()
            await asyncio.gather(purge, return_exceptions=True)
            await telephony.service.stop()

    return lifecycle
