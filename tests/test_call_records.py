"""Replays of a real Asterisk's AMI recordings through the parser and the
call-record builder (tests/recordings/, see its README)."""

from __future__ import annotations

from datetime import datetime

import pytest

from smeline.telephony.ami_protocol import AmiMessage
from smeline.telephony.calls import (
    CallOutcome,
    CallRecordData,
    CallTracker,
    SurveyAnswer,
)
from tests.recorded import timed_messages


def window_of(queue: str) -> str:
    # The recordings' dialplan named queues "county-<window>" and "city".
    return queue.removeprefix("county-")


def replay(
    name: str, *, chunk: int | None = None, survey_variable: str = "SMELINE_SURVEY"
) -> tuple[CallTracker, list[CallRecordData], list[str]]:
    tracker = CallTracker(window_of_queue=window_of, survey_variable=survey_variable)
    names: list[str] = []
    for at, message in timed_messages(name, chunk=chunk):
        names.extend(e.name for e in tracker.feed(message, at))
    return tracker, tracker.drain_finished(), names


def test_recorded_queued_call_gives_one_answered_record_with_wait_and_talk_seconds() -> None:
    tracker, records, events = replay("recordings--ami-events-call")
    assert len(records) == 1
    call = records[0]
    assert call.linkedid == "cctest-1795343657.0"
    assert call.outcome is CallOutcome.ANSWERED
    assert call.wait_seconds == 0  # AgentConnect HoldTime: 0
    assert call.talk_seconds == 7  # AgentComplete TalkTime: 7
    assert call.windows == ["meijiang"]
    assert call.agent_interface == "PJSIP/agent1"
    assert call.agent_name == "Agent One"
    assert call.caller_number == "sipp"
    assert call.answered_at is not None and call.ended_at is not None
    assert call.ended_at > call.answered_at
    # handle time on the agent's leg: AgentConnect 10:34:18.765 → its Hangup 10:34:25.709
    assert call.handle_seconds == 7
    assert tracker.calls == {} and tracker.channels == {}
    assert events.count("call.queued") == 1
    assert events.count("call.answered") == 1
    assert events.count("call.ended") == 1
    assert "call.abandoned" not in events


@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
def test_parsing_in_any_chunk_size_gives_the_same_record(chunk: int | None) -> None:
    _, whole, _ = replay("recordings--ami-events-call")
    _, chunked, _ = replay("recordings--ami-events-call", chunk=chunk)
    assert [r.row() for r in chunked] == [r.row() for r in whole]


@pytest.mark.parametrize("name", ["recordings--ami-confbridge", "recordings--ami-confbridge-race"])
def test_conference_recording_gives_one_record_with_the_escalation_attached(name: str) -> None:
    tracker, records, events = replay(name)
    assert len(records) == 1, [r.linkedid for r in records]
    call = records[0]
    assert call.outcome is CallOutcome.ANSWERED
    assert len(call.escalations) == 1
    escalation = call.escalations[0]
    assert escalation.channel.startswith("Local/party@third-")
    assert escalation.joined_at is not None and escalation.left_at is not None
    assert call.is_joint
    # AgentComplete comes when the caller hangs up; TalkTime covers the conference.
    assert call.talk_seconds >= 10
    assert tracker.calls == {} and tracker.channels == {}
    assert "conference.member_joined" in events
    assert "conference.member_left" in events


def test_abandon_recording_gives_an_abandoned_record() -> None:
    tracker, records, events = replay("recordings-2--ami-abandon")
    assert len(records) == 1
    call = records[0]
    assert call.outcome is CallOutcome.ABANDONED
    assert call.wait_seconds == 5  # QueueCallerAbandon HoldTime: 5
    assert call.answered_at is None and call.agent_interface is None
    assert not call.overflowed
    assert events.count("call.abandoned") == 1
    assert tracker.calls == {}


