"""A small FastAGI server that never leaves a caller on a dead line.

Asterisk's ``AGI(agi://host:port/route?tenant=demo,arg-one,arg two)`` opens a
TCP connection, writes an environment block and then waits for commands. What
the recordings in ``tests/recordings/`` show, and what this module relies on:

- the environment is ``agi_key: value`` lines ending in ``\\n`` (never CRLF),
  closed by an empty line; an empty value is ``agi_accountcode: `` with the
  trailing space;
- ``agi_network_script`` keeps the query string (``route?tenant=demo``) and the
  dialplan arguments arrive as ``agi_arg_1``, ``agi_arg_2``…;
- every command gets one reply line ``200 result=…`` with an optional
  ``(data)`` and/or ``endpos=N``; ``510 Invalid or unknown command``; ``511
  Command Not Permitted on a dead channel or intercept routine``; or a
  multi-line ``520-…`` usage block ended by ``520 End of proper usage.``;
- when the caller hangs up while the script runs, Asterisk writes an
  unprompted ``HANGUP`` line; it can arrive before the reply of the next
  command, which is still answered;
- once connected, Asterisk waits for the script for ever: it only times out
  the *connection*. A slow or crashed script therefore keeps a caller in
  silence, which is why this server enforces a per-step think deadline and
  applies a route's fallback variables when a handler is too slow or fails.

panoramisk's FastAGI server spins at 100 % CPU when a client connects and
closes without an environment, cannot run plain functions as routes and routes
only on the exact ``agi_network_script`` (query string included); this one has
none of those bugs (see ``tests/test_fastagi.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import re
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

from smeline.masking import mask_phone, mask_phones_in_text

logger = logging.getLogger(__name__)

#: Asterisk reads each command with ``fgets()`` into a 2048-byte buffer
#: (``AGI_BUF_LEN`` in res_agi.c): a longer line is cut and the remainder is
#: read as a *second command*. Lines (with their ``\n``) are kept below that.
#: From Asterisk's source, not recorded.
MAX_COMMAND_BYTES = 2047
#: Longest quoted value (escapes included) a helper puts on a command line.
MAX_VALUE_BYTES = 1024
#: Bound on the environment block's line count (the recorded one has 24 lines).
MAX_ENV_LINES = 256
#: Bound on one reply line; the longest recorded one is a 520 usage line.
MAX_REPLY_LINE_BYTES = 65536
#: Bound on the lines of one 520 usage block (the recorded one has two).
MAX_USAGE_LINES = 200
#: Time allowed to flush and close a connection before it is aborted.
CLOSE_TIMEOUT = 1.0

_ENV_NAME_RE = re.compile(rb"agi_[a-z0-9_]{1,64}")
#: Names already checked (Asterisk sends the same ~25 on every session).
_ENV_NAMES: dict[bytes, str] = {}
_REPLY_RE = re.compile(r"(\d{3})(?:([ -])(.*))?")
_INT_RE = re.compile(r"-?\d+")
_ENDPOS_RE = re.compile(r"(.*?)\s*endpos=(-?\d+)")
_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,64}(?:\([A-Za-z0-9_,.\-]{0,64}\))?")
_SOUND_RE = re.compile(r"[A-Za-z0-9_/.\-]{1,255}")
_APP_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
_DTMF_RE = re.compile(r"[0-9*#A-D]{0,16}")
_DIGITS_RE = re.compile(r"[0-9*#A-D]{0,1024}")
_FORBIDDEN_IN_LINE = re.compile(r"[\r\n\x00]")
#: Nothing to escape or drop in it.
_PLAIN_ARG = re.compile(r'[^\\"\r\n\x00]*')


# --------------------------------------------------------------------------- errors


class AgiError(Exception):
    """Base of every FastAGI error; ``reply`` is the reply that caused it, if any."""

    def __init__(self, message: str, reply: AgiResult | None = None) -> None:
        super().__init__(message)
        self.reply = reply


class AgiCommandError(AgiError):
    """``510 Invalid or unknown command``."""


class AgiUsageError(AgiError):
    """``520``: Asterisk printed the command's usage; ``usage`` holds its lines."""

    def __init__(self, message: str, reply: AgiResult, usage: tuple[str, ...]) -> None:
        super().__init__(message, reply)
        self.usage = usage


class AgiChannelDead(AgiError):
    """``511`` (command not permitted on a dead channel) or the caller hung up."""


class AgiConnectionClosed(AgiError):
    """Asterisk closed the connection, or did not answer within ``reply_timeout``."""


