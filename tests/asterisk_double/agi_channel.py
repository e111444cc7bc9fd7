"""The FastAGI side of the Asterisk test double: one channel running ``AGI(agi://…)``.

``AgiChannelDouble`` plays Asterisk's part of one FastAGI session the way the
recordings in ``tests/recordings/*--agi-*.txt`` show it: it connects, writes the
environment block in the recorded field order, then answers each command line
with the recorded reply shapes, and reports the channel's ``AGISTATUS`` and
variables once the server closes the connection.

Recorded (Asterisk 22.10.1) and reproduced here:

- lines end with ``\\n``; the environment ends with an empty line;
- NOOP ``200 result=0``; VERBOSE, SET VARIABLE, DATABASE PUT ``200 result=1``;
  GET VARIABLE ``200 result=1 (value)`` / ``200 result=0``; CHANNEL STATUS
  ``200 result=6``; HANGUP ``200 result=1``;
- STREAM FILE: ``200 result=<ascii of the digit> endpos=N`` when a digit
  interrupts, ``200 result=0 endpos=N`` when it plays to the end, ``200
  result=-1 endpos=0`` for a missing file (and the AGI then ends with
  ``AGISTATUS=FAILURE``);
- GET DATA: ``200 result=3``, ``200 result= (timeout)``, and an empty ``200
  result=`` when ended by ``#``; WAIT FOR DIGIT: ``200 result=35``;
- ``510 Invalid or unknown command``; GET VARIABLE without a name: the 520
  block below;
- a caller hanging up during WAIT FOR DIGIT: ``200 result=-1``, then an
  unprompted ``HANGUP`` line before the next reply; afterwards NOOP / GET
  VARIABLE still work and ANSWER / STREAM FILE / WAIT FOR DIGIT get ``511``;
- AGI run in the ``h`` extension: dead from the start, no ``HANGUP`` line;
- AGISTATUS: FAILURE after a failed STREAM FILE, HANGUP when the caller hung
  up (or the script sent HANGUP) during the AGI, SUCCESS otherwise — also when
  the script crashed and just closed the socket, and in the ``h`` extension.

What is not recorded is kept conservative and marked ``Not recorded`` below.
"""

from __future__ import annotations

import ast
import asyncio
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AGI_VERSION = "22.10.1"
#: res_agi.c reads each command with fgets() into a buffer of AGI_BUF_LEN
#: (2048) bytes, so a longer line is handled as several commands. From
#: Asterisk's source; not recorded.
AGI_BUF_LEN = 2048

REPLY_510 = "510 Invalid or unknown command"
REPLY_511 = "511 Command Not Permitted on a dead channel or intercept routine"
HANGUP_NOTICE = "HANGUP"
#: The recorded reply to ``GET VARIABLE`` without a name.
USAGE_GET_VARIABLE: tuple[str, ...] = (
    "520-Invalid command syntax.  Proper usage follows:",
    "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. "
    "Returns <literal>1</literal> if <replaceable>variablename</replaceable> is set and "
    "returns the variable in parentheses.",
    "Example return code: 200 result=1 (testvariable)",
    "520 End of proper usage.",
)

#: The environment of recordings--agi-session.txt in the recorded order;
#: agi_network_script / agi_request are filled in from the script.
DEFAULT_ENV: tuple[tuple[str, str], ...] = (
    ("agi_network", "yes"),
    ("agi_network_script", ""),
    ("agi_request", ""),
    ("agi_channel", "PJSIP/sipp-00000000"),
    ("agi_language", "en"),
    ("agi_type", "PJSIP"),
    ("agi_uniqueid", "cctest-1795343657.0"),
    ("agi_version", AGI_VERSION),
    ("agi_callerid", "sipp"),
    ("agi_calleridname", "sipp"),
    ("agi_callingpres", "0"),
    ("agi_callingani2", "0"),
    ("agi_callington", "0"),
    ("agi_callingtns", "0"),
    ("agi_dnid", "100"),
    ("agi_rdnis", "unknown"),
    ("agi_context", "inbound"),
    ("agi_extension", "100"),
    ("agi_priority", "3"),
    ("agi_enhanced", "0.0"),
    ("agi_accountcode", ""),
    ("agi_threadid", "140619965683392"),
)