def test_overflow_recording_gives_one_answered_record_whose_wait_covers_both_queues() -> None:
    _, records, events = replay("recordings-2--ami-overflow")
    assert len(records) == 1
    call = records[0]
    assert call.outcome is CallOutcome.ANSWERED
    assert call.overflowed
    assert call.queues == ["county-x", "city"]
    assert call.windows == ["x", "city"]
    assert call.answered_queue == "city"
    assert call.wait_seconds == 8  # 8 s in county-x (timeout) + 0 s in city
    assert call.talk_seconds == 6
    # A queue timeout also emits QueueCallerAbandon: not an abandoned call.
    assert "call.abandoned" not in events
    assert events.count("call.overflowed") == 1
    assert events.count("call.queue_timeout") == 1


def test_survey_recording_stores_satisfied() -> None:
    # The recording's dialplan stored the digit in SURVEY (ours: SMELINE_SURVEY).
    _, records, _ = replay("recordings-2--ami-survey", survey_variable="SURVEY")
    assert len(records) == 1
    call = records[0]
    assert call.survey is SurveyAnswer.SATISFIED
    assert call.outcome is CallOutcome.ANSWERED
    assert call.talk_seconds == 3


def _without_survey_digit(
    messages: list[tuple[datetime, AmiMessage]],
) -> list[tuple[datetime, AmiMessage]]:
    """The survey call as if the caller hung up before pressing a key: the
    dialplan had marked the survey offered, no digit was stored."""
    out: list[tuple[datetime, AmiMessage]] = []
    for at, message in messages:
        if message.event == "VarSet" and message.get("Variable") == "SURVEY":
            continue
        if message.event == "VarSet" and message.get("Variable") == "QUEUESTATUS":
            fields = [
                (k, "SMELINE_SURVEY" if k == "Variable" else "offered" if k == "Value" else v)
                for k, v in message.fields
            ]
            out.append((at, message))
            out.append((at, AmiMessage(tuple(fields))))
            continue
        out.append((at, message))
    return out


def test_caller_hanging_up_during_the_survey_counts_as_no_answer_never_dissatisfied() -> None:
    tracker = CallTracker(window_of_queue=window_of)
    for at, message in _without_survey_digit(timed_messages("recordings-2--ami-survey")):
        tracker.feed(message, at)
    (call,) = tracker.drain_finished()
    assert call.survey is SurveyAnswer.NO_ANSWER


def test_replaying_the_same_stream_twice_gives_the_same_rows() -> None:
    for name in (
        "recordings--ami-events-call",
        "recordings--ami-confbridge",
        "recordings-2--ami-overflow",
        "recordings-2--ami-abandon",
    ):
        _, first, _ = replay(name)
        _, second, _ = replay(name)
        assert [r.row() for r in first] == [r.row() for r in second]


def test_reconnect_reconcile_closes_calls_whose_channels_are_gone() -> None:
    tracker = CallTracker(window_of_queue=window_of)
    messages = timed_messages("recordings--ami-events-call")
    # Stop listening right after the agent answered (BridgeEnter ×2).
    cut = next(i for i, (_, m) in enumerate(messages) if m.event == "HangupRequest")
    for at, message in messages[:cut]:
        tracker.feed(message, at)
    assert len(tracker.calls) == 1
    # After the gap CoreShowChannels lists nothing: the call ended meanwhile.
    at = messages[-1][0]
    events = tracker.reconcile(set(), at)
    assert [e.name for e in events] == ["call.ended"]
    (call,) = tracker.drain_finished()
    assert call.outcome is CallOutcome.ANSWERED and call.ended_at == at
    assert tracker.calls == {} and tracker.channels == {}


def test_reconcile_keeps_calls_that_are_still_live() -> None:
    tracker = CallTracker(window_of_queue=window_of)
    messages = timed_messages("recordings--ami-events-call")
    cut = next(i for i, (_, m) in enumerate(messages) if m.event == "HangupRequest")
    for at, message in messages[:cut]:
        tracker.feed(message, at)
    live = {"cctest-1795343657.0", "cctest-1795343658.1"}
    assert tracker.reconcile(live, messages[cut][0]) == []
    assert len(tracker.calls) == 1