class AgiProtocolError(AgiError):
    """The peer sent something that is not a FastAGI reply."""


class AgiCommandFailed(AgiError):
    """``result=-1`` on a channel not known to be dead (e.g. a missing sound file)."""


class AgiDeadlineExceeded(AgiError):
    """The handler exceeded its think deadline; the server took the session over."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class AgiResult:
    """One parsed reply. ``result`` is the raw text after ``result=`` (may be empty)."""

    code: int
    result: str
    data: str | None
    endpos: int | None
    raw: str

    @property
    def int_result(self) -> int | None:
        """``result`` as an int, or None when it is not one (``result=`` of GET DATA)."""
        return int(self.result) if _INT_RE.fullmatch(self.result) else None

    @classmethod
    def parse(cls, line: str) -> AgiResult:
        """Parse one reply line (the first one of a 520 block).

        Recorded shapes: ``200 result=0``, ``200 result=1 (meijiang)``,
        ``200 result=-1 endpos=0``, ``200 result=53 endpos=8000``,
        ``200 result= (timeout)``, ``200 result=``. ``(data)`` always ends the
        line unless ``endpos=`` follows it, so a value containing ``)`` or
        ``endpos=`` is still read whole.
        """
        match = _REPLY_RE.fullmatch(line)
        if match is None:
            raise AgiProtocolError(f"not a FastAGI reply: {line[:80]!r}")
        code = int(match.group(1))
        rest = match.group(3) or ""
        if code != 200:
            return cls(code=code, result="", data=None, endpos=None, raw=line)
        if not rest.startswith("result="):
            raise AgiProtocolError(f"200 reply without result=: {line[:80]!r}")
        result, _, tail = rest[len("result=") :].partition(" ")
        data: str | None = None
        endpos: int | None = None
        tail = tail.strip()
        if tail and not tail.endswith(")"):
            ends = _ENDPOS_RE.fullmatch(tail)
            if ends is not None:
                endpos = int(ends.group(2))
                tail = ends.group(1)
        if tail.startswith("(") and tail.endswith(")"):
            data = tail[1:-1]
        return cls(code=code, result=result, data=data, endpos=endpos, raw=line)


@dataclass(frozen=True)
class AgiRequest:
    """The environment Asterisk sent, with the route, query string and arguments."""

    env: dict[str, str]
    #: Path part of ``agi_network_script`` without the query, leading ``/`` stripped.
    script: str
    #: The query string of the script, first value of each key.
    query: dict[str, str]
    #: ``agi_arg_1`` … ``agi_arg_N`` in order.
    args: list[str]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgiRequest:
        raw = env.get("agi_network_script")
        if raw is None:
            # Not recorded: every recorded session carries agi_network_script.
            # Fall back to the path of agi_request (agi://host:port/script?q).
            parts = urlsplit(env.get("agi_request", ""))
            raw = parts.path + (f"?{parts.query}" if parts.query else "")
        path, _, query_string = raw.partition("?")
        query = {
            key: values[0]
            for key, values in parse_qs(
                query_string, keep_blank_values=True, max_num_fields=64
            ).items()
        }
        args: list[str] = []
        while (arg := env.get(f"agi_arg_{len(args) + 1}")) is not None:
            args.append(arg)
        return cls(env=dict(env), script=path.lstrip("/"), query=query, args=args)

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def callerid(self) -> str:
        return self.env.get("agi_callerid", "")

    @property
    def calleridname(self) -> str:
        return self.env.get("agi_calleridname", "")

    @property
    def dnid(self) -> str:
        return self.env.get("agi_dnid", "")

    @property
    def context(self) -> str:
        return self.env.get("agi_context", "")

    @property
    def extension(self) -> str:
        return self.env.get("agi_extension", "")

    @property
    def language(self) -> str:
        return self.env.get("agi_language", "")

    def __repr__(self) -> str:
        # The environment holds caller numbers: never print it whole.
        return (
            f"AgiRequest(script={self.script!r}, query={self.query!r}, "
            f"channel={_masked(self.channel)!r}, uniqueid={self.uniqueid!r}, "
            f"callerid={mask_phone(self.callerid)!r}, args={len(self.args)})"
        )


@dataclass(frozen=True, slots=True)
class GetDataReply:
    """Digits of GET DATA; ``timed_out`` when Asterisk added ``(timeout)``."""

    digits: str
    timed_out: bool


# --------------------------------------------------------------------------- quoting


def agi_quote(value: str, *, max_bytes: int = MAX_VALUE_BYTES) -> str:
    """Quote one argument so that Asterisk's ``parse_args()`` reads it back whole.

    Inside double quotes Asterisk treats ``\\`` as an escape of the next
    character, so ``\\`` and ``"`` are escaped. CR and LF would end the command
    line and let a caller-controlled value (a caller name, digits) inject a
    second command; NUL would cut the C string: CR/LF become spaces, NUL is
    dropped. The value is cut on a character boundary so that the quoted form
    stays within ``max_bytes``.
    """
    if value.isascii() and len(value) + 2 <= max_bytes and _PLAIN_ARG.fullmatch(value):
        return '"' + value + '"'  # the common case: codes, digits, prompt names
    text = _FORBIDDEN_IN_LINE.sub(lambda m: "" if m.group() == "\x00" else " ", value)
    out: list[str] = []
    size = 2
    for char in text:
        piece = "\\" + char if char in '\\"' else char
        length = len(piece.encode("utf-8"))
        if size + length > max_bytes:
            break
        out.append(piece)
        size += length
    return '"' + "".join(out) + '"'


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ValueError(f"invalid {what}: {value!r:.80}")
    return value


def _check_int(value: int, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def _check_command(text: str) -> str:
    if _FORBIDDEN_IN_LINE.search(text):
        raise ValueError("an AGI command is one line: CR, LF and NUL are not allowed")
    if not text.strip():
        raise ValueError("empty AGI command")
    if len(text.encode("utf-8")) + 1 > MAX_COMMAND_BYTES:
        raise ValueError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes")
    return text


def _masked(text: str) -> str:
    return mask_phones_in_text(text)


# --------------------------------------------------------------------------- wire


class _AgiConnection:
    """One FastAGI connection: writes command lines, reads replies."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply_timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._reply_timeout = reply_timeout
        self.lock = asyncio.Lock()
        #: Asterisk sent the unprompted ``HANGUP`` line.
        self.hung_up = False
        #: The channel cannot be used any more (HANGUP, 511, our own HANGUP...).
        self.dead = False
        #: The reply stream is out of step (timeout, garbage, cancelled mid-command).
        self.broken = False

    async def exchange(self, line: str) -> AgiResult:
        if self.broken:
            raise AgiConnectionClosed("the FastAGI connection is no longer usable")
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug("AGI >> %s", _masked(line))
        try:
            self._writer.write(line.encode("utf-8") + b"\n")
            async with asyncio.timeout(self._reply_timeout):
                await self._writer.drain()
                reply = await self._read_reply()
        except TimeoutError:
            self.broken = True
            raise AgiConnectionClosed(
                f"no reply from Asterisk within {self._reply_timeout:g} s"
            ) from None
        except (ConnectionError, OSError) as exc:
            self.broken = True
            raise AgiConnectionClosed(f"connection lost: {exc.__class__.__name__}") from None
        except (AgiError, asyncio.CancelledError):
            # A reply half read (or not read) would be taken for the reply of
            # the next command: nothing more may be sent on this connection.
            self.broken = True
            raise
        if debug:
            logger.debug("AGI << %s", _masked(reply.raw))
        return reply

    async def _read_reply(self) -> AgiResult:
        line = await self._read_line()
        while line == "HANGUP":
            # Asterisk writes this line on its own when it notices the hang-up
            # between two commands (recorded: after the 200 result=-1 of
            # WAIT FOR DIGIT, before the reply of the next command). It is a
            # notice, not a reply: the command's own reply still follows.
            self.hung_up = True
            self.dead = True
            line = await self._read_line()
        reply = AgiResult.parse(line)
        if reply.code == 520 and line.startswith("520-"):
            # Multi-line usage: every line up to "520 End of proper usage."
            # belongs to this reply; leaving one unread would shift all later
            # replies by one.
            lines = [line]
            while True:
                more = await self._read_line()
                lines.append(more)
                if more.startswith("520 "):
                    break
                if len(lines) > MAX_USAGE_LINES:
                    raise AgiProtocolError("520 usage block without its end line")
            reply = AgiResult(code=520, result="", data=None, endpos=None, raw="\n".join(lines))
        return reply

    async def _read_line(self) -> str:
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            self.broken = True
            raise AgiConnectionClosed("Asterisk closed the FastAGI connection") from None
        except asyncio.LimitOverrunError:
            raise AgiProtocolError("reply line too long") from None
        # Asterisk ends lines with a bare LF; a CR is tolerated, never expected.
        return raw[:-1].rstrip(b"\r").decode("utf-8", errors="replace")


