"""Replaying the recordings of a real Asterisk (tests/recordings/)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from smeline.telephony.ami_protocol import AmiMessage, iter_raw_recording
from tests.asterisk_double import RECORDINGS

RECORDING_DAY = "2026-11-22"  # every recording was captured that day (UTC)
_RECV = re.compile(r"^### (\d\d:\d\d:\d\d\.\d+) << (?:\w+:)?RECV", re.MULTILINE)


def raw_messages(name: str, *, chunk: int | None = None) -> list[AmiMessage]:
    """Every message Asterisk sent, parsed from the exact bytes (``*.ami``)."""
    return list(iter_raw_recording((RECORDINGS / f"{name}.ami").read_bytes(), chunk=chunk))


def timed_messages(name: str, *, chunk: int | None = None) -> list[tuple[datetime, AmiMessage]]:
    """The raw messages with the receive time from the annotated ``.txt``.

    The annotated file has one ``<< RECV`` block per message, in the same
    order as the raw bytes; the banner is not a message.
    """
    messages = raw_messages(name, chunk=chunk)
    text = (RECORDINGS / f"{name}.txt").read_text(encoding="utf-8")
    stamps = [
        datetime.fromisoformat(f"{RECORDING_DAY}T{m.group(1)}").replace(tzinfo=UTC)
        for m in _RECV.finditer(text)
    ]
    if len(stamps) != len(messages):
        raise AssertionError(f"{name}: {len(stamps)} RECV blocks, {len(messages)} raw messages")
    return list(zip(stamps, messages, strict=True))