#: Sound files the double knows, with their length in samples (endpos when
#: played to the end). beep and auth-thankyou are recorded full plays; the
#: other prompts were only recorded interrupted or under GET DATA, so their
#: full length is not recorded (an 8 kHz 5-second guess, used only when
#: nothing interrupts them).
DEFAULT_SOUND_FILES: Mapping[str, int] = {
    "beep": 3404,
    "auth-thankyou": 7679,
    "vm-intro": 40000,
    "vm-enter-num-to-call": 40000,
    "if-correct-press": 40000,
}

#: Where a STREAM FILE interrupted by a digit stopped: 8000 samples (1 s at
#: 8 kHz) was recorded for vm-intro with SIP INFO DTMF, 9280 with RFC 4733.
#: The exact value is timing, so it is a parameter.
DEFAULT_INTERRUPT_ENDPOS = 8000

_RECORDING_LINE = re.compile(r"^\S+ \[(\d+)\] (<<|>>|--) (.*)$")
_DTMF_DIGITS = frozenset("0123456789*#ABCD")


# --------------------------------------------------------------------------- parsing


def parse_agi_args(line: str) -> list[str]:
    """Split a command line exactly like res_agi.c ``parse_args()``.

    Double quotes group words (and are removed), a backslash makes the next
    character literal (inside quotes too), spaces and tabs separate words.
    An empty ``""`` coming off white space is an empty argument (recorded
    ``STREAM FILE beep ""``).
    """
    args: list[str] = []
    quoted = escaped = False
    whitespace = True
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                args.append("")
                whitespace = False
            continue
        if char in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            args.append("")
            whitespace = False
        args[-1] += char
        escaped = False
    return args


@dataclass(frozen=True)
class RecordedExchange:
    """One command of a recorded session and every line Asterisk wrote after it."""

    command: str
    replies: tuple[str, ...]


@dataclass(frozen=True)
class RecordedSession:
    env: tuple[tuple[str, str], ...]
    exchanges: tuple[RecordedExchange, ...]

    @property
    def reply_lines(self) -> list[str]:
        return [line for exchange in self.exchanges for line in exchange.replies]


def load_recorded_session(path: Path, session_no: int = 1) -> RecordedSession:
    """The ``session_no``-th connection (1-based, in file order) of an AGI recording.

    The ``[n]`` numbers of the recordings restart when the logger restarted,
    so sessions are counted by their ``connection from`` lines instead.
    """
    env: list[tuple[str, str]] = []
    exchanges: list[tuple[str, list[str]]] = []
    seen = 0
    in_env = False
    for text in path.read_text(encoding="utf-8").splitlines():
        match = _RECORDING_LINE.match(text)
        if match is None:
            continue
        direction, payload = match.group(2), match.group(3)
        if direction == "--":
            if "connection from" in payload:
                seen += 1
                in_env = seen == session_no
            continue
        if seen != session_no:
            continue
        raw = ast.literal_eval(payload)
        assert isinstance(raw, bytes)
        line = raw.decode("utf-8")
        assert line.endswith("\n") and not line.endswith("\r\n"), line
        line = line[:-1]
        if direction == ">>":
            exchanges.append((line, []))
        elif in_env:
            if line == "":
                in_env = False
            else:
                key, _, value = line.partition(": ")
                env.append((key, value))
        elif exchanges:
            exchanges[-1][1].append(line)
    if seen < session_no:
        raise ValueError(f"{path.name} has {seen} sessions, not {session_no}")
    return RecordedSession(
        env=tuple(env),
        exchanges=tuple(RecordedExchange(c, tuple(r)) for c, r in exchanges),
    )


# --------------------------------------------------------------------------- double