class _ThinkWatchdog:
    """Measures the handler's own time between a reply and its next command.

    Only the handler's thinking counts: while a command is in flight (Asterisk
    playing a prompt, the caller pressing keys) the timer is off. A timer
    handle is cheaper than a polling task and fires exactly at the deadline.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline: float | None,
        on_expire: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._deadline = deadline
        self._on_expire = on_expire
        self._busy = 0
        self._started: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = False
        self.expired = False

    def start(self) -> None:
        """Thinking begins (the environment or a reply has just arrived)."""
        if self._deadline is None or self._stopped or self.expired:
            return
        self._started = self._loop.time()
        self._handle = self._loop.call_later(self._deadline, self._fire)

    def enter_command(self) -> None:
        if self._stopped or self._deadline is None:
            return
        if self.expired:
            raise AgiDeadlineExceeded("think deadline exceeded")
        if self._busy == 0:
            overdue = (
                self._started is not None and self._loop.time() - self._started > self._deadline
            )
            self._disarm()
            if overdue:
                # The handler blocked the event loop, so the timer could not
                # run; the step still took too long.
                self._fire()
                raise AgiDeadlineExceeded("think deadline exceeded")
        self._busy += 1

    def leave_command(self) -> None:
        if self._stopped or self._deadline is None:
            return
        self._busy = max(0, self._busy - 1)
        if self._busy == 0:
            self.start()

    def stop(self) -> None:
        self._stopped = True
        self._disarm()

    def _disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._started = None

    def _fire(self) -> None:
        if self._stopped or self.expired:
            return
        self.expired = True
        self._disarm()
        self._on_expire()


# --------------------------------------------------------------------------- session


class AgiSession:
    """What an async route handler talks to: one command at a time, typed helpers."""

    def __init__(
        self, connection: _AgiConnection, request: AgiRequest, watchdog: _ThinkWatchdog
    ) -> None:
        self._conn = connection
        self._watchdog = watchdog
        self._revoked = False
        self.request = request

    @property
    def hung_up(self) -> bool:
        """Asterisk sent the unprompted ``HANGUP`` line."""
        return self._conn.hung_up

    @property
    def dead(self) -> bool:
        """The channel is gone: HANGUP seen, a 511, a -1 from WAIT FOR DIGIT or our HANGUP."""
        return self._conn.dead

    def _revoke(self) -> None:
        self._revoked = True

    def _check_usable(self) -> None:
        if self._revoked:
            raise AgiDeadlineExceeded("this session was taken over by the server")

    async def command(self, text: str) -> AgiResult:
        """Send one command line and return its reply.

        Raises :class:`AgiCommandError` (510), :class:`AgiChannelDead` (511),
        :class:`AgiUsageError` (520), :class:`AgiConnectionClosed`.
        """
        line = _check_command(text)
        self._check_usable()
        self._watchdog.enter_command()
        try:
            async with self._conn.lock:
                self._check_usable()
                reply = await self._conn.exchange(line)
        finally:
            self._watchdog.leave_command()
        if reply.code == 200:
            return reply
        if reply.code == 510:
            raise AgiCommandError(f"Asterisk does not know the command: {reply.raw}", reply)
        if reply.code == 511:
            self._conn.dead = True
            raise AgiChannelDead(f"channel is dead: {reply.raw}", reply)
        if reply.code == 520:
            lines = tuple(reply.raw.split("\n"))
            raise AgiUsageError(f"invalid command syntax: {line[:80]}", reply, lines[1:-1])
        raise AgiProtocolError(f"unexpected reply code: {reply.raw[:80]}", reply)

    def _failed(self, reply: AgiResult, what: str) -> AgiError:
        if self._conn.dead:
            return AgiChannelDead(f"{what}: channel is dead", reply)
        return AgiCommandFailed(f"{what} failed: {reply.raw}", reply)

    # -- typed helpers (command forms as recorded) --------------------------------

    async def answer(self) -> None:
        reply = await self.command("ANSWER")
        if reply.int_result == -1:
            raise self._failed(reply, "ANSWER")

    async def noop(self, text: str = "") -> None:
        await self.command(f"NOOP {agi_quote(text)}")

    async def verbose(self, text: str, level: int = 1) -> None:
        _check_int(level, 1, 4, "verbose level")
        await self.command(f"VERBOSE {agi_quote(text)} {level}")

    async def set_variable(self, name: str, value: str) -> None:
        _check(_NAME_RE, name, "variable name")
        await self.command(f"SET VARIABLE {name} {agi_quote(str(value))}")

    async def get_variable(self, name: str) -> str | None:
        """Value of a channel variable or function, None when unset (``result=0``)."""
        _check(_NAME_RE, name, "variable name")
        reply = await self.command(f"GET VARIABLE {name}")
        return reply.data if reply.result == "1" else None

    async def get_full_variable(self, expression: str) -> str | None:
        """Evaluate ``${...}`` expressions on this channel; None on ``result=0``."""
        reply = await self.command(f"GET FULL VARIABLE {agi_quote(expression)}")
        return reply.data if reply.result == "1" else None

    async def channel_status(self) -> int:
        reply = await self.command("CHANNEL STATUS")
        status = reply.int_result
        if status is None:
            raise AgiProtocolError(f"CHANNEL STATUS: {reply.raw}", reply)
        return status

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        """Play a sound file; return the digit that interrupted it, or None.

        Asterisk answers the ASCII code of the digit (``result=53`` for ``5``,
        recorded). A missing file answers ``200 result=-1 endpos=0`` (recorded)
        and Asterisk will end the whole AGI with ``AGISTATUS=FAILURE``: this
        raises :class:`AgiCommandFailed` — or :class:`AgiChannelDead` when
        the channel is known to be gone — so a menu whose prompt cannot play
        does not silently wait for digits nobody was asked for.
        """
        _check(_SOUND_RE, name, "sound file name")
        _check(_DTMF_RE, escape_digits, "escape digits")
        reply = await self.command(f'STREAM FILE {name} "{escape_digits}"')
        code = reply.int_result
        if code is None:
            raise AgiProtocolError(f"STREAM FILE: {reply.raw}", reply)
        if code < 0:
            raise self._failed(reply, "STREAM FILE")
        return chr(code) if code > 0 else None

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> GetDataReply:
        """Play ``prompt`` and collect up to ``max_digits`` digits.

        Recorded: ``result=3``; ``result= (timeout)`` when nothing was
        pressed; an empty ``result=`` when the caller ended with ``#``.
        """
        _check(_SOUND_RE, prompt, "prompt file name")
        _check_int(timeout_ms, 0, 3_600_000, "timeout")
        _check_int(max_digits, 1, 1024, "max digits")
        reply = await self.command(f"GET DATA {prompt} {timeout_ms} {max_digits}")
        if reply.result == "-1":
            # Not recorded for GET DATA; -1 is Asterisk's failure / hang-up code.
            raise self._failed(reply, "GET DATA")
        if _DIGITS_RE.fullmatch(reply.result) is None:
            raise AgiProtocolError(f"GET DATA: {reply.raw}", reply)
        return GetDataReply(digits=reply.result, timed_out=reply.data == "timeout")

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait for one digit; None on timeout (``result=0``).

        ``result=-1`` is what Asterisk answered when the caller hung up during
        the wait (recorded); it raises :class:`AgiChannelDead`.
        """
        _check_int(timeout_ms, -1, 3_600_000, "timeout")
        reply = await self.command(f"WAIT FOR DIGIT {timeout_ms}")
        code = reply.int_result
        if code is None:
            raise AgiProtocolError(f"WAIT FOR DIGIT: {reply.raw}", reply)
        if code < 0:
            self._conn.dead = True
            raise AgiChannelDead("WAIT FOR DIGIT: the channel hung up", reply)
        return chr(code) if code > 0 else None

    async def exec(self, app: str, args: str = "") -> int:
        """Run a dialplan application; returns its result.

        Not recorded: Asterisk documents ``-2`` for an unknown application,
        which raises :class:`AgiCommandFailed`.
        """
        _check(_APP_RE, app, "application name")
        reply = await self.command(f"EXEC {app} {agi_quote(args)}")
        code = reply.int_result
        if code is None:
            raise AgiProtocolError(f"EXEC: {reply.raw}", reply)
        if code == -2:
            raise AgiCommandFailed(f"EXEC: no application {app}", reply)
        return code

    async def hangup(self) -> None:
        """Hang the channel up (recorded reply ``200 result=1``; AGISTATUS=HANGUP)."""
        await self.command("HANGUP")
        self._conn.dead = True


