"""AMI wire format: framing and parsing, no I/O.

What the recordings in ``../shared/asterisk/`` show, and what this parser
therefore expects:

- the connection opens with one banner line ``Asterisk Call Manager/11.0.0\\r\\n``
  and no blank line after it;
- every message is ``Key: Value`` lines ending in ``\\r\\n`` and the message ends
  with an empty line (``\\r\\n\\r\\n``);
- keys can repeat (``Output:`` lines of a ``Command`` reply), so a message is an
  ordered list of pairs, not a dict;
- empty values arrive as ``Key: `` with a trailing space;
- a message that carries ``Event:`` is an event even when it also has
  ``Response:`` (``OriginateResponse``).

Bytes are split into messages *before* decoding, so a multi-byte UTF-8
character (a Chinese caller name) split across two TCP reads is decoded whole —
panoramisk decodes each read separately with ``errors='ignore'`` and loses it.
Lone LF line endings are accepted too: Asterisk never sends them (not recorded),
but being lenient on input costs nothing and a test double may.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

BANNER_PREFIX = b"Asterisk Call Manager/"
#: A message larger than this is treated as a protocol error (a runaway peer),
#: so a broken connection cannot make the reader buffer without limit. The
#: largest recorded message (a ``Command`` output) is far below it.
MAX_MESSAGE_BYTES = 1 << 20

_MESSAGE_END = re.compile(rb"\r?\n\r?\n")


class AmiProtocolError(Exception):
    """The peer sent something that is not AMI."""


class AmiMessage:
    """One AMI message: ordered ``(key, value)`` pairs, keys may repeat.

    Look-ups are case-insensitive, as Asterisk treats headers, with a fast
    path for the exact spelling Asterisk sends (a busy hour is tens of
    thousands of messages: bench/bench_ami_ingest.py).
    """

    __slots__ = ("_exact", "_lower", "fields")

    def __init__(self, fields: tuple[tuple[str, str], ...]) -> None:
        self.fields = fields
        # First value per key: reversed, so the first occurrence wins.
        self._exact: dict[str, str] = dict(reversed(fields))
        self._lower: dict[str, str] | None = None

    def _lowered(self) -> dict[str, str]:
        lower = self._lower
        if lower is None:
            lower = self._lower = {k.lower(): v for k, v in reversed(self.fields)}
        return lower

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AmiMessage) and other.fields == self.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def __repr__(self) -> str:
        return f"AmiMessage({self.fields!r})"

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]] | dict[str, str]) -> AmiMessage:
        items = pairs.items() if isinstance(pairs, dict) else pairs
        return cls(tuple((str(k), str(v)) for k, v in items))

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of ``key`` (case-insensitive, as Asterisk treats headers)."""
        value = self._exact.get(key)
        if value is not None:
            return value
        return self._lowered().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        wanted = key.lower()
        return [v for k, v in self.fields if k.lower() == wanted]

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def is_event(self) -> bool:
        return "Event" in self._exact or "event" in self._lowered()

    @property
    def is_response(self) -> bool:
        return not self.is_event and self.get("Response") is not None

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def as_dict(self) -> dict[str, str]:
        """First value per key, original spelling of the key."""
        out: dict[str, str] = {}
        for key, value in self.fields:
            out.setdefault(key, value)
        return out

    def encode(self) -> bytes:
        """Wire form with CRLF line endings and the blank-line terminator."""
        return encode_message(self.fields)


def _clean(text: str) -> str:
    # CR or LF inside a value would let a caller-controlled string (a caller
    # name, a variable) inject extra headers or a whole extra action.
    return text.replace("\r", " ").replace("\n", " ")


def encode_message(pairs: Iterable[tuple[str, str]] | dict[str, str]) -> bytes:
    items = pairs.items() if isinstance(pairs, dict) else pairs
    lines = [f"{_clean(str(k))}: {_clean(str(v))}" for k, v in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse_message(block: bytes) -> AmiMessage:
    """Parse one message (without its terminating blank line)."""
    text = block.decode("utf-8", errors="replace")
    lines = text.split("\r\n") if "\r" in text else text.split("\n")
    pairs: list[tuple[str, str]] = []
    append = pairs.append
    for line in lines:
        # "Key: value" — exactly one space after the colon is the separator;
        # "Key: " is an empty value (recorded). The common case first.
        key, sep, value = line.partition(": ")
        if sep:
            append((key, value))
            continue
        line = line.rstrip("\r")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if sep:
            append((key.strip(), value))
        else:
            # Not recorded from Asterisk; keep the line rather than lose data.
            append(("", line))
    return AmiMessage(tuple(pairs))


class AmiParser:
    """Incremental parser: feed bytes as they arrive, get whole messages back."""

    def __init__(self, *, expect_banner: bool = True) -> None:
        self._buffer = bytearray()
        # Where the next search for a message end starts: a large message
        # arriving in small reads is scanned once, not once per read.
        self._scan_from = 0
        self._expect_banner = expect_banner
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._buffer += data
        return list(self._drain())

    def _drain(self) -> Iterator[AmiMessage]:
        buffer = self._buffer
        if self._expect_banner:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > 1024:
                    raise AmiProtocolError("no AMI banner")
                return
            line = bytes(buffer[:end]).rstrip(b"\r")
            if not line.startswith(BANNER_PREFIX):
                raise AmiProtocolError(f"not an AMI banner: {line[:80]!r}")
            self.banner = line.decode("ascii", errors="replace")
            del buffer[: end + 1]
            self._expect_banner = False
        start = 0
        while True:
            # Skip blank lines between messages (not recorded, harmless).
            while start < len(buffer) and buffer[start] in b"\r\n":
                start += 1
            match = _MESSAGE_END.search(buffer, max(start, self._scan_from))
            if match is None:
                # The terminator is at most 4 bytes: resume just before the end.
                self._scan_from = max(start, len(buffer) - 3)
                break
            self._scan_from = 0
            block = bytes(buffer[start : match.start()])
            start = match.end()
            if block.startswith(BANNER_PREFIX):
                # A recording of several connections holds a banner per
                # connection, glued to the first reply.
                line, _, block = block.partition(b"\n")
                self.banner = line.rstrip(b"\r").decode("ascii", errors="replace")
            if len(block) > MAX_MESSAGE_BYTES:
                raise AmiProtocolError("AMI message too large")
            yield parse_message(block)
        del buffer[:start]
        self._scan_from = max(0, self._scan_from - start)
        if len(buffer) > MAX_MESSAGE_BYTES:
            raise AmiProtocolError("AMI message too large")


def iter_raw_recording(data: bytes, *, chunk: int | None = None) -> Iterator[AmiMessage]:
    """Parse a whole recorded byte stream (``*.raw``), optionally in chunks."""
    parser = AmiParser(expect_banner=data.startswith(BANNER_PREFIX))
    if chunk is None:
        yield from parser.feed(data)
        return
    for offset in range(0, len(data), chunk):
        yield from parser.feed(data[offset : offset + chunk])