@dataclass
class AgiOutcome:
    """What the channel looks like after the FastAGI server let it go."""

    agistatus: str
    #: Channel variables at the end (initial ones, those set, and AGISTATUS).
    variables: dict[str, str]
    #: Every command line received, in order.
    commands: list[str]
    duration: float
    #: Variables set by SET VARIABLE during the session only.
    assigned: dict[str, str] = field(default_factory=dict)
    #: Every line written after the environment, in order.
    replies: list[str] = field(default_factory=list)
    #: Real Asterisk commands the double does not emulate (answered 510).
    unsupported: list[str] = field(default_factory=list)
    connected: bool = True


class AgiDoubleTimeout(TimeoutError):
    """The server kept the channel longer than ``max_duration``: a dead line."""


@dataclass(frozen=True)
class _Command:
    words: tuple[str, ...]
    #: The ``dead`` flag of res_agi.c's command table: may run on a hung-up
    #: channel. Recorded: NOOP and GET VARIABLE work after the hang-up, ANSWER,
    #: STREAM FILE and WAIT FOR DIGIT get 511; the other flags are Asterisk's
    #: own table, not recorded.
    dead_safe: bool
    #: Name of the method that answers it; None: not emulated by the double.
    method: str | None = None
    #: Blocks on the channel (plays audio / waits for DTMF), so a hang-up can
    #: interrupt it.
    media: bool = False


_COMMANDS: tuple[_Command, ...] = (
    _Command(("ANSWER",), False, "_answer"),
    _Command(("ASYNCAGI", "BREAK"), False),
    _Command(("CHANNEL", "STATUS"), False, "_channel_status"),
    _Command(("CONTROL", "STREAM", "FILE"), False),
    _Command(("DATABASE", "DEL"), True, "_database_del"),
    _Command(("DATABASE", "DELTREE"), True),
    _Command(("DATABASE", "GET"), True, "_database_get"),
    _Command(("DATABASE", "PUT"), True, "_database_put"),
    _Command(("EXEC",), True, "_exec"),
    _Command(("GET", "DATA"), False, "_get_data", media=True),
    _Command(("GET", "FULL", "VARIABLE"), True, "_get_full_variable"),
    _Command(("GET", "OPTION"), False),
    _Command(("GET", "VARIABLE"), True, "_get_variable"),
    _Command(("GOSUB",), False),
    _Command(("HANGUP",), False, "_hangup"),
    _Command(("NOOP",), True, "_noop"),
    _Command(("RECEIVE", "CHAR"), False),
    _Command(("RECEIVE", "TEXT"), False),
    _Command(("RECORD", "FILE"), False),
    _Command(("SAY", "ALPHA"), False),
    _Command(("SAY", "DATE"), False),
    _Command(("SAY", "DATETIME"), False),
    _Command(("SAY", "DIGITS"), False, "_say_digits", media=True),
    _Command(("SAY", "NUMBER"), False),
    _Command(("SAY", "PHONETIC"), False),
    _Command(("SAY", "TIME"), False),
    _Command(("SEND", "IMAGE"), False),
    _Command(("SEND", "TEXT"), False),
    _Command(("SET", "AUTOHANGUP"), False),
    _Command(("SET", "CALLERID"), False),
    _Command(("SET", "CONTEXT"), False),
    _Command(("SET", "EXTENSION"), False),
    _Command(("SET", "MUSIC"), False),
    _Command(("SET", "PRIORITY"), False),
    _Command(("SET", "VARIABLE"), True, "_set_variable"),
    _Command(("STREAM", "FILE"), False, "_stream_file", media=True),
    _Command(("TDD", "MODE"), False),
    _Command(("VERBOSE",), True, "_verbose"),
    _Command(("WAIT", "FOR", "DIGIT"), False, "_wait_for_digit", media=True),
)


def _find_command(argv: Sequence[str]) -> _Command | None:
    # Like res_agi.c find_command(): the command's words must all match the
    # first words of the line (case-insensitive); extra words are arguments.
    for command in _COMMANDS:
        words = [a.upper() for a in argv[: len(command.words)]]
        if tuple(words) == command.words:
            return command
    return None


