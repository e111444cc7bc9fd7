"""queue_log parsing, on the real queue_log of the recordings."""

from __future__ import annotations

from datetime import UTC, datetime

from smeline.telephony.queue_log import parse_queue_log
from tests.asterisk_double import RECORDINGS


def _lines(name: str) -> list[str]:
    return (RECORDINGS / name).read_text(encoding="utf-8").splitlines()


def test_overflowed_call_waits_in_both_queues_and_is_answered_in_the_city() -> None:
    calls = parse_queue_log(_lines("queue_log-2.txt"), {"cctest-1795344509.3"})
    call = calls["cctest-1795344509.3"]
    assert call.queues == ["county-x", "city"]
    assert call.wait_seconds == 8  # EXITWITHTIMEOUT waittime 8 + CONNECT holdtime 0
    assert call.talk_seconds == 6
    assert call.agent == "Agent Two" and not call.abandoned
    assert call.ended_at == datetime.fromtimestamp(1795344524, tz=UTC)


def test_abandoned_call_is_marked_abandoned_with_its_wait() -> None:
    call = parse_queue_log(_lines("queue_log-2.txt"), {"cctest-1795344493.0"})[
        "cctest-1795344493.0"
    ]
    assert call.abandoned and call.wait_seconds == 5 and call.answered_at is None


def test_answered_call_from_the_first_batch() -> None:
    call = parse_queue_log(_lines("queue_log-1.txt"), {"cctest-1795343657.0"})[
        "cctest-1795343657.0"
    ]
    assert call.talk_seconds == 7 and call.wait_seconds == 0


def test_other_calls_and_garbage_lines_are_skipped() -> None:
    lines = [
        *_lines("queue_log-1.txt"),
        "garbage",
        "x|y",
        "notatime|cctest-1795343657.0|q|a|CONNECT|0",
    ]
    calls = parse_queue_log(lines, {"cctest-1795343657.0"})
    assert list(calls) == ["cctest-1795343657.0"]
