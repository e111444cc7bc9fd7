"""smeline's Asterisk configuration: the shipped files plus what is rendered.

The hand-written files live in ``dialplan/`` at the repository root
(``extensions.conf``, ``queues.conf``, ``pjsip.conf`` ...). They ``#include``
files that depend on the site and on smeline's data, rendered here by pure
functions:

- ``smeline_queues.conf``  one queue per window (``render_queues``);
- ``smeline_agents.conf``  one PJSIP endpoint + auth + aor per agent phone,
  each inheriting the WebRTC templates of ``pjsip.conf``
  (``render_agent_endpoints``);
- ``smeline_globals.conf`` the dialplan's ``[globals]`` (``render_globals``);
- ``smeline_manager.conf`` the AMI user with its secret
  (``render_manager_user``).

``render_all`` returns every file (name → text) for one directory that
becomes Asterisk's ``/etc/asterisk`` additions. Everything that lands in a
configuration line is checked against a narrow character set first: a value
with a newline, ``[`` or ``;`` would otherwise start a new section or hide the
rest of a line, and one with ``$`` or ``,`` would be evaluated or split by the
dialplan. Bad input raises ``ValueError``; nothing is escaped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from smeline.prompts.catalogue import PROMPTS

STATIC_FILES: Final[tuple[str, ...]] = (
    "extensions.conf",
    "queues.conf",
    "confbridge.conf",
    "manager.conf",
    "pjsip.conf",
    "http.conf",
    "musiconhold.conf",
)
QUEUES_FILE: Final = "smeline_queues.conf"
AGENTS_FILE: Final = "smeline_agents.conf"
GLOBALS_FILE: Final = "smeline_globals.conf"
MANAGER_FILE: Final = "smeline_manager.conf"

#: The queue the dialplan falls back to when smeline cannot answer.
FALLBACK_QUEUE: Final = "city"

STRATEGIES: Final = frozenset(
    {
        "ringall",
        "leastrecent",
        "fewestcalls",
        "random",
        "rrmemory",
        "rrordered",
        "linear",
        "wrandom",
    }
)
AUTOPAUSE: Final = frozenset({"no", "yes", "all"})
EMPTY_CONDITIONS: Final = frozenset(
    {"paused", "penalty", "inuse", "ringing", "unavailable", "invalid", "unknown", "wrapup"}
)

#: Section names of the shipped pjsip.conf; an agent named like one of them
#: would merge into it. ``anonymous`` is PJSIP's endpoint for unauthenticated
#: calls: an agent of that name would take calls from anyone.
RESERVED_PJSIP_NAMES: Final = frozenset(
    {
        "global",
        "system",
        "anonymous",
        "transport-udp",
        "transport-tcp",
        "transport-ws",
        "transport-wss",
        "smeline-trunk-endpoint",
        "smeline-trunk-aor",
        "smeline-trunk-identify",
        "smeline-trunk-auth",
        "smeline-trunk-registration",
        "smeline-agent-endpoint",
        "smeline-agent-auth",
        "smeline-agent-aor",
    }
)
#: queues.conf's own sections.
RESERVED_QUEUE_NAMES: Final = frozenset({"general"})

_HEADER = "; Rendered by smeline.telephony.asterisk_config - do not edit; render again.\n"

_WINDOW_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ENDPOINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
# No ';' (comment), '[' (section), '$' (substitution), '\\' (escape), quotes,
# whitespace or control characters.
_SECRET = re.compile(r"[A-Za-z0-9._~!@%^*+=:/?-]{12,128}")
_AMI_USER = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_SOUND = re.compile(r"[a-z0-9][a-z0-9/_-]{0,79}")
_MOH_CLASS = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_HOTLINE = re.compile(r"\+?[0-9]{3,20}")
_AGI_ADDRESS = re.compile(r"[A-Za-z0-9.-]{1,253}:[0-9]{1,5}")
_TRUNK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_ABS_PATH = re.compile(r"(/[A-Za-z0-9._-]+)+")
_ACL = re.compile(r"[0-9.]{7,15}/[0-9.]{1,15}")
# Free text (names, shown only in comments / caller ID): no control characters
# and nothing that ends a comment, a caller ID or a line.
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f\"<>\\;\[\]$]")


def _match(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"unsafe {what}: {value!r}")
    return value


def _text(value: object, what: str, *, max_len: int) -> str:
    if not isinstance(value, str) or len(value) > max_len or _UNSAFE_TEXT.search(value):
        raise ValueError(f"unsafe {what}: {value!r}")
    return value.strip()


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer in {low}..{high}, not {value!r}")
    return value


def _path(value: object, what: str) -> str:
    text = _match(_ABS_PATH, value, what)
    if any(part in {".", ".."} for part in text.split("/")):
        raise ValueError(f"unsafe {what}: {value!r}")
    return text


@dataclass(frozen=True, slots=True)
class WindowQueue:
    """A service window; its queue is named after ``code``."""

    code: str
    name: str


@dataclass(frozen=True, slots=True)
class AgentPhone:
    """An agent's browser phone: PJSIP endpoint (= SIP user name) and password."""

    endpoint: str
    secret: str
    display_name: str


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """Settings shared by every window's queue (see docs/dialplan.md)."""

    strategy: str = "leastrecent"
    ring_timeout: int = 15  # seconds an agent's phone rings per attempt
    retry: int = 3  # seconds between ring rounds
    wrapup_seconds: int = 30  # Asterisk's own after-call pause (smeline also QueuePauses)
    autopause: str = "all"  # a missed ring pauses the agent in every queue
    autopause_delay: int = 0
    periodic_announce: tuple[str, ...] = ("smeline/queue-hold", "smeline/callback-offer")
    periodic_announce_frequency: int = 30
    join_empty: tuple[str, ...] = ("unavailable", "invalid", "unknown")
    leave_when_empty: tuple[str, ...] = ("unavailable", "invalid", "unknown")
    music_class: str = "default"