class _Stall:
    """Asterisk would not answer (e.g. WAIT FOR DIGIT -1 with no caller input)."""


_STALL = _Stall()


class AgiChannelDouble:
    """Asterisk's side of one FastAGI session; see the module docstring.

    ``dtmf`` is what the caller does at each input opportunity, in order:
    ``"5"`` presses 5; ``"12#"`` types 1, 2 and # (GET DATA); ``""`` presses
    nothing. STREAM FILE with escape digits takes the next entry only when it
    is a single escape digit (it interrupts) or ``""``; GET DATA and WAIT FOR
    DIGIT always take the next entry; once the list is used up the caller
    presses nothing.

    ``hangup_on`` makes the caller hang up during a command: an int is the
    command's 1-based position, a string the first command starting with it
    (``"WAIT FOR DIGIT"``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        script: str = "route",
        args: Sequence[str] = (),
        env: Sequence[tuple[str, str]] | None = None,
        env_overrides: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        dtmf: Sequence[str] = (),
        sound_files: Mapping[str, int] | None = None,
        hangup_on: int | str | None = None,
        dead: bool | None = None,
        answered: bool = True,
        reply_delays: Mapping[str, float] | None = None,
        interrupt_endpos: int = DEFAULT_INTERRUPT_ENDPOS,
        astdb: dict[tuple[str, str], str] | None = None,
        max_duration: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.script = script
        self.args = list(args)
        self._base_env = list(env) if env is not None else None
        self._env_overrides = dict(env_overrides or {})
        self.variables: dict[str, str] = dict(variables or {})
        self._dtmf: deque[str] = deque(dtmf)
        self.sound_files = dict(DEFAULT_SOUND_FILES if sound_files is None else sound_files)
        self._hangup_on = hangup_on
        self._answered = answered
        self._reply_delays = {k.upper(): v for k, v in (reply_delays or {}).items()}
        self._interrupt_endpos = interrupt_endpos
        self.astdb: dict[tuple[str, str], str] = astdb if astdb is not None else {}
        self.max_duration = max_duration
        self.env = self._build_env()
        # Recorded: an AGI started in the h extension runs on a dead channel.
        self._dead = self.env_value("agi_extension") == "h" if dead is None else dead
        self._notice_pending = False
        self._hung_up_during_agi = False
        self._failed = False
        self.commands: list[str] = []
        self.replies: list[str] = []
        self.assigned: dict[str, str] = {}
        self.unsupported: list[str] = []

    @classmethod
    def from_recording(
        cls, path: Path, session_no: int, host: str, port: int, **kwargs: Any
    ) -> AgiChannelDouble:
        """A double whose environment is the one of a recorded session."""
        recorded = load_recorded_session(path, session_no)
        return cls(host, port, env=recorded.env, **kwargs)

    # -- environment --------------------------------------------------------------

    def _build_env(self) -> list[tuple[str, str]]:
        if self._base_env is not None:
            pairs = list(self._base_env)
            script = dict(pairs).get("agi_network_script", self.script)
            self.script = script
        else:
            pairs = list(DEFAULT_ENV)
            script = self.script
        out: list[tuple[str, str]] = []
        for key, value in pairs:
            if key == "agi_network_script":
                value = script
            elif key == "agi_request":
                # Asterisk writes the URL of the dialplan's AGI() call.
                value = f"agi://{self.host}:{self.port}/{script}"
            out.append((key, self._env_overrides.get(key, value)))
        known = {key for key, _ in out}
        out.extend((k, v) for k, v in self._env_overrides.items() if k not in known)
        if self._base_env is None:
            out.extend((f"agi_arg_{i}", arg) for i, arg in enumerate(self.args, start=1))
        return out

    def env_value(self, key: str) -> str | None:
        for k, v in self.env:
            if k == key:
                return v
        return None

    def environment_bytes(self) -> bytes:
        return "".join(f"{k}: {v}\n" for k, v in self.env).encode("utf-8") + b"\n"

    # -- the session --------------------------------------------------------------

    async def run(self) -> AgiOutcome:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.max_duration):
                connected = await self._session()
        except TimeoutError:
            raise AgiDoubleTimeout(
                f"the FastAGI server kept the channel for more than {self.max_duration} s"
            ) from None
        if not connected:
            # Not recorded: Asterisk documents AGISTATUS=FAILURE when it cannot
            # connect to the FastAGI server (res_agi "Failed to connect").
            status = "FAILURE"
        elif self._failed:
            # Not recorded together with a hang-up; FAILURE is kept once set.
            status = "FAILURE"
        elif self._hung_up_during_agi:
            status = "HANGUP"
        else:
            status = "SUCCESS"
        self.variables["AGISTATUS"] = status
        return AgiOutcome(
            agistatus=status,
            variables=dict(self.variables),
            commands=list(self.commands),
            duration=time.monotonic() - started,
            assigned=dict(self.assigned),
            replies=list(self.replies),
            unsupported=list(self.unsupported),
            connected=connected,
        )

    async def _session(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        except OSError:
            return False
        try:
            writer.write(self.environment_bytes())
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw.endswith(b"\n"):
                    # EOF (maybe after a partial line): the script is done.
                    break
                for chunk in _split_like_fgets(raw):
                    reply = self._answer_line(chunk)
                    if isinstance(reply, _Stall):
                        # Asterisk would not answer: wait for the server to
                        # close the connection.
                        await reader.read()
                        return True
                    delay = self._delay_for(self.commands[-1])
                    if delay:
                        # The caller taking time (keys, prompts): simulated.
                        await asyncio.sleep(delay)
                    self.replies.extend(reply)
                    writer.write("".join(f"{line}\n" for line in reply).encode("utf-8"))
                    await writer.drain()
        except (ConnectionError, OSError):
            # The server reset the connection: for Asterisk the script ended.
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        return True

    def _delay_for(self, command: str) -> float:
        upper = command.upper()
        for prefix, delay in self._reply_delays.items():
            if upper.startswith(prefix):
                return delay
        return 0.0

    def _answer_line(self, chunk: bytes) -> list[str] | _Stall:
        line = chunk[:-1] if chunk.endswith(b"\n") else chunk
        text = line.decode("utf-8", errors="replace")
        self.commands.append(text)
        notice = self._notice_pending
        self._notice_pending = False
        reply = self._reply(text, len(self.commands))
        if notice and not isinstance(reply, _Stall):
            # Recorded: the unprompted HANGUP line arrives before the reply of
            # the first command after the hang-up.
            reply = [HANGUP_NOTICE, *reply]
        return reply

    def _reply(self, text: str, position: int) -> list[str] | _Stall:
        argv = parse_agi_args(text)
        command = _find_command(argv)
        if command is None:
            return [REPLY_510]
        if self._dead and not command.dead_safe:
            return [REPLY_511]
        if command.method is None:
            # Not emulated: answer like an unknown command and report it, so a
            # test using it fails visibly instead of trusting an invented reply.
            self.unsupported.append(text)
            return [REPLY_510]
        if not self._dead and self._hangs_up_now(argv, position):
            self._hang_up()
            if command.media:
                # Recorded for WAIT FOR DIGIT: "200 result=-1". STREAM FILE
                # always reports endpos, so it gets the recorded shape of its
                # own failure; GET DATA / SAY DIGITS: not recorded, plain -1.
                if command.words == ("STREAM", "FILE"):
                    return ["200 result=-1 endpos=0"]
                return ["200 result=-1"]
            # An instant command completes; the caller hangs up right after.
        handler: Callable[[list[str]], list[str] | _Stall] = getattr(self, command.method)
        return handler(argv)

    def _hangs_up_now(self, argv: list[str], position: int) -> bool:
        target = self._hangup_on
        if target is None:
            return False
        if isinstance(target, int):
            hit = target == position
        else:
            hit = " ".join(argv).upper().startswith(target.upper())
        if hit:
            self._hangup_on = None
        return hit

    def _hang_up(self) -> None:
        self._dead = True
        self._notice_pending = True
        self._hung_up_during_agi = True

    # -- variables ----------------------------------------------------------------

    def _lookup(self, name: str) -> str | None:
        if name in self.variables:
            return self.variables[name]
        builtins = {
            "UNIQUEID": "agi_uniqueid",
            "CHANNEL": "agi_channel",
            "CALLERID(num)": "agi_callerid",
            "CALLERID(name)": "agi_calleridname",
            "EXTEN": "agi_extension",
            "CONTEXT": "agi_context",
        }
        key = builtins.get(name)
        # Other dialplan functions (STAT(), CDR()...) are not emulated: unset.
        return self.env_value(key) if key else None

    def _substitute(self, text: str) -> str:
        # ${...} innermost first; substituted values are not re-scanned, as in
        # pbx_substitute_variables_helper().
        out: list[str] = []
        i = 0
        while i < len(text):
            if text.startswith("${", i):
                depth, j = 1, i + 2
                while j < len(text) and depth:
                    if text.startswith("${", j):
                        depth += 1
                        j += 2
                        continue
                    if text[j] == "}":
                        depth -= 1
                    j += 1
                if depth:
                    out.append(text[i:])
                    break
                out.append(self._lookup(self._substitute(text[i + 2 : j - 1])) or "")
                i = j
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    # -- command handlers ---------------------------------------------------------

    def _usage(self, argv: list[str]) -> list[str]:
        if [a.upper() for a in argv[:2]] == ["GET", "VARIABLE"]:
            return list(USAGE_GET_VARIABLE)
        # Not recorded: only GET VARIABLE's usage text was captured; the shape
        # (520- first line, text, "520 End of proper usage.") is.
        return [
            USAGE_GET_VARIABLE[0],
            f"Usage text of {' '.join(argv).upper()} not recorded.",
            USAGE_GET_VARIABLE[-1],
        ]

    def _noop(self, argv: list[str]) -> list[str]:
        return ["200 result=0"]

    def _verbose(self, argv: list[str]) -> list[str]:
        if len(argv) < 2:
            return self._usage(argv)
        return ["200 result=1"]

    def _answer(self, argv: list[str]) -> list[str]:
        # Not recorded (the dialplan answered first); AGI documents 0 on success.
        self._answered = True
        return ["200 result=0"]

    def _channel_status(self, argv: list[str]) -> list[str]:
        # Recorded: 6 (line up). Not recorded before Answer: 4 is "ringing".
        return ["200 result=6" if self._answered else "200 result=4"]

    def _hangup(self, argv: list[str]) -> list[str]:
        if len(argv) > 2:
            return self._usage(argv)
        if len(argv) == 2 and argv[1] != self.env_value("agi_channel"):
            # Not recorded: AGI documents -1 when the named channel is not found.
            return ["200 result=-1"]
        # Recorded: 200 result=1, then HANGUP before the next reply, and
        # AGISTATUS=HANGUP.
        self._hang_up()
        return ["200 result=1"]

    def _set_variable(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            return self._usage(argv)
        self.variables[argv[2]] = argv[3]
        self.assigned[argv[2]] = argv[3]
        return ["200 result=1"]

    def _get_variable(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            return self._usage(argv)
        value = self._lookup(argv[2])
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    def _get_full_variable(self, argv: list[str]) -> list[str]:
        if len(argv) not in (4, 5):
            return self._usage(argv)
        if len(argv) == 5 and argv[4] != self.env_value("agi_channel"):
            # Recorded (agi-vmnote): an unquoted expression with a space made
            # its second half a channel name, which does not exist: result=0.
            return ["200 result=0"]
        return [f"200 result=1 ({self._substitute(argv[3])})"]

    def _database_put(self, argv: list[str]) -> list[str]:
        if len(argv) != 5:
            return self._usage(argv)
        self.astdb[(argv[2], argv[3])] = argv[4]
        return ["200 result=1"]

    def _database_get(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            return self._usage(argv)
        value = self.astdb.get((argv[2], argv[3]))
        # Recorded: "200 result=1 (meijiang)"; a missing key: result=0 (documented).
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    def _database_del(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            return self._usage(argv)
        # Not recorded: documented 1 on success, 0 otherwise.
        existed = self.astdb.pop((argv[2], argv[3]), None) is not None
        return ["200 result=1" if existed else "200 result=0"]

    def _exec(self, argv: list[str]) -> list[str]:
        if len(argv) < 2:
            return self._usage(argv)
        # Not recorded: the application's own result; 0 for "it ran".
        return ["200 result=0"]

    def _stream_file(self, argv: list[str]) -> list[str]:
        if len(argv) not in (4, 5):
            return self._usage(argv)
        name, escape = argv[2], argv[3]
        length = self.sound_files.get(name)
        if length is None:
            # Recorded: a missing file answers this and the whole AGI ends
            # with AGISTATUS=FAILURE.
            self._failed = True
            return ["200 result=-1 endpos=0"]
        if escape and self._dtmf:
            entry = self._dtmf[0]
            if entry == "":
                self._dtmf.popleft()
            elif len(entry) == 1 and entry in escape:
                self._dtmf.popleft()
                endpos = min(self._interrupt_endpos, length)
                return [f"200 result={ord(entry)} endpos={endpos}"]
        return [f"200 result=0 endpos={length}"]

    def _say_digits(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            return self._usage(argv)
        escape = argv[3]
        if escape and self._dtmf and len(self._dtmf[0]) == 1 and self._dtmf[0] in escape:
            # Not recorded (only the "" escape form was); same shape as STREAM FILE.
            return [f"200 result={ord(self._dtmf.popleft())}"]
        return ["200 result=0"]

    def _get_data(self, argv: list[str]) -> list[str]:
        if len(argv) < 3 or len(argv) > 5:
            return self._usage(argv)
        if argv[2] not in self.sound_files:
            # Not recorded: res_agi answers -1 when the prompt cannot play and
            # does not set AGISTATUS=FAILURE for it.
            return ["200 result=-1"]
        max_digits = int(argv[4]) if len(argv) == 5 and argv[4].isdigit() else 1024
        entry = self._dtmf.popleft() if self._dtmf else ""
        typed, hash_pressed = entry, False
        if "#" in entry:
            typed, hash_pressed = entry.split("#", 1)[0], True
        if hash_pressed:
            # Recorded: "#" alone ends GET DATA with an empty "result=".
            return [f"200 result={typed[:max_digits]}"]
        if len(typed) >= max_digits:
            # Recorded: max digits reached ("result=3" for max 1).
            return [f"200 result={typed[:max_digits]}"]
        # Recorded for nothing typed: "result= (timeout)". Some digits then a
        # timeout is not recorded; res_agi uses the same "(timeout)" form.
        return [f"200 result={typed} (timeout)"]

    def _wait_for_digit(self, argv: list[str]) -> list[str] | _Stall:
        if len(argv) != 4:
            return self._usage(argv)
        entry = self._dtmf.popleft() if self._dtmf else ""
        if entry:
            # Recorded: "200 result=35" for '#'.
            return [f"200 result={ord(entry[0])}"]
        if argv[3].strip() == "-1":
            # Not recorded: -1 waits for ever; the double never answers.
            return _STALL
        # Not recorded: AGI documents 0 when no digit arrives in time.
        return ["200 result=0"]


def _split_like_fgets(raw: bytes) -> list[bytes]:
    """A line longer than AGI_BUF_LEN - 1 bytes reaches Asterisk as several commands."""
    size = AGI_BUF_LEN - 1
    if len(raw) <= size:
        return [raw]
    return [raw[i : i + size] for i in range(0, len(raw), size)]