def test_every_event_the_tracker_emits_matches_its_registered_schema() -> None:
    from smeline.telephony.events import EVENTS

    seen: set[str] = set()
    for name in (
        "recordings--ami-events-call",
        "recordings--ami-confbridge",
        "recordings--ami-confbridge-race",
        "recordings-2--ami-overflow",
        "recordings-2--ami-abandon",
        "recordings-2--ami-survey",
        "recordings-2--ami-dynmembers",
    ):
        tracker = CallTracker(window_of_queue=window_of)
        for at, message in timed_messages(name):
            for event in tracker.feed(message, at):
                EVENTS[event.name].model_validate(event.payload)
                seen.add(event.name)
    assert seen == set(EVENTS)


def _split_at_gap(name: str) -> tuple[list[AmiMessage], list[tuple[datetime, AmiMessage]]]:
    """The recording's CoreShowChannel answer (taken while the call was
    bridged) and the events after it, as if smeline connected in between."""
    messages = timed_messages(name)
    listing = [m for _, m in messages if m.event == "CoreShowChannel"]
    last = max(i for i, (_, m) in enumerate(messages) if m.event == "CoreShowChannelsComplete")
    return listing, messages[last + 1 :]


def test_a_call_that_started_while_smeline_was_away_is_adopted_and_recorded() -> None:
    listing, rest = _split_at_gap("recordings--ami-events-call")
    tracker = CallTracker(window_of_queue=window_of)
    events = tracker.adopt_live(listing, rest[0][0])
    assert [e.name for e in events] == ["call.answered"]
    for at, message in rest:
        tracker.feed(message, at)
    (call,) = tracker.drain_finished()
    assert call.outcome is CallOutcome.ANSWERED and call.talk_seconds == 7
    assert call.windows == ["meijiang"]
    assert tracker.calls == {} and tracker.channels == {}


def test_adopting_a_call_that_is_already_known_changes_nothing() -> None:
    messages = timed_messages("recordings--ami-events-call")
    tracker = CallTracker(window_of_queue=window_of)
    last = max(i for i, (_, m) in enumerate(messages) if m.event == "CoreShowChannelsComplete")
    for at, message in messages[: last + 1]:
        tracker.feed(message, at)
    before = tracker.calls["cctest-1795343657.0"].row()
    listing = [m for _, m in messages if m.event == "CoreShowChannel"]
    assert tracker.adopt_live(listing, messages[last][0]) == []
    assert tracker.calls["cctest-1795343657.0"].row() == before


def test_conference_rebuilt_after_a_reconnect_attaches_the_expert_once() -> None:
    messages = timed_messages("recordings--ami-confbridge")
    listed = [m for _, m in messages if m.event == "ConfbridgeList"]
    tracker = CallTracker(window_of_queue=window_of)
    cut = next(i for i, (_, m) in enumerate(messages) if m.event == "ConfbridgeStart")
    for at, message in messages[:cut]:
        tracker.feed(message, at)  # smeline saw the call up to the redirect, then lost AMI
    tracker.restore_conference("testconf", listed, messages[cut][0])
    tracker.restore_conference("testconf", listed, messages[cut][0])  # a second reconnect
    (call,) = tracker.calls.values()
    assert len(call.escalations) == 1 and call.is_joint


def test_a_far_leg_that_names_its_call_first_is_still_one_escalation() -> None:
    """The conference recording, with the originated Local leg announcing the
    call's Linkedid (SMELINE_LINKEDID, as smeline's Originate sets it) right
    after its Newchannel — before it joins the room."""
    tracker = CallTracker(window_of_queue=window_of)
    for at, message in timed_messages("recordings--ami-confbridge"):
        tracker.feed(message, at)
        if message.event == "Newchannel" and (message.get("Channel") or "").endswith(";1"):
            fields = [(k, v) for k, v in message.fields if k not in ("Event", "Privilege")]
            varset = AmiMessage(
                (
                    ("Event", "VarSet"),
                    *fields,
                    ("Variable", "SMELINE_LINKEDID"),
                    ("Value", "cctest-1795343804.11"),
                )
            )
            tracker.feed(varset, at)
    (call,) = tracker.drain_finished()
    assert len(call.escalations) == 1 and call.is_joint
    assert call.escalations[0].channel.startswith("Local/party@third-")