AsyncRouteHandler = Callable[[AgiSession], Awaitable[None]]
PlainRouteHandler = Callable[[AgiRequest], Mapping[str, str] | None]
RouteHandler = AsyncRouteHandler | PlainRouteHandler
#: Variables to set, or an async function given the session, when a handler fails.
Fallback = AsyncRouteHandler | Mapping[str, str]

_H = TypeVar("_H", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    handler: RouteHandler
    is_async: bool
    fallback: Fallback | None


def _is_async_callable(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object with async __call__
    )


def _freeze_fallback(fallback: Fallback | None) -> Fallback | None:
    if fallback is None or not isinstance(fallback, Mapping):
        return fallback
    frozen = {str(k): str(v) for k, v in fallback.items()}
    for name in frozen:
        _check(_NAME_RE, name, "fallback variable name")
    return frozen


# --------------------------------------------------------------------------- server


class FastAgiServer:
    """FastAGI server with routes, per-step think deadline and fallbacks."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        think_deadline: float = 0.3,
        env_timeout: float = 5.0,
        max_env_bytes: int = 16384,
        reply_timeout: float = 300.0,
        max_sessions: int = 2000,
        default_fallback: Mapping[str, str] | None = None,
        max_threads: int = 16,
    ) -> None:
        for name, value in (
            ("think_deadline", think_deadline),
            ("env_timeout", env_timeout),
            ("reply_timeout", reply_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        if max_env_bytes < 256 or max_sessions < 1 or max_threads < 1:
            raise ValueError("max_env_bytes, max_sessions and max_threads are too small")
        self.host = host
        self._port = port
        self.think_deadline = think_deadline
        self.env_timeout = env_timeout
        self.max_env_bytes = max_env_bytes
        self.reply_timeout = reply_timeout
        self.max_sessions = max_sessions
        self.default_fallback: Mapping[str, str] = cast(
            Mapping[str, str], _freeze_fallback(default_fallback or {})
        )
        self._max_threads = max_threads
        self._routes: dict[str, _Route] = {}
        self._server: asyncio.Server | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._session_tasks: set[asyncio.Task[None]] = set()
        #: Connections accepted.
        self.sessions_total = 0
        #: Connections being served now.
        self.sessions_active = 0
        #: Handlers cut off by the think deadline.
        self.deadline_fallbacks = 0
        #: Handler exceptions and protocol errors (not hang-ups, not probes).
        self.errors = 0
        #: Connections closed without serving: no/garbage environment, over capacity.
        self.sessions_rejected = 0

    # -- routes -------------------------------------------------------------------

    def add_route(
        self, name: str, handler: RouteHandler, *, fallback: Fallback | None = None
    ) -> None:
        """Route ``agi://host/<name>?...`` to ``handler``.

        ``async def handler(session: AgiSession) -> None`` talks to Asterisk;
        a plain ``def handler(request: AgiRequest) -> Mapping[str, str] | None``
        runs in a worker thread and returns channel variables to set.
        ``fallback`` (variables, or an async function given the session) is
        applied when the handler fails or exceeds the think deadline; without
        one the server's ``default_fallback`` is used.
        """
        key = name.strip().lstrip("/")
        if not key or "?" in key or _FORBIDDEN_IN_LINE.search(key):
            raise ValueError(f"invalid route name: {name!r}")
        if key in self._routes:
            raise ValueError(f"route {key!r} is already defined")
        if not callable(handler):
            raise TypeError("a route handler must be callable")
        self._routes[key] = _Route(
            name=key,
            handler=handler,
            is_async=_is_async_callable(handler),
            fallback=_freeze_fallback(fallback),
        )

    def route(self, name: str, *, fallback: Fallback | None = None) -> Callable[[_H], _H]:
        """Decorator form of :meth:`add_route`."""

        def register(func: _H) -> _H:
            self.add_route(name, cast(RouteHandler, func), fallback=fallback)
            return func

        return register

    # -- lifecycle ----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listening port (the ephemeral one when started with port 0)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FastAgiServer already started")
        # A dedicated pool: a stuck plain route must not starve the loop's
        # default executor, which asyncio also uses for DNS resolution.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._max_threads, thread_name_prefix="fastagi-route"
        )
        self._server = await asyncio.start_server(
            self._handle_client,
            self.host,
            self._port,
            limit=MAX_REPLY_LINE_BYTES,
            backlog=1024,
        )
        logger.info("FastAGI listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and cancel every session."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._session_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def stats(self) -> dict[str, int]:
        return {
            "sessions_total": self.sessions_total,
            "sessions_active": self.sessions_active,
            "deadline_fallbacks": self.deadline_fallbacks,
            "errors": self.errors,
            "sessions_rejected": self.sessions_rejected,
        }

    # -- one connection -----------------------------------------------------------

    async def _handle_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._session_tasks.add(cast("asyncio.Task[None]", task))
        self.sessions_total += 1
        try:
            if self.sessions_active >= self.max_sessions:
                self.sessions_rejected += 1
                logger.warning("FastAGI: %s sessions active, connection refused", self.max_sessions)
                return
            self.sessions_active += 1
            try:
                await self._serve(reader, writer)
            finally:
                self.sessions_active -= 1
        except Exception as exc:  # the connection must close whatever happened
            self.errors += 1
            logger.error("FastAGI session failed: %s", _describe(exc))
            logger.debug("FastAGI session traceback: %s", _traceback(exc))
        finally:
            await _close_writer(writer)
            if task is not None:
                self._session_tasks.discard(cast("asyncio.Task[None]", task))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = await self._read_env(reader)
        if env is None:
            self.sessions_rejected += 1
            return
        request = AgiRequest.from_env(env)
        conn = _AgiConnection(reader, writer, self.reply_timeout)
        route = self._routes.get(request.script)
        if route is None:
            logger.warning(
                "FastAGI: no route %r (channel %s); applying the default fallback",
                request.script[:80],
                _masked(request.channel),
            )
            await self._apply_fallback(conn, request, self.default_fallback, "(unknown)")
            return
        logger.debug("FastAGI: route %s for %s", route.name, _masked(request.channel))
        await self._run_route(conn, request, route)

    async def _read_env(self, reader: asyncio.StreamReader) -> dict[str, str] | None:
        """Read the environment block; None (close quietly) on anything but one.

        EOF is a return, never a retry: reading again at EOF answers at once,
        which is how panoramisk's server ends up spinning the event loop.
        """
        env: dict[str, str] = {}
        size = 0
        try:
            async with asyncio.timeout(self.env_timeout):
                for _ in range(MAX_ENV_LINES):
                    raw = await reader.readuntil(b"\n")
                    size += len(raw)
                    if size > self.max_env_bytes:
                        logger.warning("FastAGI: environment larger than %s bytes", size)
                        return None
                    line = raw[:-1].rstrip(b"\r")
                    if not line:
                        break
                    key, colon, value = line.partition(b":")
                    name = _ENV_NAMES.get(key)
                    if name is None:
                        if not colon or _ENV_NAME_RE.fullmatch(key) is None:
                            logger.warning("FastAGI: not an AGI environment line, closing")
                            return None
                        name = key.decode("ascii")
                        if len(_ENV_NAMES) < MAX_ENV_LINES:
                            _ENV_NAMES[key] = name
                    if value[:1] == b" ":
                        value = value[1:]
                    env[name] = value.decode("utf-8", errors="replace")
                else:
                    logger.warning("FastAGI: more than %s environment lines", MAX_ENV_LINES)
                    return None
        except TimeoutError:
            logger.warning("FastAGI: no complete environment within %g s", self.env_timeout)
            return None
        except asyncio.IncompleteReadError:
            # A port probe or health check: connected and closed.
            logger.debug("FastAGI: connection closed before the environment")
            return None
        except asyncio.LimitOverrunError:
            logger.warning("FastAGI: environment line too long")
            return None
        except (ConnectionError, OSError):
            return None
        if "agi_network_script" not in env and "agi_request" not in env:
            logger.warning("FastAGI: environment without agi_network_script, closing")
            return None
        return env

    async def _run_route(self, conn: _AgiConnection, request: AgiRequest, route: _Route) -> None:
        status, exc = await self._run_guarded(
            conn, request, functools.partial(self._invoke, route), route.name
        )
        if status == "ok":
            return
        who = _masked(request.channel)
        if status == "deadline":
            self.deadline_fallbacks += 1
            logger.warning(
                "FastAGI: route %s took longer than %g ms to think on %s; applying its fallback",
                route.name,
                self.think_deadline * 1000,
                who,
            )
        elif isinstance(exc, AgiChannelDead) or conn.dead:
            logger.info("FastAGI: route %s ended, channel %s hung up", route.name, who)
        elif isinstance(exc, AgiConnectionClosed):
            logger.info("FastAGI: route %s: %s", route.name, _describe(exc))
        else:
            self.errors += 1
            logger.error("FastAGI: route %s failed on %s: %s", route.name, who, _describe(exc))
            if exc is not None:
                logger.debug("FastAGI: route %s traceback: %s", route.name, _traceback(exc))
        fallback = route.fallback if route.fallback is not None else self.default_fallback
        await self._apply_fallback(conn, request, fallback, route.name)

    async def _invoke(self, route: _Route, session: AgiSession) -> None:
        if route.is_async:
            await cast(AsyncRouteHandler, route.handler)(session)
            return
        func = cast(PlainRouteHandler, route.handler)
        executor = self._executor
        if executor is None:
            raise RuntimeError("FastAgiServer is not running")
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        # A thread cannot be cancelled: when the deadline expires the await is
        # cancelled and whatever the function returns later is ignored.
        result = await loop.run_in_executor(
            executor, functools.partial(context.run, func, session.request)
        )
        if result is None:
            return
        if not isinstance(result, Mapping):
            raise TypeError(f"route {route.name} returned {type(result).__name__}, not a mapping")
        for name, value in result.items():
            await session.set_variable(str(name), str(value))

    async def _run_guarded(
        self,
        conn: _AgiConnection,
        request: AgiRequest,
        body: Callable[[AgiSession], Awaitable[None]],
        label: str,
    ) -> tuple[Literal["ok", "error", "deadline"], BaseException | None]:
        """Run ``body`` in its own task under the think-deadline watchdog."""
        loop = asyncio.get_running_loop()
        expired: asyncio.Future[None] = loop.create_future()

        def on_expire() -> None:
            if not expired.done():
                expired.set_result(None)

        watchdog = _ThinkWatchdog(loop, self.think_deadline, on_expire)
        session = AgiSession(conn, request, watchdog)
        watchdog.start()  # the environment (or the last reply) has just arrived
        task = asyncio.create_task(_as_coroutine(body(session)), name=f"fastagi:{label}")
        try:
            await asyncio.wait({task, expired}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The server is stopping: the handler goes with the session.
            watchdog.stop()
            session._revoke()
            task.cancel()
            task.add_done_callback(_forget_task)
            raise
        watchdog.stop()
        session._revoke()
        expired.cancel()
        if task.done() and not task.cancelled() and task.exception() is None:
            return "ok", None
        if watchdog.expired:
            if not task.done():
                # Cancel, but do not wait: a handler that swallows the
                # cancellation must not hold the caller.
                task.cancel()
            task.add_done_callback(_forget_task)
            return "deadline", None
        if task.cancelled():
            return "error", asyncio.CancelledError()
        return "error", task.exception()

    async def _apply_fallback(
        self,
        conn: _AgiConnection,
        request: AgiRequest,
        fallback: Fallback | None,
        label: str,
    ) -> None:
        if fallback is None:
            return
        if conn.dead:
            # The caller is gone: there is nothing left to route.
            logger.info(
                "FastAGI: %s hung up, fallback of %s skipped", _masked(request.channel), label
            )
            return
        if conn.broken:
            logger.warning("FastAGI: connection out of step, fallback of %s skipped", label)
            return
        if isinstance(fallback, Mapping):
            # Server-owned commands: no think deadline to watch.
            watchdog = _ThinkWatchdog(asyncio.get_running_loop(), None, _noop)
            session = AgiSession(conn, request, watchdog)
            try:
                for name, value in fallback.items():
                    await session.set_variable(name, value)
            except AgiError as exc:
                logger.warning("FastAGI: fallback of %s not applied: %s", label, _describe(exc))
            return
        status, error = await self._run_guarded(conn, request, fallback, f"{label}:fallback")
        if status == "deadline":
            self.deadline_fallbacks += 1
            logger.warning("FastAGI: fallback of %s exceeded the think deadline", label)
        elif status == "error" and not conn.dead:
            self.errors += 1
            logger.error("FastAGI: fallback of %s failed: %s", label, _describe(error))


# --------------------------------------------------------------------------- helpers


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


def _noop() -> None:
    return None


def _forget_task(task: asyncio.Task[None]) -> None:
    # Retrieve the outcome of an abandoned handler so asyncio does not report
    # "exception was never retrieved".
    if not task.cancelled() and (exc := task.exception()) is not None:
        if not isinstance(exc, AgiError):
            logger.debug("FastAGI: abandoned handler ended with %s", _describe(exc))


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    return _masked(f"{exc.__class__.__name__}: {exc}")[:500]


def _traceback(exc: BaseException) -> str:
    return _masked("".join(traceback.format_exception(exc)))


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()
