"""The figures the platform is judged on, defined in one place.

The supervisor wallboard (live, today) and the reports (any period) both call
these functions on the same facts, so they cannot disagree. Definitions
(docs/figures.md):

* A call counts for **one window**: the window that answered it; if nobody
  answered, the window whose queue it was in when it left (an overflowed call
  abandoned in the city queue counts for the city).
* **Short abandon**: the caller hung up in the queue within
  ``short_abandon_seconds`` — a wrong number, not a lost customer; counted
  apart and left out of every rate.
* **Offered** = answered + abandoned (not short) + left for a callback or a
  voicemail from the queue.
* **Service level** = answered within ``service_level_seconds`` of joining the
  first queue ÷ offered. The wait covers every queue of the call (county then
  city), so overflowing does not reset the clock.
* **Abandon rate** = abandoned (not short) ÷ offered.
* **ASA** (average speed of answer) = mean wait of answered calls.
* **AHT** (average handle time) = mean handle time of answered calls, measured
  on the agent's leg (talk + hold, plus after-call work when it is recorded);
  talk time when the handle time is unknown.
* **Overflowed in**: answered calls whose first queue was another window's.
* A **chat** counts for the window whose queue held it last (a chat transferred
  to another window counts there); it is **answered** once an agent took it.
* **Handled** by an agent = calls they answered + chats they hold or held
  (the last agent of a transferred chat).
* **Contacts** (trends) = calls that reached a queue + chats.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

ANSWERED = "answered"
ABANDONED = "abandoned"
CALLBACK = "callback"
VOICEMAIL = "voicemail"


@dataclass(frozen=True, slots=True)
class FigureRules:
    service_level_seconds: int = 20
    short_abandon_seconds: int = 5


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What a figure needs of one call record."""

    started_at: datetime
    outcome: str
    windows: tuple[str, ...]  # queues in order: first the routed one
    answered_window: str | None = None
    queued: bool = True
    wait_seconds: int = 0
    talk_seconds: int = 0
    handle_seconds: int | None = None
    agent_user_id: int | None = None
    county_code: str | None = None
    category_code: str | None = None
    joint: bool = False

    @property
    def window(self) -> str | None:
        """The one window the call counts for."""
        if self.outcome == ANSWERED and self.answered_window:
            return self.answered_window
        return self.windows[-1] if self.windows else None


@dataclass(slots=True)
class WindowFigures:
    window: str
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    callbacks: int = 0
    voicemails: int = 0
    answered_within_sl: int = 0
    overflowed_in: int = 0
    joint: int = 0
    wait_answered_total: int = 0
    handle_total: int = 0

    @property
    def service_level(self) -> float | None:
        return self.answered_within_sl / self.offered if self.offered else None

    @property
    def abandon_rate(self) -> float | None:
        return self.abandoned / self.offered if self.offered else None

    @property
    def asa_seconds(self) -> float | None:
        return self.wait_answered_total / self.answered if self.answered else None

    @property
    def aht_seconds(self) -> float | None:
        return self.handle_total / self.answered if self.answered else None


@dataclass(slots=True)
class AgentFigures:
    agent_user_id: int
    answered: int = 0
    handle_total: int = 0
    talk_total: int = 0
    windows: Counter[str] = field(default_factory=Counter)

    @property
    def aht_seconds(self) -> float | None:
        return self.handle_total / self.answered if self.answered else None


def _handle(call: CallFacts) -> int:
    return call.handle_seconds if call.handle_seconds is not None else call.talk_seconds


def is_short_abandon(call: CallFacts, rules: FigureRules) -> bool:
    return call.outcome == ABANDONED and call.wait_seconds < rules.short_abandon_seconds


def window_figures(
    calls: Iterable[CallFacts], rules: FigureRules, windows: Iterable[str] = ()
) -> dict[str, WindowFigures]:
    """Per window; ``windows`` are listed even with no calls (a wallboard row)."""
    out: dict[str, WindowFigures] = {w: WindowFigures(w) for w in windows}
    for call in calls:
        window = call.window
        if not call.queued or window is None:
            continue  # never reached a queue: IVR hang-ups, outbound calls
        figures = out.get(window)
        if figures is None:
            figures = out[window] = WindowFigures(window)
        if is_short_abandon(call, rules):
            figures.short_abandoned += 1
            continue
        if call.outcome == ANSWERED:
            figures.offered += 1
            figures.answered += 1
            figures.wait_answered_total += call.wait_seconds
            figures.handle_total += _handle(call)
            if call.wait_seconds <= rules.service_level_seconds:
                figures.answered_within_sl += 1
            if call.windows and call.windows[0] != window:
                figures.overflowed_in += 1
            if call.joint:
                figures.joint += 1
        elif call.outcome == ABANDONED:
            figures.offered += 1
            figures.abandoned += 1
        elif call.outcome == CALLBACK:
            figures.offered += 1
            figures.callbacks += 1
        elif call.outcome == VOICEMAIL:
            figures.offered += 1
            figures.voicemails += 1
        # in progress: counted when it ends
    return out


