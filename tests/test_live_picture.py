"""The live picture of queue members, replayed from real recordings."""

from __future__ import annotations

from smeline.telephony.live import DeviceStatus, LivePicture
from tests.recorded import timed_messages


def _replay_until(name: str, stop: str | None = None) -> LivePicture:
    picture = LivePicture()
    for at, message in timed_messages(name):
        if stop is not None and message.action_id == stop:
            break
        if message.is_event and message.action_id is None:
            picture.apply(message, at)
    return picture


def test_paused_member_with_reason_is_not_ready() -> None:
    # dynmembers: QueueAdd agent2 to "dyn", then QueuePause with Reason lunch.
    picture = _replay_until("recordings-2--ami-dynmembers", stop="queuestatus-7")
    member = picture.member("dyn", "PJSIP/agent2")
    assert member is not None
    assert member.paused and member.paused_reason == "lunch"
    assert not member.ready


def test_queue_status_rebuild_gives_the_same_member_states_as_the_events() -> None:
    messages = timed_messages("recordings-2--ami-dynmembers")
    picture = _replay_until("recordings-2--ami-dynmembers", stop="queuestatus-7")
    items = [m for _, m in messages if m.action_id == "queuestatus-7" and m.is_event]
    rebuilt = LivePicture()
    rebuilt.rebuild(items, messages[0][0])
    for key, member in rebuilt.members.items():
        live = picture.members.get(key)
        assert live is not None, key
        assert (live.paused, live.paused_reason) == (member.paused, member.paused_reason)
    assert rebuilt.agents_ready("dyn") == picture.agents_ready("dyn")


def test_unregistered_phone_makes_its_member_unavailable() -> None:
    # register recording: unREGISTER → QueueMemberStatus Status 5 (the
    # recording then removes the member: stop before that).
    picture = _replay_until("recordings-2--ami-register", stop="queueremove-12")
    members = [m for m in picture.members.values() if m.interface == "PJSIP/agent3"]
    assert members and all(m.status is DeviceStatus.UNAVAILABLE for m in members)
    assert all(not m.ready for m in members)


def test_waiting_callers_follow_join_and_leave() -> None:
    picture = LivePicture()
    seen_waiting = False
    for at, message in timed_messages("recordings-2--ami-overflow"):
        if message.is_event and message.action_id is None:
            picture.apply(message, at)
            if message.event == "QueueCallerJoin":
                seen_waiting = bool(picture.waiting[message["Queue"]])
    assert seen_waiting
    assert all(not callers for callers in picture.waiting.values())


def test_removed_member_leaves_the_picture() -> None:
    picture = _replay_until("recordings-2--ami-register")
    assert not [m for m in picture.members.values() if m.interface == "PJSIP/agent3"]
