"""Event names and payloads published by telephony (the only place that publishes them).

``CallTracker`` (``telephony.calls``) decides *which* event happens; these
models are the typed shape every subscriber (agent console, wallboard,
statistics) receives.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from smeline.bus import EventRegistry


class CallState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    linkedid: str
    direction: str
    caller_number: str
    county: str | None
    category: str | None
    window: str | None
    queue: str | None
    agent_interface: str | None
    wait_seconds: int
    outcome: str


class CallQueued(CallState):
    position: int
    priority: str | None


class CallAnswered(CallState):
    agent_name: str | None


class CallOverflowed(CallState):
    from_queue: str
    to_queue: str


class CallQueueTimeout(CallState):
    from_queue: str | None


class CallAgentCompleted(CallState):
    talk_seconds: int
    reason: str | None


class CallEnded(CallState):
    talk_seconds: int
    ended_at: str
    survey: str | None
    joint: bool


class ConferenceMember(CallState):
    conference: str
    channel: str | None
    role: str  # caller | agent | target


class AgentState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str | None
    interface: str | None
    member_name: str | None
    status: int
    paused: bool
    paused_reason: str | None
    in_call: bool
    event: str | None


CALL_QUEUED = "call.queued"
CALL_ANSWERED = "call.answered"
CALL_OVERFLOWED = "call.overflowed"
CALL_QUEUE_TIMEOUT = "call.queue_timeout"
CALL_ABANDONED = "call.abandoned"
CALL_AGENT_COMPLETED = "call.agent_completed"
CALL_ENDED = "call.ended"
CONFERENCE_MEMBER_JOINED = "conference.member_joined"
CONFERENCE_MEMBER_LEFT = "conference.member_left"
AGENT_STATE = "agent.state"

EVENTS: dict[str, type[BaseModel]] = {
    CALL_QUEUED: CallQueued,
    CALL_ANSWERED: CallAnswered,
    CALL_OVERFLOWED: CallOverflowed,
    CALL_QUEUE_TIMEOUT: CallQueueTimeout,
    CALL_ABANDONED: CallState,
    CALL_AGENT_COMPLETED: CallAgentCompleted,
    CALL_ENDED: CallEnded,
    CONFERENCE_MEMBER_JOINED: ConferenceMember,
    CONFERENCE_MEMBER_LEFT: ConferenceMember,
    AGENT_STATE: AgentState,
}


def register(registry: EventRegistry) -> None:
    for name, model in EVENTS.items():
        registry.register(name, model)
