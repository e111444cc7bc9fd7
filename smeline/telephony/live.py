"""The live picture of queues and agents, from AMI — pure, no I/O.

Built from the member events as they come and rebuilt from ``QueueStatus``
after every (re)connect. Field names differ between the two, as the
recordings show: QueueMemberAdded / Pause / Removed / Status carry
``MemberName`` / ``Interface``; the QueueMember items of QueueStatus carry
``Name`` / ``Location``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from smeline.telephony.ami_protocol import AmiMessage


class DeviceStatus(IntEnum):
    """app_queue's member ``Status`` (the AST_DEVICE_* states)."""

    UNKNOWN = 0
    NOT_INUSE = 1
    INUSE = 2
    BUSY = 3
    INVALID = 4
    UNAVAILABLE = 5
    RINGING = 6
    RINGINUSE = 7
    ONHOLD = 8


_GONE = frozenset({DeviceStatus.INVALID, DeviceStatus.UNAVAILABLE})


@dataclass(slots=True)
class MemberState:
    queue: str
    interface: str
    name: str
    status: DeviceStatus = DeviceStatus.UNKNOWN
    paused: bool = False
    paused_reason: str = ""
    in_call: bool = False
    dynamic: bool = True
    calls_taken: int = 0
    changed_at: datetime | None = None

    @property
    def ready(self) -> bool:
        """Logged in (reachable) and not paused: Asterisk may offer a call."""
        return not self.paused and self.status not in _GONE

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "interface": self.interface,
            "name": self.name,
            "status": self.status.name.lower(),
            "paused": self.paused,
            "paused_reason": self.paused_reason or None,
            "in_call": self.in_call,
            "ready": self.ready,
            "since": self.changed_at.isoformat() if self.changed_at else None,
        }


def _status(value: str | None) -> DeviceStatus:
    try:
        return DeviceStatus(int(value or 0))
    except ValueError:
        return DeviceStatus.UNKNOWN


@dataclass(slots=True)
class LivePicture:
    members: dict[tuple[str, str], MemberState] = field(default_factory=dict)
    # queue → Uniqueid of the waiting caller's channel → since when
    waiting: dict[str, dict[str, datetime]] = field(default_factory=dict)

    def agents_ready(self, queue: str) -> int:
        return sum(1 for (q, _), m in self.members.items() if q == queue and m.ready)

    def queue_members(self, queue: str) -> list[MemberState]:
        return [m for (q, _), m in self.members.items() if q == queue]

    def member(self, queue: str, interface: str) -> MemberState | None:
        return self.members.get((queue, interface))

    def apply(self, message: AmiMessage, at: datetime) -> None:
        """Member and caller events as they arrive."""
        event = message.event
        if event in ("QueueMemberStatus", "QueueMemberPause", "QueueMemberAdded"):
            self._upsert(
                queue=message.get("Queue") or "",
                interface=message.get("Interface") or "",
                name=message.get("MemberName") or "",
                message=message,
                at=at,
            )
        elif event == "QueueMemberRemoved":
            self.members.pop((message.get("Queue") or "", message.get("Interface") or ""), None)
        elif event == "QueueCallerJoin":
            self.waiting.setdefault(message.get("Queue") or "", {})[
                message.get("Uniqueid") or ""
            ] = at
        elif event == "QueueCallerLeave" or event == "QueueCallerAbandon":
            self.waiting.get(message.get("Queue") or "", {}).pop(
                message.get("Uniqueid") or "", None
            )

    def _upsert(
        self, *, queue: str, interface: str, name: str, message: AmiMessage, at: datetime
    ) -> None:
        key = (queue, interface)
        member = self.members.get(key)
        if member is None:
            member = MemberState(queue=queue, interface=interface, name=name, changed_at=at)
            self.members[key] = member
        status = _status(message.get("Status"))
        paused = message.get("Paused") == "1"
        if member.status != status or member.paused != paused:
            member.changed_at = at
        member.name = name or member.name
        member.status = status
        member.paused = paused
        member.paused_reason = message.get("PausedReason") or ""
        member.in_call = message.get("InCall") == "1"
        member.dynamic = message.get("Membership") != "static"
        member.calls_taken = int(message.get("CallsTaken") or member.calls_taken or 0)

    def rebuild(self, queue_status_items: Iterable[AmiMessage], at: datetime) -> None:
        """Replace the picture with a QueueStatus answer (after a reconnect)."""
        previous = self.members
        self.members = {}
        self.waiting = {}
        for item in queue_status_items:
            if item.event == "QueueMember":
                queue = item.get("Queue") or ""
                interface = item.get("Location") or ""
                old = previous.get((queue, interface))
                self._upsert(
                    queue=queue,
                    interface=interface,
                    name=item.get("Name") or "",
                    message=item,
                    at=at,
                )
                if old is not None and (
                    old.status == self.members[(queue, interface)].status
                    and old.paused == self.members[(queue, interface)].paused
                ):
                    self.members[(queue, interface)].changed_at = old.changed_at
            elif item.event == "QueueEntry":
                self.waiting.setdefault(item.get("Queue") or "", {})[item.get("Uniqueid") or ""] = (
                    at
                )
