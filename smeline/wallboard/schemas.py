"""The wallboard snapshot (docs/wallboard.md): ``GET /api/wallboard`` answers
it and ``wallboard.update`` pushes it, the same JSON."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from smeline.api import Out

AgentStateName = Literal["ready", "paused", "wrapup", "on_call", "disconnected"]


class RulesOut(Out):
    service_level_seconds: int
    short_abandon_seconds: int


class AgentCountsOut(Out):
    ready: int = 0
    paused: int = 0
    wrapup: int = 0
    on_call: int = 0
    disconnected: int = 0


class TodayOut(Out):
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    service_level: float | None
    asa_seconds: float | None
    aht_seconds: float | None
    overflowed_in: int
    chats: int
    chats_answered: int


class WindowOut(Out):
    code: str
    name: str
    open: bool
    calls_waiting: int
    longest_call_wait_seconds: int
    chats_waiting: int
    longest_chat_wait_seconds: int
    agents: AgentCountsOut
    today: TodayOut


class AgentOut(Out):
    user_id: int
    name: str
    window_code: str
    state: AgentStateName
    reason: str | None
    since: datetime
    handled: int
    missed: int
    aht_seconds: float | None
    chats_active: int


class SlaCountyOut(Out):
    county_code: str
    name: str
    warning: int
    breached: int


class SlaItemOut(Out):
    id: int
    number: str
    short_ref: str
    subject: str
    county_code: str
    state: str
    sla_state: Literal["warning", "breached"]
    due_at: datetime | None
    assignee_name: str | None


class SlaOut(Out):
    warning: int
    breached: int
    by_county: list[SlaCountyOut]
    items: list[SlaItemOut]


class TrendsOut(Out):
    by_hour: list[int]
    by_category: dict[str, int]
    by_county: dict[str, int]


class WallboardOut(Out):
    at: datetime
    day: date
    rules: RulesOut
    windows: list[WindowOut]
    total: TodayOut
    agents: list[AgentOut]
    sla: SlaOut
    trends: TrendsOut
