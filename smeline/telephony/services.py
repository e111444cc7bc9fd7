"""Following Asterisk: AMI events → live picture, call records, domain events.

One ``TelephonyService`` per configured Asterisk. The AMI reader calls
``_on_event`` synchronously for every event (no task per event: a busy hour
is tens of thousands of events); domain events and finished call records are
buffered and flushed by one background task, so the bus and the database see
batches and the reader never waits for them.

After every (re)connect the picture is rebuilt from Asterisk itself:
QueueStatus (members, waiting callers; agents re-added and re-paused from
``queue_memberships``) and CoreShowChannels (calls whose channels are gone
are closed — corrected from queue_log when smeline can read it — so the
wallboard never shows a phantom call).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from smeline.bus import EventBus
from smeline.telephony.agents import AgentService
from smeline.telephony.ami import AmiClient, AmiError
from smeline.telephony.ami_protocol import AmiMessage
from smeline.telephony.calls import CallEvent, CallOutcome, CallRecordData, CallTracker
from smeline.telephony.events import EVENTS
from smeline.telephony.live import LivePicture
from smeline.telephony.queue_log import parse_queue_log
from smeline.telephony.records import CallRecordStore

logger = logging.getLogger(__name__)


class TelephonyService:
    def __init__(
        self,
        *,
        client: AmiClient,
        tracker: CallTracker,
        live: LivePicture,
        store: CallRecordStore,
        bus: EventBus,
        agents: AgentService,
        now: Callable[[], datetime],
        queue_log_path: Path | None = None,
    ) -> None:
        self.client = client
        self.tracker = tracker
        self.live = live
        self.store = store
        self.bus = bus
        self.agents = agents
        self._now = now
        self._queue_log_path = queue_log_path
        self._events: list[CallEvent] = []
        self._records: list[CallRecordData] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flusher: asyncio.Task[None] | None = None
        self.rebuilds = 0
        client.add_event_listener(self._on_event)
        client.add_connect_listener(self._on_connect)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        await self.agents.resume_wrapup_timers()
        await self.client.start()

    async def stop(self) -> None:
        await self.client.stop()
        await self.flush()
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        self.agents.close()
        await self.agents.drain()

    def agents_ready(self, window: str) -> int | None:
        """Ready members of a window's queue; None while Asterisk is not connected."""
        if not self.client.connected:
            return None
        return self.live.agents_ready(window)

    # -- events ----------------------------------------------------------------

    def _on_event(self, message: AmiMessage) -> None:
        at = self._now()
        self.live.apply(message, at)
        events = self.tracker.feed(message, at)
        if message.event in ("AgentComplete", "QueueMemberPause"):
            self.agents.on_event(message)
        if events or self.tracker.finished:
            self._events.extend(events)
            self._records.extend(self.tracker.drain_finished())
            self._idle.clear()
            self._wake.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("telephony flush failed; retrying with the next events")
                await asyncio.sleep(0.5)  # back-off before retrying a failing database

    async def flush(self) -> None:
        """Write finished calls, then publish events (a subscriber reading the
        record after ``call.ended`` finds it)."""
        records, self._records = self._records, []
        events, self._events = self._events, []
        try:
            if records:
                await self.store.save(records)
            for event in events:
                await self.bus.publish(event.name, EVENTS[event.name](**event.payload))
        except Exception:
            # Nothing is lost: put them back in front of what came meanwhile.
            self._records[:0] = records
            self._events[:0] = events
            self._wake.set()
            raise
        if not self._records and not self._events:
            self._idle.set()

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self._idle.wait(), timeout)

    # -- reconnect ---------------------------------------------------------------

    async def _on_connect(self) -> None:
        try:
            status = await self.client.send_action("QueueStatus")
            now = self._now()
            self.live.rebuild(status.events, now)
            await self.agents.reconcile(status.events)
            channels = await self.client.send_action("CoreShowChannels")
        except AmiError as exc:
            logger.warning("rebuilding the live picture failed: %s", exc)
            return
        live_ids = {e.get("Uniqueid") or "" for e in channels.events}
        now = self._now()
        events = self.tracker.reconcile(live_ids, now)
        events.extend(self.tracker.adopt_live(channels.events, now))
        await self._restore_conferences(now)
        finished = self.tracker.drain_finished()
        if finished and self._queue_log_path is not None:
            await self._correct_from_queue_log(finished)
        self._events.extend(events)
        self._records.extend(finished)
        self.rebuilds += 1
        if events or finished:
            self._idle.clear()
            self._wake.set()
        logger.info(
            "live picture rebuilt: %d queue members, %d calls closed during the gap",
            len(self.live.members),
            len(finished),
        )

    async def _restore_conferences(self, now: datetime) -> None:
        try:
            rooms = await self.client.send_action("ConfbridgeListRooms")
            # Recorded: with no room Asterisk answers Response: Error
            # "No active conferences." instead of an empty list.
            for room in rooms.events:
                name = room.get("Conference") or ""
                members = await self.client.send_action("ConfbridgeList", [("Conference", name)])
                self.tracker.restore_conference(name, members.events, now)
        except AmiError as exc:
            logger.warning("rebuilding conferences failed: %s", exc)

    async def _correct_from_queue_log(self, records: list[CallRecordData]) -> None:
        path = self._queue_log_path
        if path is None:
            return
        wanted = {r.caller_uniqueid for r in records}

        def read() -> list[str]:
            with path.open(encoding="utf-8", errors="replace") as handle:
                return handle.readlines()[-200_000:]

        try:
            lines = await asyncio.to_thread(read)
        except OSError as exc:
            logger.warning("queue_log not readable (%s): calls closed at reconnect time", exc)
            return
        logged = parse_queue_log(lines, wanted)
        for record in records:
            entry = logged.get(record.caller_uniqueid)
            if entry is None:
                continue
            record.wait_seconds = entry.wait_seconds
            if entry.talk_seconds is not None:
                record.talk_seconds = entry.talk_seconds
            if entry.ended_at is not None:
                record.ended_at = entry.ended_at
            if entry.answered_at is not None:
                record.outcome = CallOutcome.ANSWERED
                record.answered_at = record.answered_at or entry.answered_at
            elif entry.abandoned:
                record.outcome = CallOutcome.ABANDONED