def total(figures: Mapping[str, WindowFigures], name: str = "all") -> WindowFigures:
    """The sum over windows (a city-wide row): rates are recomputed, not averaged."""
    whole = WindowFigures(name)
    for one in figures.values():
        for attr in (
            "offered",
            "answered",
            "abandoned",
            "short_abandoned",
            "callbacks",
            "voicemails",
            "answered_within_sl",
            "overflowed_in",
            "joint",
            "wait_answered_total",
            "handle_total",
        ):
            setattr(whole, attr, getattr(whole, attr) + getattr(one, attr))
    return whole


def agent_figures(calls: Iterable[CallFacts]) -> dict[int, AgentFigures]:
    out: dict[int, AgentFigures] = {}
    for call in calls:
        if call.outcome != ANSWERED or call.agent_user_id is None:
            continue
        figures = out.get(call.agent_user_id)
        if figures is None:
            figures = out[call.agent_user_id] = AgentFigures(call.agent_user_id)
        figures.answered += 1
        figures.handle_total += _handle(call)
        figures.talk_total += call.talk_seconds
        if call.window:
            figures.windows[call.window] += 1
    return out


def contacts_by_hour(calls: Iterable[CallFacts], tz: tzinfo) -> dict[int, int]:
    """Calls that reached a queue, by local hour of their start (0–23)."""
    counts: dict[int, int] = defaultdict(int)
    for call in calls:
        if call.queued:
            counts[call.started_at.astimezone(tz).hour] += 1
    return {hour: counts.get(hour, 0) for hour in range(24)}


def contacts_by(calls: Iterable[CallFacts], attribute: str) -> dict[str, int]:
    """Calls that reached a queue by ``county_code`` or ``category_code``
    (``""``: unknown)."""
    if attribute not in ("county_code", "category_code"):
        raise ValueError(f"cannot group by {attribute!r}")
    counts: Counter[str] = Counter()
    for call in calls:
        if call.queued:
            counts[getattr(call, attribute) or ""] += 1
    return dict(counts)


# -- web chat ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatFacts:
    """Chats alike in everything a figure looks at, and how many there are
    (the database groups them: a day of 3,000 chats is a few hundred groups,
    a year of them a few thousand)."""

    window: str  # the window whose queue holds (or held) them last
    answered: bool  # an agent took them
    hour: int  # the local hour (0–23) they started in
    county_code: str | None = None
    category_code: str | None = None
    count: int = 1


@dataclass(slots=True)
class ChatFigures:
    window: str
    chats: int = 0
    answered: int = 0


def chat_figures(chats: Iterable[ChatFacts], windows: Iterable[str] = ()) -> dict[str, ChatFigures]:
    """Per window; ``windows`` are listed even with no chats."""
    out: dict[str, ChatFigures] = {w: ChatFigures(w) for w in windows}
    for chat in chats:
        figures = out.get(chat.window)
        if figures is None:
            figures = out[chat.window] = ChatFigures(chat.window)
        figures.chats += chat.count
        if chat.answered:
            figures.answered += chat.count
    return out


def chat_total(figures: Mapping[str, ChatFigures], name: str = "all") -> ChatFigures:
    whole = ChatFigures(name)
    for one in figures.values():
        whole.chats += one.chats
        whole.answered += one.answered
    return whole


def agent_chats(answered: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Chats answered, by the agent who holds or held them last, from
    ``(agent, chats)`` pairs (an agent may come more than once)."""
    counts: Counter[int] = Counter()
    for agent, chats in answered:
        counts[agent] += chats
    return dict(counts)


def handled(calls: AgentFigures | None, chats: int) -> int:
    """An agent's contacts handled: calls answered + chats answered."""
    return (calls.answered if calls is not None else 0) + chats


# -- trends (calls and chats together) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Trends:
    by_hour: tuple[int, ...]  # 24 local hours
    by_category: dict[str, int]
    by_county: dict[str, int]


def contact_trends(
    calls: Iterable[CallFacts],
    chats: Iterable[ChatFacts],
    tz: tzinfo,
    windows: Collection[str] | None = None,
) -> Trends:
    """Contacts (calls that reached a queue, and chats) by local hour, category
    and county; ``windows`` keeps only the contacts counted for those windows."""
    queued = [c for c in calls if c.queued and (windows is None or c.window in windows)]
    kept = [c for c in chats if windows is None or c.window in windows]
    hours = contacts_by_hour(queued, tz)
    by_category = Counter(contacts_by(queued, "category_code"))
    by_county = Counter(contacts_by(queued, "county_code"))
    for chat in kept:
        hours[chat.hour] += chat.count
        by_category[chat.category_code or ""] += chat.count
        by_county[chat.county_code or ""] += chat.count
    return Trends(
        by_hour=tuple(hours[h] for h in range(24)),
        by_category=dict(by_category),
        by_county=dict(by_county),
    )