@dataclass(frozen=True, slots=True)
class DialplanSettings:
    """The dialplan's site-dependent globals."""

    hotline: str  # the number presented on every call to the trunk
    agi: str = "127.0.0.1:4573"  # smeline's FastAGI server, host:port
    trunk: str = "carrier"  # the PJSIP endpoint name of the carrier trunk
    recording_dir: str = "/var/spool/asterisk/smeline/recordings"
    message_dir: str = "/var/spool/asterisk/smeline/messages"
    dial_timeout: int = 45  # seconds a trunk call rings
    escalation_timeout: int = 60  # seconds an escalation waits in another window's queue


@dataclass(frozen=True, slots=True)
class ManagerUser:
    """The AMI user smeline logs in as."""

    secret: str
    username: str = "smeline"
    # Addresses admitted besides loopback (manager.conf's template), "ip/mask".
    extra_permit: tuple[str, ...] = ()


# --------------------------------------------------------------------------- renderers


_QUEUES_PREAMBLE = """\
; One queue per window, named after the window code; every queue is the same:
;  timeout / retry       an agent's phone rings `timeout` s per attempt, `retry` s
;                        between rounds; the Queue() timeout given by the dialplan
;                        wins over a ringing phone (timeoutpriority = app).
;  ringinuse = no        one call at a time per agent (no call waiting in the browser).
;  wrapuptime            Asterisk's own after-call pause, a safety net when smeline
;                        is down; smeline itself pauses the member (QueuePause) for
;                        the real wrap-up.
;  autopause             an agent who lets a call ring out is paused ("Auto-Pause"),
;                        so the next caller is not offered to an empty desk; "all"
;                        pauses them in every queue they belong to.
;  joinempty /           refuse to queue (JOINEMPTY) or drop from the queue
;  leavewhenempty        (LEAVEEMPTY) when no member could ever answer: none logged
;                        in, or every phone unregistered / gone.  The dialplan then
;                        overflows at once instead of playing hold music to nobody.
;                        Paused members still count as present: a wrap-up lasts
;                        seconds, and the queue timeout bounds the wait anyway.
;  context               one digit takes the caller out of the queue: 9 = call me
;                        back (extensions.conf [smeline-queue-exit]).
;  announce-*            no position / hold-time announcements (zh SayNumber reads
;                        1 as 幺, docs/prompts.md); rotating periodic prompts instead.
;  set*var               MEMBERINTERFACE, QUEUENAME, QUEUEPOSITION ... on the channel.
; No static members: smeline adds agents with QueueAdd (StateInterface) at login.
"""


def _check_options(options: QueueOptions) -> None:
    if options.strategy not in STRATEGIES:
        raise ValueError(f"unknown queue strategy: {options.strategy!r}")
    if options.autopause not in AUTOPAUSE:
        raise ValueError(f"autopause must be one of {sorted(AUTOPAUSE)}")
    _int(options.ring_timeout, "ring_timeout", 5, 120)
    _int(options.retry, "retry", 0, 60)
    _int(options.wrapup_seconds, "wrapup_seconds", 0, 3600)
    _int(options.autopause_delay, "autopause_delay", 0, 3600)
    _int(options.periodic_announce_frequency, "periodic_announce_frequency", 0, 3600)
    for name in options.periodic_announce:
        _match(_SOUND, name, "periodic announcement")
        if name not in PROMPTS:
            raise ValueError(f"periodic announcement {name!r} is not in the prompt catalogue")
    for conditions in (options.join_empty, options.leave_when_empty):
        if not conditions:
            # Empty would mean "join / stay whatever the members": a caller could
            # wait for the whole queue timeout with nobody logged in.
            raise ValueError("join_empty / leave_when_empty must name at least one condition")
        unknown = set(conditions) - EMPTY_CONDITIONS
        if unknown:
            raise ValueError(f"unknown empty conditions: {sorted(unknown)}")
    _match(_MOH_CLASS, options.music_class, "music class")


