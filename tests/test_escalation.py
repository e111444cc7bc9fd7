"""Three-way escalation against the conference-aware AMI double and PostgreSQL:
who is chosen, the AMI sequences, no answer, the caller hanging up, one
escalation at a time, private consultation, and the HTTP routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline import keys
from smeline.app import create_app
from smeline.bus import EventRegistry, InProcessBus
from smeline.db import make_engine, make_sessionmaker, utcnow
from smeline.expert_pool.models import Consultation, Expert
from smeline.expert_pool.schemas import WEEKDAYS, ExpertIn
from smeline.expert_pool.services import ExpertCandidate, ExpertService, choose_expert, rank_experts
from smeline.reference.services import ReferenceService
from smeline.routing.numbers import DEFAULT_PLAN, dial_string, normalise
from smeline.telephony import escalation_http
from smeline.telephony import events as telephony_events
from smeline.telephony.ami_protocol import AmiMessage, iter_raw_recording
from smeline.telephony.calls import CallTracker
from smeline.telephony.escalation import (
    EscalationInProgress,
    EscalationService,
    Phase,
    TargetKind,
    TargetRequest,
    room_of,
)
from smeline.telephony.models import CallRecord
from smeline.telephony.services import TelephonyService
from smeline.ticketing.calendar import BusinessCalendar
from tests.asterisk_double import RECORDINGS
from tests.asterisk_double.conference import ConferenceDouble
from tests.conftest import Api, make_settings
from tests.polling import until, until_async
from tests.telephony_rig import meijiang_agent, started_service, wired_api

# The recorded queued call (recordings--ami-events-call): caller and agent legs.
LINKEDID = "cctest-1795343657.0"
CALLER = "PJSIP/sipp-00000000"
AGENT = "PJSIP/agent1-00000001"
AGENT_UID = "cctest-1795343658.1"
ROOM = room_of(LINKEDID)
HOLD_ROOM = f"{ROOM}-hold"
ALWAYS = {day: [["00:00", "24:00"]] for day in WEEKDAYS}
EXPERT_PHONE = "13800138000"
EXPERT_CHANNEL = (
    f"Local/e-{dial_string(normalise(EXPERT_PHONE, DEFAULT_PLAN), DEFAULT_PLAN)}"
    "@smeline-dial-target/n"
)
PROVINCE_NUMBER = "020-12345678"


# --- the pure chooser -------------------------------------------------------------------

# Tuesday 2026-03-10, 10:00 in Meizhou (02:00 UTC): a working day, business hours.
TUESDAY_10 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
# The same Tuesday at 20:00 local: outside business hours.
TUESDAY_20 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
# Sunday 2026-03-08, 10:00 local: not a working day.
SUNDAY_10 = datetime(2026, 3, 8, 2, 0, tzinfo=UTC)
EARLY = datetime(2026, 3, 1, tzinfo=UTC)
LATE = datetime(2026, 3, 9, tzinfo=UTC)


def expert(
    id: int,
    specialties: tuple[str, ...] = ("legal",),
    *,
    schedule: dict[str, list[list[str]]] | None = None,
    consulted: datetime | None = None,
    active: bool = True,
) -> ExpertCandidate:
    return ExpertCandidate(
        id=id,
        name=f"expert {id}",
        phone_key=f"1380013800{id}",
        specialties=specialties,
        active=active,
        schedule=schedule,
        last_consulted_at=consulted,
    )


@pytest.mark.parametrize(
    ("candidates", "now", "busy", "chosen"),
    [
        # specialty: only the legal expert answers a legal question
        ([expert(1, ("financing",)), expert(2, ("legal",))], TUESDAY_10, set(), 2),
        # nobody with the specialty
        ([expert(1, ("financing",))], TUESDAY_10, set(), None),
        # fairness: never consulted before the one consulted earliest …
        ([expert(1, consulted=EARLY), expert(2)], TUESDAY_10, set(), 2),
        # … and the one consulted longest ago before the one consulted lately
        ([expert(1, consulted=LATE), expert(2, consulted=EARLY)], TUESDAY_10, set(), 2),
        # ties go to the lower id
        ([expert(3), expert(2)], TUESDAY_10, set(), 2),
        # already on a call: the next fairest one
        ([expert(1), expert(2, consulted=LATE)], TUESDAY_10, {1}, 2),
        ([expert(1)], TUESDAY_10, {1}, None),
        # no schedule = business hours: not at 20:00, not on a Sunday
        ([expert(1)], TUESDAY_20, set(), None),
        ([expert(1)], SUNDAY_10, set(), None),
        # a weekly schedule of its own (Asia/Shanghai): Tuesday evenings only
        ([expert(1), expert(2, schedule={"tue": [["19:00", "21:00"]]})], TUESDAY_20, set(), 2),
        ([expert(2, schedule={"tue": [["19:00", "21:00"]]})], TUESDAY_10, set(), None),
        ([expert(2, schedule={"sun": [["09:00", "12:00"]]})], SUNDAY_10, set(), 2),
        # the end of an interval is outside it
        ([expert(2, schedule={"tue": [["08:00", "10:00"]]})], TUESDAY_10, set(), None),
        # inactive experts are never rung
        ([expert(1, active=False), expert(2, consulted=LATE)], TUESDAY_10, set(), 2),
    ],
)
def test_choose_expert_by_specialty_availability_and_fairness(
    candidates: list[ExpertCandidate], now: datetime, busy: set[int], chosen: int | None
) -> None:
    result = choose_expert(candidates, "legal", now, busy, calendar=BusinessCalendar())
    assert (result.id if result else None) == chosen


def test_ranking_says_why_an_expert_cannot_be_asked() -> None:
    ranked = rank_experts(
        [expert(1, ("financing",)), expert(2, active=False), expert(3), expert(4)],
        "legal",
        TUESDAY_10,
        {4},
        calendar=BusinessCalendar(),
    )
    assert [(a.expert.id, a.reasons) for a in ranked] == [
        (3, ()),
        (1, ("no_specialty",)),
        (2, ("inactive",)),
        (4, ("on_call",)),
    ]


async def test_the_database_chooser_skips_experts_on_a_call_and_rotates(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        experts = ExpertService(sessionmaker=make_sessionmaker(engine))
        now = utcnow()
        ids = []
        for n in range(3):
            row = await experts.create(
                ExpertIn(
                    name=f"律师{n}",
                    phone=f"1380013800{n}",
                    specialties=["legal"] if n < 2 else ["financing"],
                    schedule=ALWAYS,  # type: ignore[arg-type]
                ),
                now=now,
            )
            ids.append(row.id)
        first = await experts.choose("legal", now)
        assert first is not None and first.id == ids[0]
        # Ringing the first one: on a call, and the most recently consulted.
        consultation = await experts.start_consultation(
            linkedid="call-1",
            target_kind="expert",
            target_ref=str(ids[0]),
            expert_id=ids[0],
            agent_user_id=None,
            at=now,
        )
        assert await experts.busy_expert_ids(now) == {ids[0]}
        second = await experts.choose("legal", now)
        assert second is not None and second.id == ids[1]
        await experts.consultation_outcome(consultation, "answered", ended_at=now)
        assert await experts.busy_expert_ids(now) == set()
        # Free again, but consulted last: the other one's turn.
        again = await experts.choose("legal", now + timedelta(seconds=1))
        assert again is not None and again.id == ids[1]
        # A consultation left open by a crash does not block an expert for ever.
        await experts.start_consultation(
            linkedid="call-2",
            target_kind="expert",
            target_ref=str(ids[1]),
            expert_id=ids[1],
            agent_user_id=None,
            at=now - timedelta(hours=5),
        )
        assert await experts.busy_expert_ids(now) == set()
    finally:
        await engine.dispose()


# --- the rig: telephony service + escalation service on the double -----------------------


@dataclass
class Rig:
    double: ConferenceDouble
    service: TelephonyService
    escalations: EscalationService
    experts: ExpertService
    sessionmaker: async_sessionmaker[AsyncSession]
    user_id: int

    @property
    def tracker(self) -> CallTracker:
        return self.service.tracker

    def actions(self, name: str) -> list[AmiMessage]:
        return [a for a in self.double.actions if (a.get("Action") or "").lower() == name.lower()]

    async def consultations(self) -> list[Consultation]:
        async with self.sessionmaker() as db:
            rows = await db.scalars(select(Consultation).order_by(Consultation.id))
            return list(rows.all())

    async def outcome_is(self, outcome: str, *, ended: bool = True) -> None:
        async def check() -> bool:
            rows = await self.consultations()
            return (
                bool(rows)
                and rows[-1].outcome == outcome
                and ((rows[-1].ended_at is not None) == ended)
            )

        await until_async(check, within=8)

    async def record(self) -> CallRecord | None:
        async with self.sessionmaker() as db:
            return await db.scalar(select(CallRecord).where(CallRecord.linkedid == LINKEDID))


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await ReferenceService(sessionmaker=sessionmaker).seed()
    user_id = await meijiang_agent(sessionmaker)
    double = ConferenceDouble(bad_login_delay=0.05)
    for window in ("meijiang", "city", "county-meijiang", "xingning"):
        double.add_queue(window)
    await double.start()
    registry = EventRegistry()
    telephony_events.register(registry)
    bus = InProcessBus(registry)
    await bus.start()
    service = await started_service(double, sessionmaker, bus)
    client = service.client
    experts = ExpertService(sessionmaker=sessionmaker)
    escalations = EscalationService(
        ami=client,
        tracker=service.tracker,
        experts=experts,
        plan=DEFAULT_PLAN,
        windows=lambda: {"city", "meijiang", "xingning"},
        now=utcnow,
        timeout_seconds=30,
        province_number=PROVINCE_NUMBER,
    )
    try:
        yield Rig(double, service, escalations, experts, sessionmaker, user_id)
    finally:
        await escalations.stop()
        await service.stop()
        await bus.close()
        await double.stop()
        await engine.dispose()


async def live_call(double: ConferenceDouble, tracker: CallTracker) -> None:
    """The recorded queued call up to the moment caller and agent are bridged,
    in the double's state as well, with the IVR's category."""
    messages = [
        m
        for m in iter_raw_recording((RECORDINGS / "recordings--ami-events-call.ami").read_bytes())
        if m.is_event
    ]
    cut = next(i for i, m in enumerate(messages) if m.event == "HangupRequest")
    for message in messages[:cut]:
        await double.emit(message)
    double.add_channel(CALLER, uniqueid=LINKEDID, bridge_id="queue-bridge-1")
    double.add_channel(AGENT, uniqueid=AGENT_UID, linkedid=LINKEDID, bridge_id="queue-bridge-1")
    await double.emit(
        {
            "Event": "VarSet",
            "Channel": CALLER,
            "Uniqueid": LINKEDID,
            "Linkedid": LINKEDID,
            "Variable": "SMELINE_CATEGORY",
            "Value": "legal",
        }
    )
    await until(
        lambda: (
            (call := tracker.calls.get(LINKEDID)) is not None
            and call.agent_uniqueid == AGENT_UID
            and call.category == "legal"
        )
    )


async def add_expert(
    experts: ExpertService, name: str = "王律师", phone: str = EXPERT_PHONE
) -> int:
    row = await experts.create(
        ExpertIn(name=name, phone=phone, specialties=["legal"], schedule=ALWAYS),  # type: ignore[arg-type]
        now=utcnow(),
    )
    return row.id


def variables(message: AmiMessage) -> dict[str, str]:
    return dict(v.partition("=")[::2] for v in message.get_all("Variable"))


def escalation_originate(rig: Rig) -> AmiMessage:
    return next(
        a for a in rig.actions("Originate") if "@smeline-dial-target/" in (a.get("Channel") or "")
    )


def target_legs(rig: Rig) -> list[str]:
    return [n for n in rig.double.local_channels() if "@smeline-dial-target" in n]


# --- target answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "window", "channel", "role"),
    [
        (TargetKind.EXPERT, None, EXPERT_CHANNEL, "party"),
        (TargetKind.CITY, None, "Local/q-city@smeline-dial-target/n", "party"),
        (TargetKind.WINDOW, "xingning", "Local/q-xingning@smeline-dial-target/n", "party"),
        (TargetKind.PROVINCE, None, "Local/p-02012345678@smeline-dial-target/n", "province"),
    ],
)
async def test_target_answers_and_everyone_is_in_one_room(
    rig: Rig, kind: TargetKind, window: str | None, channel: str, role: str
) -> None:
    expert_id = await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    rig.escalations.timeout_seconds = 7
    view = await rig.escalations.start(
        LINKEDID,
        TargetRequest(kind=kind, window_code=window),
        consult=False,
        actor_user_id=rig.user_id,
    )
    assert view.phase is Phase.RINGING and view.room == ROOM
    await until(lambda: rig.escalations.view(LINKEDID).phase is Phase.MERGED)  # type: ignore[union-attr]

    # Caller and agent: roles set, then ONE dual Redirect into the conference.
    setvars = {(a.get("Channel"), a.get("Variable")): a.get("Value") for a in rig.actions("Setvar")}
    assert setvars[(CALLER, "SMELINE_ROOM")] == setvars[(AGENT, "SMELINE_ROOM")] == ROOM
    assert setvars[(CALLER, "SMELINE_CONF_ROLE")] == "caller"
    assert setvars[(AGENT, "SMELINE_CONF_ROLE")] == "agent"
    (redirect,) = rig.actions("Redirect")
    assert (redirect.get("Channel"), redirect.get("ExtraChannel")) == (CALLER, AGENT)
    assert redirect.get("Context") == redirect.get("ExtraContext") == "smeline-conference"

    # The far leg: a Local channel with /n into [smeline-conference].
    originate = escalation_originate(rig)
    assert originate.get("Channel") == channel
    assert (originate.get("Context"), originate.get("Exten")) == ("smeline-conference", "s")
    assert originate.get("Timeout") == "7000"  # milliseconds
    assert variables(originate) == {
        "SMELINE_ROOM": ROOM,
        "SMELINE_CONF_ROLE": role,
        "SMELINE_LINKEDID": LINKEDID,
    }
    (leg_one,) = [n for n in target_legs(rig) if n.endswith(";1")]
    assert rig.double.members(ROOM) == {CALLER: "caller", AGENT: "agent", leg_one: role}

    (row,) = await rig.consultations()
    assert row.linkedid == LINKEDID and row.target_kind == kind.value
    assert row.outcome == "answered" and row.answered_at is not None and row.ended_at is None
    assert row.agent_user_id == rig.user_id
    assert row.expert_id == (expert_id if kind is TargetKind.EXPERT else None)
    if kind is TargetKind.EXPERT:
        async with rig.sessionmaker() as db:
            assert (await db.get(Expert, expert_id)).last_consulted_at is not None  # type: ignore[union-attr]

    # The call ends: its record is a joint service (协同服务).
    await rig.double.far_end_hangs_up(CALLER)
    await rig.service.wait_idle()

    async def joint() -> bool:
        record = await rig.record()
        return record is not None and record.joint

    await until_async(joint)
    record = await rig.record()
    assert record is not None and record.escalations[0]["target"].startswith(kind.value)


# --- target does not answer -------------------------------------------------------------------


@pytest.mark.parametrize("consult", [False, True], ids=["direct", "consult"])
async def test_no_answer_brings_caller_and_agent_back_with_an_announcement(
    rig: Rig, consult: bool
) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    rig.escalations.timeout_seconds = 1
    # Rings until the Originate's Timeout runs out (the double honours it, in ms).
    rig.double.set_originate_outcome(EXPERT_CHANNEL, "no_answer")
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.EXPERT), consult=consult, actor_user_id=None
    )
    assert escalation_originate(rig).get("Timeout") == "1000"  # 1 s, not 1 ms
    await rig.outcome_is("no_answer")
    await until(lambda: bool(rig.double.playbacks))

    (announce,) = [a for a in rig.actions("Originate") if a.get("Application") == "Playback"]
    assert announce.get("Channel") == "Local/s@smeline-conference/n"
    assert announce.get("Data") == "smeline/escalate-no-answer"
    assert variables(announce)["SMELINE_ROOM"] == ROOM
    assert variables(announce)["CHANNEL(language)"] == "zh"
    (playback,) = rig.double.playbacks
    # Both heard it, together in the room.
    assert playback.room == ROOM and set(playback.heard_by) == {CALLER, AGENT}
    await until(lambda: rig.double.local_channels() == [])
    assert rig.double.members(ROOM) == {CALLER: "caller", AGENT: "agent"}
    assert HOLD_ROOM not in rig.double.conferences
    assert rig.escalations.view(LINKEDID).phase is Phase.IDLE  # type: ignore[union-attr]


async def test_busy_target_is_logged_and_a_new_escalation_may_follow(rig: Rig) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    rig.double.set_originate_outcome("Local/q-city@smeline-dial-target/n", "busy")
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.CITY), consult=False, actor_user_id=None
    )
    # Asterisk reports Reason 0 for busy and unknown alike (recorded).
    await rig.outcome_is("failed")
    await until(lambda: rig.escalations.view(LINKEDID).phase is Phase.IDLE)  # type: ignore[union-attr]
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.EXPERT), consult=False, actor_user_id=None
    )
    await until(lambda: rig.escalations.view(LINKEDID).phase is Phase.MERGED)  # type: ignore[union-attr]
    # Already in the room: no second Redirect.
    assert len(rig.actions("Redirect")) == 1


# --- the caller hangs up -------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["ringing", "merged", "consulting"])
async def test_caller_hanging_up_leaves_no_channel_behind(rig: Rig, when: str) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    if when == "ringing":
        rig.double.set_originate_outcome(EXPERT_CHANNEL, "no_answer")  # rings 30 s
    await rig.escalations.start(
        LINKEDID,
        TargetRequest(kind=TargetKind.EXPERT),
        consult=when == "consulting",
        actor_user_id=None,
    )
    await until(lambda: len(target_legs(rig)) == 2)
    if when == "merged":
        await until(lambda: rig.escalations.view(LINKEDID).phase is Phase.MERGED)  # type: ignore[union-attr]
    if when == "consulting":
        await until(lambda: rig.escalations.view(LINKEDID).answered)  # type: ignore[union-attr]
        (leg_one,) = [n for n in target_legs(rig) if n.endswith(";1")]
        # The agent briefs the expert in private; the caller waits alone.
        assert rig.double.members(ROOM) == {AGENT: "consult", leg_one: "party"}
        assert rig.double.members(HOLD_ROOM) == {CALLER: "caller"}

    await rig.double.far_end_hangs_up(CALLER)

    await until(lambda: rig.double.channels == {})
    assert rig.double.conferences == {}
    await rig.outcome_is("caller_left")
    hangups = {a.get("Channel") for a in rig.actions("Hangup")}
    if when != "merged":
        # Nothing in Asterisk would have ended these: smeline did.
        assert any(name and name.startswith("Local/e-") for name in hangups)


# --- one at a time ---------------------------------------------------------------------


async def test_a_second_escalation_while_one_is_in_progress_is_refused(rig: Rig) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    rig.double.set_originate_outcome(EXPERT_CHANNEL, "no_answer")
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.EXPERT), consult=False, actor_user_id=None
    )
    sent = len(rig.double.actions)
    with pytest.raises(EscalationInProgress):
        await rig.escalations.start(
            LINKEDID, TargetRequest(kind=TargetKind.CITY), consult=False, actor_user_id=None
        )
    assert len(rig.double.actions) == sent
    assert len(await rig.consultations()) == 1


async def test_two_simultaneous_escalations_of_one_call_start_only_one(rig: Rig) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    results = await asyncio.gather(
        *(
            rig.escalations.start(
                LINKEDID, TargetRequest(kind=k), consult=False, actor_user_id=None
            )
            for k in (TargetKind.CITY, TargetKind.PROVINCE)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, EscalationInProgress) for r in results) == 1
    assert len(await rig.consultations()) == 1


# --- private consultation, hand-off, drop, cancel -------------------------------------------------


async def test_private_consultation_then_merge(rig: Rig) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    view = await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.EXPERT), consult=True, actor_user_id=None
    )
    assert view.phase is Phase.CONSULTING
    # Caller alone in the hold room (marked: music on hold when alone), the
    # agent in the room as a marked "consult" user so the expert may join.
    await until(lambda: rig.escalations.view(LINKEDID).answered)  # type: ignore[union-attr]
    (leg_one,) = [n for n in target_legs(rig) if n.endswith(";1")]
    assert rig.double.members(HOLD_ROOM) == {CALLER: "caller"}
    assert rig.double.members(ROOM) == {AGENT: "consult", leg_one: "party"}
    (redirect,) = rig.actions("Redirect")
    assert (redirect.get("Channel"), redirect.get("ExtraChannel")) == (CALLER, AGENT)

    view = await rig.escalations.merge(LINKEDID)
    assert view.phase is Phase.MERGED
    # The caller came first, then the agent rejoined as end_marked: the expert
    # was never left in a room without a marked user.
    assert rig.double.members(ROOM) == {CALLER: "caller", AGENT: "agent", leg_one: "party"}
    assert HOLD_ROOM not in rig.double.conferences
    redirects = [a.get("Channel") for a in rig.actions("Redirect")]
    assert redirects == [CALLER, CALLER, AGENT]
    with pytest.raises(Exception) as refused:
        await rig.escalations.merge(LINKEDID)
    assert getattr(refused.value, "error_id", None) == "not_consulting"


async def test_agent_leaves_then_expert_hangs_up_and_the_caller_goes_to_the_survey(
    rig: Rig,
) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.EXPERT), consult=False, actor_user_id=None
    )
    await until(lambda: rig.escalations.view(LINKEDID).phase is Phase.MERGED)  # type: ignore[union-attr]
    await rig.escalations.agent_leave(LINKEDID)
    assert AGENT not in rig.double.channels
    (leg_one,) = [n for n in target_legs(rig) if n.endswith(";1")]
    assert rig.double.members(ROOM) == {CALLER: "caller", leg_one: "party"}
    await rig.outcome_is("agent_left", ended=False)

    await rig.double.far_end_hangs_up(leg_one)
    await until(lambda: rig.double.channels[CALLER].context == "smeline-survey")
    assert rig.double.local_channels() == []
    await rig.outcome_is("agent_left")


async def test_drop_lets_the_far_party_go_and_caller_and_agent_carry_on(rig: Rig) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.PROVINCE), consult=False, actor_user_id=None
    )
    await until(lambda: rig.escalations.view(LINKEDID).phase is Phase.MERGED)  # type: ignore[union-attr]
    view = await rig.escalations.drop_target(LINKEDID)
    assert view.phase is Phase.IDLE
    await until(lambda: rig.double.local_channels() == [])
    assert rig.double.members(ROOM) == {CALLER: "caller", AGENT: "agent"}
    await rig.outcome_is("dropped")


async def test_a_consultation_after_the_call_is_already_in_the_room(rig: Rig) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.PROVINCE), consult=False, actor_user_id=None
    )
    await until(lambda: rig.escalations.view(LINKEDID).phase is Phase.MERGED)  # type: ignore[union-attr]
    await rig.escalations.drop_target(LINKEDID)
    await until(lambda: rig.double.local_channels() == [])
    redirects = len(rig.actions("Redirect"))

    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.EXPERT), consult=True, actor_user_id=None
    )
    # The agent rejoined as a marked user before the caller left for the hold
    # room: the room was never without a marked user, nobody was ended.
    assert [a.get("Channel") for a in rig.actions("Redirect")[redirects:]] == [AGENT, CALLER]
    assert AGENT in rig.double.channels
    await until(lambda: rig.escalations.view(LINKEDID).answered)  # type: ignore[union-attr]
    (leg_one,) = [n for n in target_legs(rig) if n.endswith(";1")]
    assert rig.double.members(ROOM) == {AGENT: "consult", leg_one: "party"}
    assert rig.double.members(HOLD_ROOM) == {CALLER: "caller"}
    await rig.escalations.merge(LINKEDID)
    assert rig.double.members(ROOM) == {CALLER: "caller", AGENT: "agent", leg_one: "party"}


async def test_agent_hanging_up_during_a_consultation_ends_it_and_releases_the_caller(
    rig: Rig,
) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.EXPERT), consult=True, actor_user_id=None
    )
    await until(lambda: rig.escalations.view(LINKEDID).answered)  # type: ignore[union-attr]
    await rig.double.far_end_hangs_up(AGENT)
    # The expert was with the agent (the marked user): gone with them; the
    # caller, alone on hold, is let go to the survey.
    await until(lambda: rig.double.channels[CALLER].context == "smeline-survey")
    assert rig.double.local_channels() == []
    await rig.outcome_is("agent_left")


async def test_cancel_while_ringing_during_consultation_brings_the_caller_back(
    rig: Rig,
) -> None:
    await add_expert(rig.experts)
    await live_call(rig.double, rig.tracker)
    rig.double.set_originate_outcome(EXPERT_CHANNEL, "no_answer")
    await rig.escalations.start(
        LINKEDID, TargetRequest(kind=TargetKind.EXPERT), consult=True, actor_user_id=None
    )
    await until(lambda: len(target_legs(rig)) == 2)
    view = await rig.escalations.cancel(LINKEDID)
    assert view.phase is Phase.IDLE
    assert rig.double.local_channels() == []
    assert rig.double.members(ROOM) == {CALLER: "caller", AGENT: "agent"}
    await rig.outcome_is("dropped")


# --- HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def double() -> AsyncIterator[ConferenceDouble]:
    double = ConferenceDouble(bad_login_delay=0.05)
    for window in ("meijiang", "xingning", "city", "county-meijiang"):
        double.add_queue(window)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture
async def wired(database_url: str, aiohttp_client: Any, double: ConferenceDouble) -> Api:
    return await wired_api(database_url, aiohttp_client, double)


def _tracker(api: Api) -> CallTracker:
    service = api.client.server.app[keys.TELEPHONY].service
    assert service is not None
    return service.tracker


async def _expert_over_http(api: Api) -> int:
    status, body = await api.call(
        "POST",
        "/api/experts",
        api.admin,
        json={
            "name": "王律师",
            "phone": EXPERT_PHONE,
            "specialties": ["legal"],
            "schedule": ALWAYS,
        },
    )
    assert status == 201, body
    return int(body["id"])


ESCALATE = f"/api/telephony/calls/{LINKEDID}/escalations"


async def test_escalation_over_http_merge_and_conflict(
    wired: Api, double: ConferenceDouble
) -> None:
    expert_id = await _expert_over_http(wired)
    await live_call(double, _tracker(wired))
    supervisor = await wired.user("supervisor")
    status, body = await wired.call(
        "POST",
        ESCALATE,
        supervisor,
        json={"target_kind": "expert", "expert_id": expert_id, "consult": True},
    )
    assert status == 202, body
    assert body["phase"] == "consulting" and body["expert_id"] == expert_id
    status, body = await wired.call(
        "POST", ESCALATE, supervisor, json={"target_kind": "city", "consult": False}
    )
    assert status == 409 and body["error"]["id"] == "escalation_in_progress"
    service = wired.client.server.app[escalation_http.ESCALATIONS]
    await until(lambda: service.view(LINKEDID).answered)  # type: ignore[union-attr]
    status, body = await wired.call("POST", f"{ESCALATE}/merge", supervisor)
    assert status == 200 and body["phase"] == "merged", body
    status, body = await wired.call("POST", f"{ESCALATE}/cancel", supervisor)
    assert status == 409 and body["error"]["id"] == "nothing_to_cancel"
    status, body = await wired.call("POST", f"{ESCALATE}/drop", supervisor)
    assert status == 200 and body["phase"] == "idle", body


async def test_an_agent_escalates_only_their_own_call(wired: Api, double: ConferenceDouble) -> None:
    await live_call(double, _tracker(wired))
    agent = await wired.user("agent", window_code="meijiang")
    sent = len(double.actions)
    status, body = await wired.call(
        "POST", ESCALATE, agent, json={"target_kind": "city", "consult": False}
    )
    assert status == 403 and body["error"]["id"] == "not_your_call"
    assert len(double.actions) == sent


@pytest.mark.parametrize(
    ("payload", "status", "error_id"),
    [
        ({"target_kind": "city", "consult": False, "unknown": 1}, 422, "validation_failed"),
        ({"target_kind": "city", "consult": "yes"}, 422, "validation_failed"),
        ({"target_kind": "city"}, 422, "validation_failed"),
        ({"target_kind": "supervisor", "consult": False}, 422, "validation_failed"),
        ({"target_kind": "expert", "expert_id": "7", "consult": False}, 422, "validation_failed"),
        ({"target_kind": "expert", "expert_id": 0, "consult": False}, 422, "validation_failed"),
        ({"target_kind": "window", "consult": False}, 422, "validation_failed"),
        (
            {"target_kind": "city", "window_code": "xingning", "consult": False},
            422,
            "validation_failed",
        ),
        (
            {"target_kind": "window", "window_code": "Xing,ning", "consult": False},
            422,
            "validation_failed",
        ),
        ({"target_kind": "expert", "expert_id": 999999, "consult": False}, 404, "expert_not_found"),
        (
            {"target_kind": "window", "window_code": "nowhere", "consult": False},
            404,
            "window_not_found",
        ),
        (
            {"target_kind": "expert", "category_code": "astrology", "consult": False},
            409,
            "no_expert_available",
        ),
    ],
)
async def test_bad_escalation_input_is_refused_and_nothing_reaches_asterisk(
    wired: Api, double: ConferenceDouble, payload: dict[str, Any], status: int, error_id: str
) -> None:
    await live_call(double, _tracker(wired))
    sent = len(double.actions)
    got, body = await wired.call("POST", ESCALATE, wired.admin, json=payload)
    assert (got, body["error"]["id"]) == (status, error_id), body
    assert len(double.actions) == sent
    async with wired.client.server.app[keys.SESSIONMAKER]() as db:
        assert (await db.scalars(select(Consultation))).all() == []


async def test_unknown_call_is_404(wired: Api) -> None:
    status, body = await wired.call(
        "POST",
        "/api/telephony/calls/nope-1/escalations",
        wired.admin,
        json={"target_kind": "city", "consult": False},
    )
    assert status == 404 and body["error"]["id"] == "call_not_found"
    status, body = await wired.call(
        "POST", "/api/telephony/calls/nope-1/escalations/merge", wired.admin
    )
    assert status == 404


@pytest.mark.parametrize("action", ["", "/merge", "/leave", "/drop", "/cancel"])
async def test_without_asterisk_escalation_says_telephony_is_not_configured(
    database_url: str, aiohttp_client: Any, action: str
) -> None:
    client = await aiohttp_client(create_app(make_settings(database_url), background=False))
    api = Api(client)
    await api.bootstrap_admin()
    agent = await api.user("agent", window_code="xingning")
    # Even a body that would be refused: the 503 comes first.
    status, body = await api.call("POST", ESCALATE + action, agent, json={"nonsense": True})
    assert status == 503 and body["error"]["id"] == "telephony_not_configured"
    expert = await api.user("expert")
    status, _ = await api.call("POST", ESCALATE + action, expert, json={})
    assert status == 403
