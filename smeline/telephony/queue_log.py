"""Asterisk's queue_log: the authority for calls that ended while smeline
was not listening (an AMI reconnect gap).

Lines as recorded (``tests/recordings/queue_log-*.txt``)::

    1795344509|cctest-1795344509.3|county-x|NONE|ENTERQUEUE||sipp|1
    1795344518|cctest-1795344509.3|county-x|NONE|EXITWITHTIMEOUT|1|1|8
    1795344518|cctest-1795344509.3|city|Agent Two|CONNECT|0|cctest-1795344518.6|0
    1795344524|cctest-1795344509.3|city|Agent Two|COMPLETECALLER|0|6|1
    1795344498|cctest-1795344493.0|county-x|NONE|ABANDON|1|1|5

``time|callid|queue|agent|event|data…``; the callid is the Uniqueid of the
caller's channel (the call's Linkedid for an inbound call).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(slots=True)
class QueueLogCall:
    callid: str
    wait_seconds: int = 0
    talk_seconds: int | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    agent: str | None = None
    queues: list[str] = field(default_factory=list)
    abandoned: bool = False


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def parse_queue_log(lines: Iterable[str], callids: set[str]) -> dict[str, QueueLogCall]:
    """What the queue_log says about ``callids`` (lines of other calls skipped)."""
    calls: dict[str, QueueLogCall] = {}
    for line in lines:
        parts = line.rstrip("\r\n").split("|")
        if len(parts) < 5 or parts[1] not in callids:
            continue
        try:
            at = datetime.fromtimestamp(int(parts[0]), tz=UTC)
        except (ValueError, OverflowError):
            continue
        callid, queue, agent, event, data = parts[1], parts[2], parts[3], parts[4], parts[5:]
        call = calls.setdefault(callid, QueueLogCall(callid))
        if event == "ENTERQUEUE":
            call.queues.append(queue)
        elif event == "CONNECT":
            call.wait_seconds += _int(data[0]) if data else 0
            call.answered_at = at
            call.agent = agent
        elif event in ("COMPLETECALLER", "COMPLETEAGENT"):
            call.talk_seconds = _int(data[1]) if len(data) > 1 else None
            call.ended_at = at
        elif event in ("ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY"):
            call.wait_seconds += _int(data[2]) if len(data) > 2 else 0
            call.ended_at = at
            call.abandoned = event == "ABANDON"
    return calls