def render_queues(windows: Sequence[WindowQueue], options: QueueOptions | None = None) -> str:
    """``smeline_queues.conf``: one section per window, no static members."""
    options = options or QueueOptions()
    _check_options(options)
    seen: set[str] = set()
    out = [_HEADER, _QUEUES_PREAMBLE]
    for window in windows:
        code = _match(_WINDOW_CODE, window.code, "window code")
        if code in RESERVED_QUEUE_NAMES or code in seen:
            raise ValueError(f"window code {code!r} is reserved or repeated")
        seen.add(code)
        name = _text(window.name, "window name", max_len=60)
        out.append(
            f"""
[{code}]
; {name}
strategy = {options.strategy}
timeout = {options.ring_timeout}
retry = {options.retry}
timeoutpriority = app
timeoutrestart = no
ringinuse = no
wrapuptime = {options.wrapup_seconds}
autopause = {options.autopause}
autopausedelay = {options.autopause_delay}
autopausebusy = no
autopauseunavail = no
joinempty = {",".join(options.join_empty)}
leavewhenempty = {",".join(options.leave_when_empty)}
maxlen = 0
autofill = yes
context = smeline-queue-exit
musicclass = {options.music_class}
announce-frequency = 0
announce-holdtime = no
announce-position = no
periodic-announce = {",".join(options.periodic_announce)}
periodic-announce-frequency = {options.periodic_announce_frequency}
relative-periodic-announce = yes
random-periodic-announce = no
reportholdtime = no
setinterfacevar = yes
setqueuevar = yes
setqueueentryvar = yes
"""
        )
    return "".join(out)


def render_agent_endpoints(agents: Sequence[AgentPhone]) -> str:
    """``smeline_agents.conf``: endpoint + auth + aor per agent, from the
    ``smeline-agent-*`` templates of ``pjsip.conf``."""
    seen: set[str] = set()
    out = [
        _HEADER,
        "; WebRTC agent phones; settings come from the smeline-agent-* templates in pjsip.conf.\n",
    ]
    for agent in agents:
        endpoint = _match(_ENDPOINT, agent.endpoint, "agent endpoint name")
        key = endpoint.lower()
        auth_name = f"{endpoint}-auth"
        if key in RESERVED_PJSIP_NAMES or key in seen or auth_name.lower() in seen:
            raise ValueError(f"agent endpoint name {endpoint!r} is reserved or repeated")
        seen.update({key, auth_name.lower()})
        secret = _match(_SECRET, agent.secret, f"password of agent {endpoint}")
        display = _text(agent.display_name, f"display name of agent {endpoint}", max_len=40)
        out.append(
            f"""
[{endpoint}](smeline-agent-endpoint)
callerid = "{display or endpoint}" <{endpoint}>
auth = {auth_name}
aors = {endpoint}

[{auth_name}](smeline-agent-auth)
username = {endpoint}
password = {secret}

[{endpoint}](smeline-agent-aor)
"""
        )
    return "".join(out)


def render_globals(settings: DialplanSettings) -> str:
    """``smeline_globals.conf``: the dialplan's ``[globals]`` section."""
    values = {
        "SMELINE_AGI": _match(_AGI_ADDRESS, settings.agi, "FastAGI address"),
        "SMELINE_HOTLINE": _match(_HOTLINE, settings.hotline, "hotline number"),
        "SMELINE_TRUNK": _match(_TRUNK, settings.trunk, "trunk endpoint name"),
        "SMELINE_RECORDING_DIR": _path(settings.recording_dir, "recording directory"),
        "SMELINE_MESSAGE_DIR": _path(settings.message_dir, "message directory"),
        "SMELINE_DIAL_TIMEOUT": str(_int(settings.dial_timeout, "dial_timeout", 5, 300)),
        "SMELINE_ESCALATION_TIMEOUT": str(
            _int(settings.escalation_timeout, "escalation_timeout", 10, 600)
        ),
    }
    if settings.trunk.lower() in RESERVED_PJSIP_NAMES:
        raise ValueError(f"trunk name {settings.trunk!r} is reserved")
    lines = [_HEADER, "[globals]\n"]
    lines.extend(f"{name} = {value}\n" for name, value in values.items())
    return "".join(lines)


def render_manager_user(user: ManagerUser) -> str:
    """``smeline_manager.conf``: the AMI user, from ``manager.conf``'s template."""
    username = _match(_AMI_USER, user.username, "AMI user name")
    if username in {"general", "smeline-ami-user"}:
        raise ValueError(f"AMI user name {username!r} is reserved")
    secret = _match(_SECRET, user.secret, "AMI secret")
    permits = "".join(f"permit = {_match(_ACL, p, 'AMI permit')}\n" for p in user.extra_permit)
    return (
        f"{_HEADER}\n[{username}](smeline-ami-user)\nsecret = {secret}\n"
        "; The template admits loopback only; a permit below widens that.\n"
        f"{permits}"
    )


def dialplan_dir() -> Path:
    """The shipped ``dialplan/`` directory of a source checkout.

    It lives at the repository root, next to the ``smeline`` package; an
    installed wheel does not carry it yet (shipping it as package data is a
    follow-up).
    """
    path = Path(__file__).resolve().parents[2] / "dialplan"
    if not (path / "extensions.conf").is_file():
        raise FileNotFoundError(
            f"{path} not found: run from a source checkout of smeline (the dialplan is "
            "not packaged with the wheel yet)"
        )
    return path


def render_all(
    *,
    windows: Sequence[WindowQueue],
    agents: Sequence[AgentPhone],
    settings: DialplanSettings,
    manager: ManagerUser,
    options: QueueOptions | None = None,
    source_dir: Path | None = None,
) -> dict[str, str]:
    """Every file Asterisk needs from smeline: file name → content."""
    if FALLBACK_QUEUE not in {w.code for w in windows}:
        raise ValueError(f"the windows must include {FALLBACK_QUEUE!r}: the dialplan's fallback")
    agent_names = {a.endpoint.lower() for a in agents}
    if settings.trunk.lower() in agent_names:
        raise ValueError(f"an agent is named like the trunk {settings.trunk!r}")
    source = source_dir or dialplan_dir()
    files = {name: (source / name).read_text(encoding="utf-8") for name in STATIC_FILES}
    files[QUEUES_FILE] = render_queues(windows, options)
    files[AGENTS_FILE] = render_agent_endpoints(agents)
    files[GLOBALS_FILE] = render_globals(settings)
    files[MANAGER_FILE] = render_manager_user(manager)
    return files


def write_all(files: Mapping[str, str], out_dir: Path) -> list[Path]:
    """Write rendered files; readable by owner and group only (they hold secrets)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(files.items()):
        if "/" in name or name.startswith("."):
            raise ValueError(f"unsafe file name: {name!r}")
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        tmp.replace(path)
        written.append(path)
    return written


# --------------------------------------------------------------------------- command line


def _load_agents(path: Path | None) -> list[AgentPhone]:
    if path is None:
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError("the agents file must hold a JSON list")
    return [
        AgentPhone(
            endpoint=str(item["endpoint"]),
            secret=str(item["secret"]),
            display_name=str(item.get("display_name", "")),
        )
        for item in data
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m smeline.telephony.asterisk_config --out DIR --hotline N ...``"""
    from smeline.reference.data import WINDOWS

    defaults = DialplanSettings(hotline="")  # validated only when rendered
    parser = argparse.ArgumentParser(
        prog="python -m smeline.telephony.asterisk_config",
        description="Render smeline's Asterisk configuration into a directory.",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--hotline", required=True, help="number presented on trunk calls")
    parser.add_argument("--trunk", default=defaults.trunk, help="trunk endpoint name")
    parser.add_argument("--agi", default=defaults.agi, help="FastAGI host:port")
    parser.add_argument("--recording-dir", default=defaults.recording_dir)
    parser.add_argument("--message-dir", default=defaults.message_dir)
    parser.add_argument("--strategy", default=QueueOptions().strategy)
    parser.add_argument(
        "--agents", type=Path, help='JSON list of {"endpoint", "secret", "display_name"}'
    )
    parser.add_argument(
        "--ami-secret-file",
        type=Path,
        help="file holding the AMI secret (default: $SMELINE_AMI_SECRET)",
    )
    args = parser.parse_args(argv)
    if args.ami_secret_file:
        secret = args.ami_secret_file.read_text(encoding="utf-8").strip()
    else:
        secret = os.environ.get("SMELINE_AMI_SECRET", "")
    try:
        files = render_all(
            windows=[WindowQueue(code, name) for code, name, _county in WINDOWS],
            agents=_load_agents(args.agents),
            settings=DialplanSettings(
                hotline=args.hotline,
                agi=args.agi,
                trunk=args.trunk,
                recording_dir=args.recording_dir,
                message_dir=args.message_dir,
            ),
            manager=ManagerUser(secret=secret),
            options=QueueOptions(strategy=args.strategy),
        )
    except (ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in write_all(files, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
