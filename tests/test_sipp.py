"""The sipp scenarios in ``tests/sipp/``: checked here, run against a real Asterisk on demand.

Always (no Asterisk needed):

* every scenario is well-formed XML with the expected shape, and sipp loads
  it (``sipp -sf <file> -m 0`` parses the scenario, its labels and pcaps);
* the RFC 4733 pcaps are exactly what :func:`rfc4733_pcap` makes, and their
  RTP sequence numbers and timestamps only go forward from the county digit
  to the category digit (Asterisk drops an older event: recordings-2
  "lostdigit");
* loopback runs, sipp against sipp on 127.0.0.1 (no Asterisk): caller.xml and
  caller_info.xml against agent.xml, the survey caller, expert.xml (BYE from
  the far end, and a leftover leg), agent_noanswer.xml, register.xml against
  a digest-checking registrar, and the digits caller.xml puts on the wire;
* the real-Asterisk tests' helpers: telling the route AGI's answer from the
  dialplan's defaults, and registering + QueueAdd / QueueRemove against the
  repository's AMI double and a loopback registrar.

Against a real Asterisk 22 running the shipped dialplan with smeline's
FastAGI behind it, only when ``SMELINE_TEST_ASTERISK=host[:port]`` is set
(otherwise they skip): see ``tests/sipp/README.md`` for what the Asterisk
must be configured with. Outcomes come from sipp's exit codes and from AMI
events (``SMELINE_TEST_AMI_USER`` / ``SMELINE_TEST_AMI_SECRET``).

sipp is Debian's ``sip-tester``; without it these tests fail. Playing pcaps
(RFC 4733 digits) needs root or ``cap_net_raw`` on the sipp binary.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from smeline.telephony.ami import AmiClient, AmiError, AmiTimeout
from smeline.telephony.ami_protocol import AmiMessage
from tests.asterisk_double.ami_server import AmiDouble

SIPP_DIR = Path(__file__).parent / "sipp"
PCAP_DIR = SIPP_DIR / "pcap"
LOOPBACK_IP = "127.0.0.1"
NO_ASTERISK = "no real Asterisk: set SMELINE_TEST_ASTERISK=host:port (see tests/sipp/README.md)"
NO_SIPP = "sipp is not installed: apt-get install sip-tester (Debian package)"

#: scenario → who starts the call: "uac" sends the first request, "uas" waits for it.
SCENARIOS: dict[str, str] = {
    "caller.xml": "uac",
    "caller_info.xml": "uac",
    "caller_survey.xml": "uac",
    "register.xml": "uac",
    "agent.xml": "uas",
    "agent_noanswer.xml": "uas",
    "expert.xml": "uas",
}

#: -set variables each scenario declares (``<Global variables=...>``).
GLOBALS: dict[str, set[str]] = {
    "caller.xml": {"county", "category", "menu_ms", "gap_ms", "hold_ms"},
    "caller_info.xml": {"county", "category", "menu_ms", "gap_ms", "hold_ms"},
    "caller_survey.xml": {"county", "category", "survey", "menu_ms", "gap_ms", "survey_ms"},
    "register.xml": {"expires"},
    "agent.xml": {"ring_ms", "talk_ms"},
    "agent_noanswer.xml": set(),
    "expert.xml": {"ring_ms", "max_ms"},
}


# --------------------------------------------------------------------------- RFC 4733 pcaps

#: All digits of a call share one SSRC; each menu has its own block of
#: sequence numbers and RTP timestamps, county before category, so whatever
#: two digits a call sends, the second is newer than the first.
RTP_SSRC = 0x534D454C  # "SMEL"
TELEPHONE_EVENT_PT = 101  # as offered in caller.xml's SDP
DTMF_SLOTS: dict[str, tuple[int, int]] = {"county": (2000, 160_000), "category": (2100, 320_000)}


def rfc4733_pcap(slot: str, digit: str) -> bytes:
    """One RFC 4733 event as sipp's play_pcap_audio replays it.

    The shape follows sip-tester's dtmf_2833_*.pcap, which reached a real
    Asterisk 22 (recordings-2, DTMFBegin/DTMFEnd 280 ms): 7 packets 20 ms
    apart with a growing duration, then the end packet three times. sipp only
    replaces the UDP ports and addresses; RTP headers go out as written here.
    """
    seq0, timestamp = DTMF_SLOTS[slot]
    event = int(digit)
    if not 0 <= event <= 9:
        raise ValueError(f"digit {digit!r}")
    localhost = bytes([127, 0, 0, 1])

    def frame(seq: int, marker: bool, end: bool, duration: int) -> bytes:
        rtp = struct.pack(
            ">BBHII", 0x80, (0x80 if marker else 0) | TELEPHONE_EVENT_PT, seq, timestamp, RTP_SSRC
        )
        rtp += struct.pack(">BBH", event, (0x80 if end else 0) | 10, duration)
        udp = struct.pack(">HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            ">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, localhost, localhost
        )
        ethernet = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
        return ethernet + ip + udp

    packets = [(i * 20_000, frame(seq0 + i, i == 0, False, (i + 1) * 320)) for i in range(7)]
    packets += [(140_000 + j * 100, frame(seq0 + 7, False, True, 2240)) for j in range(3)]
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet
    records = [
        struct.pack("<IIII", 1_700_000_000, usec, len(data), len(data)) + data
        for usec, data in packets
    ]
    return header + b"".join(records)


def pcap_path(slot: str, digit: str) -> Path:
    return PCAP_DIR / f"dtmf-{slot}-{digit}.pcap"


def write_pcaps() -> None:
    """Regenerate tests/sipp/pcap/ (``python -m tests.test_sipp``)."""
    PCAP_DIR.mkdir(exist_ok=True)
    for slot in DTMF_SLOTS:
        for digit in "0123456789":
            pcap_path(slot, digit).write_bytes(rfc4733_pcap(slot, digit))


@dataclass(frozen=True)
class RtpEvent:
    seq: int
    timestamp: int
    ssrc: int
    payload_type: int
    marker: bool
    event: int
    end: bool
    duration: int


def parse_rtp_event(rtp: bytes) -> RtpEvent:
    first, second, seq, timestamp, ssrc = struct.unpack(">BBHII", rtp[:12])
    assert first == 0x80, "RTP version 2, no padding, extension or CSRC"
    event, flags, duration = struct.unpack(">BBH", rtp[12:16])
    return RtpEvent(
        seq,
        timestamp,
        ssrc,
        second & 0x7F,
        bool(second & 0x80),
        event,
        bool(flags & 0x80),
        duration,
    )


def read_pcap(data: bytes) -> list[RtpEvent]:
    magic, _major, _minor, _zone, _sigfigs, _snaplen, link = struct.unpack("<IHHiIII", data[:24])
    assert (magic, link) == (0xA1B2C3D4, 1), "little-endian pcap, Ethernet"
    offset, events = 24, []
    while offset < len(data):
        _sec, _usec, caplen, origlen = struct.unpack("<IIII", data[offset : offset + 16])
        assert caplen == origlen, "sipp refuses truncated packets"
        packet = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        assert packet[12:14] == b"\x08\x00" and packet[14 + 9] == 17, "IPv4 / UDP"
        events.append(parse_rtp_event(packet[14 + 20 + 8 :]))
    return events


# --------------------------------------------------------------------------- running sipp


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail(NO_SIPP, pytrace=False)
    return path


def can_play_pcaps(binary: str) -> bool:
    """play_pcap_audio opens a raw socket: root, or cap_net_raw on the binary."""
    if os.geteuid() == 0:
        return True
    try:
        return bool(os.getxattr(os.path.realpath(binary), "security.capability"))
    except OSError:
        return False


def needs_pcap_playback() -> None:
    if not can_play_pcaps(sipp_binary()):
        pytest.skip(
            "sipp needs root or cap_net_raw to play pcaps (RFC 4733 digits): "
            "setcap cap_net_raw+ep $(command -v sipp)"
        )


def udp_port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def free_port(ip: str = LOOPBACK_IP, *, media: bool = False) -> int:
    """A free UDP port; for ``media`` also port+2 (sipp binds -mp and -mp+2)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((ip, 0))
            port = int(probe.getsockname()[1])
        if port < 65000 and (not media or udp_port_free(ip, port + 2)):
            return port
    raise RuntimeError("no free UDP port")


@dataclass
class SippRun:
    """One sipp process (``-m 1``: a single call) and its trace files."""

    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    ip: str
    port: int

    def _read(self, suffix: str) -> str:
        path = self.workdir / f"{self.name}.{suffix}"
        return path.read_text(errors="replace") if path.exists() else ""

    def log(self) -> str:
        """The scenario's own <log> lines."""
        return self._read("log")

    def messages(self) -> str:
        """Every SIP message sent and received (-trace_msg)."""
        return self._read("msg")

    def report(self) -> str:
        errors = [
            line
            for line in (self._read("err") + self._read("stderr")).splitlines()
            if line.strip() and "receive timeout on message" not in line
        ]
        return (
            f"--- sipp {self.name} (exit {self.proc.returncode}), log:\n{self.log()}"
            f"--- errors:\n" + "\n".join(errors[-15:])
        )

    def wait_listening(self, timeout: float = 5.0) -> None:
        """Poll until sipp has bound its SIP port (a UAS is then ready)."""
        deadline = time.monotonic() + timeout
        while udp_port_free(self.ip, self.port):
            if self.proc.poll() is not None:
                pytest.fail(f"sipp {self.name} exited before listening\n{self.report()}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"sipp {self.name} not listening on {self.port} after {timeout} s")
            time.sleep(0.02)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"sipp {self.name} still running after {timeout} s\n{self.report()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_sipp(
    workdir: Path,
    name: str,
    scenario: Path,
    *,
    ip: str = LOOPBACK_IP,
    port: int | None = None,
    media_port: int | None = None,
    remote: str | None = None,
    keys: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> SippRun:
    port = port or free_port(ip)
    media_port = media_port or free_port(ip, media=True)
    command = [
        sipp_binary(),
        "-sf",
        str(scenario),
        "-i",
        ip,
        "-p",
        str(port),
        "-mp",
        str(media_port),
        "-m",
        "1",
        "-nostdin",
        "-trace_logs",
        "-log_file",
        f"{name}.log",
        "-trace_msg",
        "-message_file",
        f"{name}.msg",
        "-trace_err",
        "-error_file",
        f"{name}.err",
    ]
    for key, value in (keys or {}).items():
        command += ["-key", key, value]
    for var, value in (variables or {}).items():
        command += ["-set", var, value]
    command += list(extra)
    if remote is not None:
        command.append(remote)
    with (
        open(workdir / f"{name}.screen", "wb") as screen,
        open(workdir / f"{name}.stderr", "wb") as stderr,
    ):
        proc = subprocess.Popen(
            command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=screen, stderr=stderr
        )
    return SippRun(name, proc, workdir, ip, port)


@contextlib.contextmanager
def sipp_runs() -> Iterator[list[SippRun]]:
    """Collects runs; whatever is still running at the end is killed."""
    runs: list[SippRun] = []
    try:
        yield runs
    finally:
        for run in runs:
            run.kill()


def loopback_call(
    workdir: Path,
    uas: tuple[str | Path, Mapping[str, str]],
    uac: tuple[str | Path, Mapping[str, str]],
    *,
    uac_keys: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> tuple[SippRun, SippRun]:
    """A UAS sipp on a free port, then a UAC sipp calling it; both finished."""
    with sipp_runs() as runs:
        server = start_sipp(workdir, "uas", SIPP_DIR / uas[0], variables=uas[1], extra=["-aa"])
        runs.append(server)
        server.wait_listening()
        client = start_sipp(
            workdir,
            "uac",
            SIPP_DIR / uac[0],
            remote=f"{LOOPBACK_IP}:{server.port}",
            keys={"cuser": "07534123456", **(uac_keys or {})},
            variables=uac[1],
            extra=["-s", "96333"],
        )
        runs.append(client)
        client.wait(timeout)
        server.wait(timeout)
    return server, client


def assert_ok(*runs: SippRun) -> None:
    failed = [run for run in runs if run.proc.returncode != 0]
    assert not failed, "\n".join(run.report() for run in failed)


def dtmf_relay_signals(messages: str) -> list[str]:
    """Signal= values of the INFO requests a UAS received, in order."""
    return re.findall(r"^Signal=(\S+)", messages, flags=re.MULTILINE)


# --------------------------------------------------------------------------- static checks


def scenario_tree(name: str) -> ET.Element:
    return ET.parse(SIPP_DIR / name).getroot()


def message_elements(root: ET.Element) -> list[ET.Element]:
    return [el for el in root if el.tag in ("send", "recv", "pause", "nop")]


def first_line(element: ET.Element) -> str:
    return (element.text or "").strip().splitlines()[0].strip()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_is_well_formed_with_the_expected_shape(name: str) -> None:
    root = scenario_tree(name)
    assert root.tag == "scenario" and root.get("name")
    declared = {
        var.strip()
        for element in root.iter("Global")
        for var in (element.get("variables") or "").split(",")
        if var.strip()
    }
    assert declared == GLOBALS[name]
    # The first SIP element says who starts the call (sipp decides client or
    # server mode from it).
    sip = [el for el in message_elements(root) if el.tag in ("send", "recv")]
    if SCENARIOS[name] == "uac":
        method = first_line(sip[0]).split()[0]
        assert sip[0].tag == "send"
        assert method == ("REGISTER" if name == "register.xml" else "INVITE")
    else:
        assert sip[0].tag == "recv" and sip[0].get("request") == "INVITE"
    # Every jump lands on a label, and every label is used.
    labels = [el.get("id") for el in root.iter("label")]
    assert len(labels) == len(set(labels))
    targets = {el.get(attr) for el in message_elements(root) for attr in ("next", "ontimeout")} - {
        None
    }
    assert targets <= set(labels), targets - set(labels)
    # Every -set variable is used somewhere as [$name] or in an action.
    text = (SIPP_DIR / name).read_text()
    for var in declared:
        assert f'variable="{var}"' in text or f"[${var}]" in text, var


@pytest.mark.parametrize("name", ["caller.xml", "caller_info.xml", "caller_survey.xml"])
def test_callers_look_like_the_carrier(name: str) -> None:
    elements = message_elements(scenario_tree(name))
    invite_text = next(el.text or "" for el in elements if el.tag == "send")
    # The test carrier's identify section matches this header (README.md).
    assert re.search(r"^\s*X-Smeline-Test: sipp\s*$", invite_text, re.MULTILINE)
    # CALLERID(num) is the From user (trunk template: trust_id_inbound = no).
    assert re.search(r"^\s*From: <sip:\[cuser\]@", invite_text, re.MULTILINE)
    assert "a=rtpmap:8 PCMA/8000" in invite_text  # the PSTN is A-law
    telephone_event = "a=rtpmap:101 telephone-event/8000" in invite_text
    assert telephone_event == (name == "caller.xml")
    # A caller ends on its own BYE or answers Asterisk's; the survey caller
    # only answers Asterisk's.
    assert any(el.tag == "recv" and el.get("request") == "BYE" for el in elements)
    sends_bye = any(first_line(el).startswith("BYE ") for el in elements if el.tag == "send")
    assert sends_bye == (name != "caller_survey.xml")


def test_rfc4733_caller_plays_one_existing_pcap_per_digit() -> None:
    root = scenario_tree("caller.xml")
    plays: dict[str, str] = {}
    for nop in root.iter("nop"):
        for exec_ in nop.iter("exec"):
            if exec_.get("play_pcap_audio"):
                plays[nop.get("condexec") or ""] = exec_.get("play_pcap_audio") or ""
    expected = {
        f"{slot}_is_{digit}": f"pcap/dtmf-{slot}-{digit}.pcap"
        for slot in DTMF_SLOTS
        for digit in "0123456789"
    }
    assert plays == expected
    for relative in expected.values():
        assert (SIPP_DIR / relative).is_file(), relative


@pytest.mark.parametrize("name", ["caller_info.xml", "caller_survey.xml"])
def test_info_callers_send_dtmf_relay(name: str) -> None:
    infos = [
        el.text or ""
        for el in scenario_tree(name)
        if el.tag == "send" and first_line(el).startswith("INFO ")
    ]
    wanted = ["county", "category"] + (["survey"] if name == "caller_survey.xml" else [])
    assert [re.findall(r"Signal=\[\$(\w+)\]", text) for text in infos] == [[w] for w in wanted]
    for text in infos:
        assert "Content-Type: application/dtmf-relay" in text
        assert "Duration=160" in text


def test_pcaps_are_what_the_generator_makes() -> None:
    files = sorted(PCAP_DIR.glob("*.pcap"))
    assert [f.name for f in files] == sorted(
        pcap_path(slot, digit).name for slot in DTMF_SLOTS for digit in "0123456789"
    )
    for slot in DTMF_SLOTS:
        for digit in "0123456789":
            data = pcap_path(slot, digit).read_bytes()
            assert data == rfc4733_pcap(slot, digit), f"{slot} {digit}: python -m tests.test_sipp"
            events = read_pcap(data)
            assert {e.event for e in events} == {int(digit)}
            assert {(e.ssrc, e.payload_type) for e in events} == {(RTP_SSRC, TELEPHONE_EVENT_PT)}
            assert [e.marker for e in events] == [True] + [False] * 9
            assert [e.end for e in events] == [False] * 7 + [True] * 3
            assert len({e.timestamp for e in events}) == 1  # one event, one timestamp
    # Any category digit is newer than any county digit: Asterisk drops an
    # event whose timestamp is not after the last one's (recordings-2).
    county = [e for d in "0123456789" for e in read_pcap(pcap_path("county", d).read_bytes())]
    category = [e for d in "0123456789" for e in read_pcap(pcap_path("category", d).read_bytes())]
    assert max(e.seq for e in county) < min(e.seq for e in category)
    assert max(e.timestamp for e in county) < min(e.timestamp for e in category)


def test_readme_documents_every_scenario() -> None:
    readme = (SIPP_DIR / "README.md").read_text()
    for name in SCENARIOS:
        assert f"`{name}`" in readme, name
    for var in ("SMELINE_TEST_ASTERISK", "SMELINE_TEST_AMI_USER", "SMELINE_TEST_AMI_SECRET"):
        assert var in readme


# --------------------------------------------------------------------------- sipp, no Asterisk


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sipp_loads_the_scenario(name: str, tmp_path: Path) -> None:
    """``-m 0``: sipp parses the scenario (keywords, labels, variables, pcaps)
    and exits without placing a call."""
    result = subprocess.run(
        [
            sipp_binary(),
            "-sf",
            str(SIPP_DIR / name),
            "-key",
            "cuser",
            "07534123456",
            "-i",
            LOOPBACK_IP,
            "-p",
            str(free_port()),
            "-mp",
            str(free_port(media=True)),
            "-m",
            "0",
            "-nostdin",
            f"{LOOPBACK_IP}:9",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=15,
        check=False,
    )
    errors = [
        line
        for line in result.stderr.decode(errors="replace").splitlines()
        if re.search(r"unable|error|unknown|unsupported|can't|not defined", line, re.IGNORECASE)
    ]
    assert result.returncode == 0 and not errors, "\n".join(errors)


def test_caller_rfc4733_reaches_agent_and_hangs_up(tmp_path: Path) -> None:
    needs_pcap_playback()
    agent, caller = loopback_call(
        tmp_path,
        ("agent.xml", {"ring_ms": "200", "talk_ms": "10000"}),
        (
            "caller.xml",
            {"county": "8", "category": "2", "menu_ms": "100", "gap_ms": "300", "hold_ms": "600"},
        ),
        uac_keys={"cuser": "13923001234"},
    )
    assert_ok(agent, caller)
    assert "caller 13923001234: hangs up (BYE)" in caller.log()
    assert "agent: the far end hung up first" in agent.log()
    assert "180 Ringing" in agent.messages()


def test_caller_info_sends_menu_digits_and_agent_hangs_up(tmp_path: Path) -> None:
    agent, caller = loopback_call(
        tmp_path,
        ("agent.xml", {"ring_ms": "200", "talk_ms": "1500"}),
        (
            "caller_info.xml",
            {"county": "8", "category": "2", "menu_ms": "100", "gap_ms": "100", "hold_ms": "8000"},
        ),
    )
    assert_ok(agent, caller)
    assert dtmf_relay_signals(agent.messages()) == ["8", "2"]
    assert "agent: hangs up (BYE)" in agent.log()
    assert "the far end hung up first" in caller.log()


def test_caller_without_county_sends_only_the_category(tmp_path: Path) -> None:
    agent, caller = loopback_call(
        tmp_path,
        ("agent.xml", {"ring_ms": "100", "talk_ms": "10000"}),
        ("caller_info.xml", {"category": "5", "menu_ms": "100", "hold_ms": "300"}),
    )
    assert_ok(agent, caller)
    assert dtmf_relay_signals(agent.messages()) == ["5"]


def test_caller_refuses_bad_values_before_calling(tmp_path: Path) -> None:
    for n, variables in enumerate(({"category": "x"}, {"county": "12"}, {"hold_ms": "5s"})):
        run = start_sipp(
            tmp_path,
            f"uac{n}",
            SIPP_DIR / "caller.xml",
            remote=f"{LOOPBACK_IP}:{free_port()}",
            keys={"cuser": "07534123456"},
            variables=variables,
            extra=["-s", "96333"],
        )
        assert run.wait(10) != 0, variables
        assert "caller: refused" in run.log()
        assert "INVITE" not in run.messages()


def test_rfc4733_digits_on_the_wire(tmp_path: Path) -> None:
    """caller.xml against a UAS whose SDP points at a socket of this test:
    the county digit, then the category digit, each a complete event, the
    second newer in sequence number and timestamp."""
    needs_pcap_playback()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind((LOOPBACK_IP, 0))
        rtp.settimeout(0.2)
        uas = tmp_path / "uas_fixed_sdp.xml"
        uas.write_text(UAS_FIXED_SDP.replace("RTP_PORT", str(rtp.getsockname()[1])))
        server, client = loopback_call(
            tmp_path,
            (uas, {}),
            (
                "caller.xml",
                {
                    "county": "8",
                    "category": "2",
                    "menu_ms": "100",
                    "gap_ms": "300",
                    "hold_ms": "300",
                },
            ),
        )
        assert_ok(server, client)
        events: list[RtpEvent] = []
        with contextlib.suppress(TimeoutError):
            while True:
                events.append(parse_rtp_event(rtp.recv(2048)))
    digits = [e.event for e in events if e.end]
    assert digits == [8, 8, 8, 2, 2, 2]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    assert {e.payload_type for e in events} == {TELEPHONE_EVENT_PT}


def test_survey_caller_answers_the_survey_then_gets_bye(tmp_path: Path) -> None:
    # agent.xml plays Asterisk here: its BYE after talk_ms is the goodbye.
    agent, caller = loopback_call(
        tmp_path,
        ("agent.xml", {"ring_ms": "100", "talk_ms": "2000"}),
        (
            "caller_survey.xml",
            {"category": "1", "menu_ms": "100", "survey_ms": "500", "survey": "3"},
        ),
    )
    assert_ok(agent, caller)
    assert dtmf_relay_signals(agent.messages()) == ["1", "3"]
    assert "Asterisk hung up after the survey" in caller.log()


def test_survey_caller_fails_when_hung_up_before_the_survey(tmp_path: Path) -> None:
    agent, caller = loopback_call(
        tmp_path,
        ("agent.xml", {"ring_ms": "100", "talk_ms": "300"}),
        ("caller_survey.xml", {"category": "1", "menu_ms": "100", "survey_ms": "3000"}),
    )
    assert caller.proc.returncode != 0, caller.report()
    assert "survey digit" not in caller.log()


def test_expert_leg_ends_on_the_far_ends_bye(tmp_path: Path) -> None:
    expert, caller = loopback_call(
        tmp_path,
        ("expert.xml", {"ring_ms": "200", "max_ms": "10000"}),
        ("caller_info.xml", {"category": "1", "menu_ms": "100", "hold_ms": "800"}),
    )
    assert_ok(expert, caller)
    assert "expert: the room ended the leg" in expert.log()


def test_expert_reports_and_hangs_up_a_leftover_leg(tmp_path: Path) -> None:
    expert, caller = loopback_call(
        tmp_path,
        ("expert.xml", {"ring_ms": "100", "max_ms": "1000"}),
        ("caller_info.xml", {"category": "1", "menu_ms": "100", "hold_ms": "10000"}),
    )
    assert expert.proc.returncode != 0, expert.report()
    assert "LEFTOVER LEG" in expert.log()
    # The expert's own BYE ended the call for the other side.
    assert_ok(caller)
    assert "the far end hung up first" in caller.log()


def test_agent_noanswer_rings_until_cancelled(tmp_path: Path) -> None:
    queue = tmp_path / "queue_cancels.xml"
    queue.write_text(UAC_CANCEL_AFTER_RINGING)
    agent, ringer = loopback_call(tmp_path, ("agent_noanswer.xml", {}), (queue, {}))
    assert_ok(agent, ringer)
    assert "CANCEL after ringing" in agent.log()
    assert "487 Request Terminated" in ringer.messages()
    assert "200 OK" not in agent.messages().split("CANCEL", 1)[0]  # never answered


@pytest.mark.parametrize(("password", "ok"), [("Loopback-pw-1", True), ("wrong-password", False)])
def test_register_answers_the_digest_challenge(tmp_path: Path, password: str, ok: bool) -> None:
    registrar = tmp_path / "registrar.xml"
    registrar.write_text(UAS_DIGEST_REGISTRAR)
    with sipp_runs() as runs:
        server = start_sipp(tmp_path, "registrar", registrar)
        runs.append(server)
        server.wait_listening()
        phone = start_sipp(
            tmp_path,
            "phone",
            SIPP_DIR / "register.xml",
            remote=f"{LOOPBACK_IP}:{server.port}",
            keys={"cuser": "sipp-agent"},
            variables={"expires": "120"},
            extra=["-au", "sipp-agent", "-ap", password],
        )
        runs.append(phone)
        phone.wait(15)
        server.wait(15)
    assert (phone.proc.returncode == 0) == ok, phone.report()
    assert f"registrar: auth {'true' if ok else 'false'} expires 120" in server.log()


# Loopback peers that stand in for Asterisk; operators never run these.

UAS_FIXED_SDP = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="loopback: answers with media to the test's socket">
  <recv request="INVITE"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]LB[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=loopback 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio RTP_PORT RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""

UAC_CANCEL_AFTER_RINGING = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="loopback: a queue rings the agent, then gives up">
  <send retrans="500">
    <![CDATA[
      INVITE sip:sipp-agent@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:queue@[local_ip]:[local_port]>;tag=[pid]Q[call_number]
      To: <sip:sipp-agent@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 7 INVITE
      Contact: <sip:queue@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=queue 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180"/>
  <pause milliseconds="300"/>
  <send>
    <![CDATA[
      CANCEL sip:sipp-agent@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:queue@[local_ip]:[local_port]>;tag=[pid]Q[call_number]
      To: <sip:sipp-agent@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 7 CANCEL
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
  <send>
    <![CDATA[
      ACK sip:sipp-agent@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:queue@[local_ip]:[local_port]>;tag=[pid]Q[call_number]
      To: <sip:sipp-agent@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 7 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""

UAS_DIGEST_REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="loopback: registrar that checks the digest">
  <recv request="REGISTER"/>
  <send>
    <![CDATA[
      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]REG
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="smeline-loopback", nonce="[pid]n[call_number]", algorithm=MD5
      Content-Length: 0
    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="auth_ok" username="sipp-agent" password="Loopback-pw-1"/>
      <ereg regexp="[0-9]+" search_in="hdr" header="Expires:" assign_to="expires"/>
      <log message="registrar: auth [$auth_ok] expires [$expires]"/>
    </action>
  </recv>
  <send condexec="auth_ok">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]REG
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:];expires=[$expires]
      Content-Length: 0
    ]]>
  </send>
  <send condexec="auth_ok" condexec_inverse="true">
    <![CDATA[
      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]REG
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


# --------------------------------------------------------------------------- real Asterisk

AGENT = "sipp-agent"
CARRIER = "sipp-carrier"  # the test trunk endpoint (README.md)
AGENT_INTERFACE = f"PJSIP/{AGENT}"


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    """``host`` or ``host:port`` (IPv4 or a name)."""
    host, _, port = value.partition(":")
    return host, int(port or default_port)


def _route_ip(host: str) -> str:
    """The local address this machine uses towards ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((socket.gethostbyname(host), 9))
        return str(probe.getsockname()[0])


@dataclass(frozen=True)
class Lab:
    """A real Asterisk with the shipped configuration; everything from the environment."""

    sip: str  # host:port of Asterisk's UDP transport
    sipp_ip: str  # address sipp binds and advertises (Asterisk must reach it)
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    agent_secret: str
    hotline: str
    caller_port: int
    agent_port: int
    expert_port: int
    expert_number: str
    menu_ms: str

    @classmethod
    def from_environment(cls) -> Lab:
        target = os.environ.get("SMELINE_TEST_ASTERISK", "").strip()
        if not target:
            pytest.skip(NO_ASTERISK)
        host, port = _host_port(target, 5060)
        user = os.environ.get("SMELINE_TEST_AMI_USER", "")
        secret = os.environ.get("SMELINE_TEST_AMI_SECRET", "")
        if not (user and secret):
            pytest.skip(
                "the real-Asterisk flows need AMI: set SMELINE_TEST_AMI_USER and "
                "SMELINE_TEST_AMI_SECRET (see tests/sipp/README.md)"
            )
        ami_host, ami_port = _host_port(os.environ.get("SMELINE_TEST_AMI", f"{host}:5038"), 5038)
        env = os.environ.get
        return cls(
            sip=f"{host}:{port}",
            sipp_ip=env("SMELINE_TEST_SIPP_IP") or _route_ip(host),
            ami_host=ami_host,
            ami_port=ami_port,
            ami_user=user,
            ami_secret=secret,
            agent_secret=env("SMELINE_TEST_AGENT_SECRET", "Sipp-agent-pw-2026"),
            hotline=env("SMELINE_TEST_HOTLINE", "07532345678"),
            caller_port=int(env("SMELINE_TEST_CALLER_PORT", "5061")),
            agent_port=int(env("SMELINE_TEST_AGENT_PORT", "5070")),
            expert_port=int(env("SMELINE_TEST_EXPERT_PORT", "5072")),
            expert_number=env("SMELINE_TEST_EXPERT_NUMBER", "13800138000"),
            menu_ms=env("SMELINE_TEST_MENU_MS", "10000"),
        )


@pytest.fixture
def lab() -> Lab:
    lab = Lab.from_environment()
    sipp_binary()
    return lab


@dataclass
class AmiWatch:
    """AMI session of a test: every event (VarSet included) kept in order."""

    client: AmiClient
    events: list[AmiMessage] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, message: AmiMessage) -> None:
        self.events.append(message)
        self.changed.set()

    async def wait_for(
        self, predicate: Callable[[AmiMessage], bool], within: float, what: str
    ) -> AmiMessage:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self.changed.clear()
            for message in self.events:
                if predicate(message):
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0:
                pytest.fail(f"AMI: no {what} within {within} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    def named(self, event: str, **fields: str) -> list[AmiMessage]:
        return [
            m
            for m in self.events
            if m.event == event and all(m.get(k) == v for k, v in fields.items())
        ]

    def variables(self, uniqueid: str) -> dict[str, str]:
        """The last value of every SMELINE_* variable set on that channel."""
        return {
            m.get("Variable") or "": m.get("Value") or ""
            for m in self.named("VarSet", Uniqueid=uniqueid)
        }

    async def action(self, action: str, fields: Sequence[tuple[str, str]]) -> None:
        await self.client.send_action(action, fields, check=True)


@contextlib.asynccontextmanager
async def ami_session(lab: Lab) -> AsyncIterator[AmiWatch]:
    client = AmiClient(
        host=lab.ami_host,
        port=lab.ami_port,
        username=lab.ami_user,
        secret=lab.ami_secret,
        name="sipp-test",
        ignored_events=frozenset(),
    )
    watch = AmiWatch(client)
    client.add_event_listener(watch.on_event)
    await client.start()
    try:
        try:
            await client.wait_connected(10)
        except AmiTimeout:
            pytest.fail(
                f"AMI login to {lab.ami_host}:{lab.ami_port} as {lab.ami_user} failed "
                "(AMI listens on 127.0.0.1 only: run on the Asterisk host or tunnel it; "
                "see tests/sipp/README.md)"
            )
        yield watch
    finally:
        await client.stop()


async def finish(run: SippRun, within: float) -> int:
    """Wait for a sipp run off the event loop (AMI events keep arriving)."""
    return await asyncio.to_thread(run.wait, within)


async def register_agent(lab: Lab, workdir: Path, expires: int) -> SippRun:
    """register.xml from the agent's port: its Contact is where agent.xml listens next."""
    run = start_sipp(
        workdir,
        f"register-{expires}",
        SIPP_DIR / "register.xml",
        ip=lab.sipp_ip,
        port=lab.agent_port,
        media_port=free_port(lab.sipp_ip, media=True),
        remote=lab.sip,
        keys={"cuser": AGENT},
        variables={"expires": str(expires)},
        extra=["-au", AGENT, "-ap", lab.agent_secret],
    )
    await finish(run, 20)
    return run


@contextlib.asynccontextmanager
async def agent_in_queue(lab: Lab, ami: AmiWatch, queue: str, workdir: Path) -> AsyncIterator[None]:
    """sipp-agent registered from the agent port and a member of ``queue``,
    as smeline makes a logged-in agent (QueueAdd with StateInterface)."""
    registered = await register_agent(lab, workdir, 300)
    assert_ok(registered)
    member = [("Queue", queue), ("Interface", AGENT_INTERFACE)]
    with contextlib.suppress(AmiError):  # left over from an interrupted run
        await ami.action("QueueRemove", member)
    await ami.action(
        "QueueAdd", [*member, ("StateInterface", AGENT_INTERFACE), ("MemberName", "sipp agent")]
    )
    await ami.wait_for(
        lambda m: (
            m.event == "QueueMemberAdded"
            and m.get("Queue") == queue
            and m.get("Interface") == AGENT_INTERFACE
        ),
        10,
        f"QueueMemberAdded {queue} {AGENT_INTERFACE}",
    )
    try:
        yield
    finally:
        with contextlib.suppress(AmiError):
            await ami.action("QueueRemove", member)
        await register_agent(lab, workdir, 0)


def start_phone(lab: Lab, workdir: Path, scenario: str, **variables: str) -> SippRun:
    """agent.xml / agent_noanswer.xml on the registered agent port."""
    run = start_sipp(
        workdir,
        scenario.removesuffix(".xml"),
        SIPP_DIR / scenario,
        ip=lab.sipp_ip,
        port=lab.agent_port,
        media_port=free_port(lab.sipp_ip, media=True),
        variables=variables,
        extra=["-aa"],
    )
    run.wait_listening()
    return run


def start_caller(lab: Lab, workdir: Path, scenario: str, number: str, **variables: str) -> SippRun:
    return start_sipp(
        workdir,
        scenario.removesuffix(".xml"),
        SIPP_DIR / scenario,
        ip=lab.sipp_ip,
        port=lab.caller_port,
        media_port=free_port(lab.sipp_ip, media=True),
        remote=lab.sip,
        keys={"cuser": number},
        variables={"menu_ms": lab.menu_ms, **variables},
        extra=["-s", lab.hotline],
    )


def skip_if_after_hours(variables: Mapping[str, str], window: str) -> None:
    if variables.get("SMELINE_ACTION") == "afterhours":
        pytest.skip(
            f"smeline routed the call to after-hours instead of {window}: the window must be "
            f"open (business hours) and smeline's live picture must show {AGENT_INTERFACE} "
            f"ready in queue {window}"
        )


def routed_variables(ami: AmiWatch, uniqueid: str) -> dict[str, str] | None:
    """The channel's SMELINE_* variables once the route AGI has finished.

    The dialplan sets SMELINE_ACTION=queue as a default before the AGI, so
    only an SMELINE_ACTION after the route's SMELINE_CALLER_KEY (which the
    handler sets first, the action last) is the route's answer.
    """
    seen_key = False
    for message in ami.named("VarSet", Uniqueid=uniqueid):
        variable = message.get("Variable")
        if variable == "SMELINE_CALLER_KEY":
            seen_key = True
        elif variable == "SMELINE_ACTION" and seen_key:
            return ami.variables(uniqueid)
    return None


async def route_result(ami: AmiWatch, uniqueid: str) -> dict[str, str]:
    await ami.wait_for(
        lambda _m: routed_variables(ami, uniqueid) is not None,
        60,
        "answer from the route AGI (is smeline's FastAGI reachable from Asterisk?)",
    )
    return routed_variables(ami, uniqueid) or {}


def random_number(prefix: str, length: int = 11) -> str:
    return prefix + "".join(random.choices("0123456789", k=length - len(prefix)))


async def caller_channel(ami: AmiWatch, number: str) -> str:
    """Uniqueid of the caller's channel (the agent's leg carries the same caller ID)."""
    message = await ami.wait_for(
        lambda m: (
            m.event == "Newchannel"
            and m.get("CallerIDNum") == number
            and (m.get("Channel") or "").startswith(f"PJSIP/{CARRIER}-")
        ),
        15,
        f"Newchannel from {number} (is the test carrier identified by X-Smeline-Test?)",
    )
    return message.get("Uniqueid") or ""


# The helpers of the real-Asterisk tests, checked here: against the repository's
# AMI double (shaped like the recorded Asterisk 22) and a loopback registrar.


def test_route_result_is_the_routes_action_not_the_dialplan_default() -> None:
    ami = AmiWatch(AmiClient(host=LOOPBACK_IP, port=9, username="x", secret="x"))

    def varset(variable: str, value: str) -> None:
        ami.on_event(
            AmiMessage.of(
                {"Event": "VarSet", "Uniqueid": "u1", "Variable": variable, "Value": value}
            )
        )

    varset("SMELINE_ACTION", "queue")  # [smeline-inbound]'s default before the AGI
    varset("SMELINE_QUEUE", "city")
    assert routed_variables(ami, "u1") is None
    varset("SMELINE_CALLER_KEY", "07534123456")
    varset("SMELINE_WINDOW", "xingning")
    assert routed_variables(ami, "u1") is None
    varset("SMELINE_ACTION", "afterhours")
    assert routed_variables(ami, "u1") == {
        "SMELINE_ACTION": "afterhours",
        "SMELINE_QUEUE": "city",
        "SMELINE_CALLER_KEY": "07534123456",
        "SMELINE_WINDOW": "xingning",
    }
    assert routed_variables(ami, "other") is None


async def test_agent_in_queue_against_the_ami_double(tmp_path: Path) -> None:
    """register.xml from the agent port (twice: Expires 300, then 0) and the
    QueueRemove / QueueAdd / QueueRemove the queue tests send."""
    double = AmiDouble(username="sipp-test", secret="Sipp-test-secret-1", bad_login_delay=0)
    double.add_queue("xingning")
    double.add_endpoint(AGENT, contacts=[f"sip:{AGENT}@{LOOPBACK_IP}:5070"])
    await double.start()
    registrar = tmp_path / "registrar.xml"
    registrar.write_text(UAS_DIGEST_REGISTRAR)
    sip_port = free_port()
    lab = Lab(
        sip=f"{LOOPBACK_IP}:{sip_port}",
        sipp_ip=LOOPBACK_IP,
        ami_host=LOOPBACK_IP,
        ami_port=double.port,
        ami_user="sipp-test",
        ami_secret="Sipp-test-secret-1",
        agent_secret="Loopback-pw-1",
        hotline="07532345678",
        caller_port=free_port(),
        agent_port=free_port(),
        expert_port=free_port(),
        expert_number="13800138000",
        menu_ms="10000",
    )
    with sipp_runs() as runs:
        server = start_sipp(tmp_path, "registrar", registrar, port=sip_port, extra=["-m", "2"])
        runs.append(server)
        server.wait_listening()
        try:
            async with ami_session(lab) as ami:
                async with agent_in_queue(lab, ami, "xingning", tmp_path):
                    assert ami.named(
                        "QueueMemberAdded", Queue="xingning", Interface=AGENT_INTERFACE
                    )
                assert ami.named("QueueMemberRemoved", Queue="xingning", Interface=AGENT_INTERFACE)
        finally:
            await double.stop()
        await finish(server, 10)
    assert_ok(server)
    assert "registrar: auth true expires 300" in server.log()
    assert "registrar: auth true expires 0" in server.log()
    sent = [(a.get("Action"), a.get("Queue"), a.get("Interface")) for a in double.actions]
    assert sent[1:] == [
        ("QueueRemove", "xingning", AGENT_INTERFACE),  # a leftover from an interrupted run
        ("QueueAdd", "xingning", AGENT_INTERFACE),
        ("QueueRemove", "xingning", AGENT_INTERFACE),
        ("Logoff", None, None),
    ]


async def test_real_xingning_landline_reaches_xingning_agent(lab: Lab, tmp_path: Path) -> None:
    """A Xingning landline (example exchange prefix 07534 → 441481) is routed
    without a county menu to the xingning queue, where the agent answers.
    Digits as SIP INFO; the caller hangs up."""
    number = "07534123456"
    async with ami_session(lab) as ami, agent_in_queue(lab, ami, "xingning", tmp_path):
        with sipp_runs() as runs:
            agent = start_phone(lab, tmp_path, "agent.xml", ring_ms="2000", talk_ms="90000")
            runs.append(agent)
            caller = start_caller(
                lab, tmp_path, "caller_info.xml", number, category="1", hold_ms="20000"
            )
            runs.append(caller)
            uniqueid = await caller_channel(ami, number)
            route = await route_result(ami, uniqueid)
            skip_if_after_hours(route, "xingning")
            connect = await ami.wait_for(
                lambda m: m.event == "AgentConnect" and m.get("Uniqueid") == uniqueid,
                60,
                "AgentConnect",
            )
            await finish(caller, 90)
            await finish(agent, 30)
        assert_ok(caller, agent)
        variables = ami.variables(uniqueid)
        assert variables.get("SMELINE_CALLER_KEY") == number
        assert variables.get("SMELINE_COUNTY") == "441481"
        assert variables.get("SMELINE_WINDOW") == "xingning"
        assert variables.get("SMELINE_QUEUE") == "xingning"
        assert variables.get("SMELINE_CATEGORY") == "information"
        assert (connect.get("Queue"), connect.get("Interface")) == ("xingning", AGENT_INTERFACE)
        assert "agent: the far end hung up first" in agent.log()


async def test_real_meizhou_mobile_presses_8_for_wuhua(lab: Lab, tmp_path: Path) -> None:
    """A Meizhou mobile smeline does not know yet hears the county menu and
    presses 8 (五华县) as RFC 4733, then 2 (人员培训): the wuhua queue. A new
    number each run: smeline remembers a county chosen in the menu."""
    needs_pcap_playback()
    number = random_number("1392300")  # segment 1392300 is 梅州
    async with ami_session(lab) as ami, agent_in_queue(lab, ami, "wuhua", tmp_path):
        with sipp_runs() as runs:
            agent = start_phone(lab, tmp_path, "agent.xml", ring_ms="2000", talk_ms="90000")
            runs.append(agent)
            caller = start_caller(
                lab, tmp_path, "caller.xml", number, county="8", category="2", hold_ms="20000"
            )
            runs.append(caller)
            uniqueid = await caller_channel(ami, number)
            route = await route_result(ami, uniqueid)
            assert route.get("SMELINE_COUNTY") == "441424", (
                "the county digit 8 did not arrive in the menu: "
                f"{route} (menu_ms {lab.menu_ms}: after smeline/welcome?)"
            )
            skip_if_after_hours(route, "wuhua")
            connect = await ami.wait_for(
                lambda m: m.event == "AgentConnect" and m.get("Uniqueid") == uniqueid,
                60,
                "AgentConnect",
            )
            await finish(caller, 90)
            await finish(agent, 30)
        assert_ok(caller, agent)
        variables = ami.variables(uniqueid)
        assert variables.get("SMELINE_CATEGORY") == "training"
        assert variables.get("SMELINE_QUEUE") == "wuhua"
        assert (connect.get("Queue"), connect.get("Interface")) == ("wuhua", AGENT_INTERFACE)


async def test_real_after_hours_voicemail(lab: Lab, tmp_path: Path) -> None:
    """Nobody can answer (outside business hours, or no agent ready in the
    city queue): the caller hears the voicemail instructions, is recorded and
    hangs up during Record, as most callers do; the h extension files the work
    order (SMELINE_TICKET)."""
    number = random_number("1380100")  # a Beijing mobile: the city centre
    async with ami_session(lab) as ami:
        with sipp_runs() as runs:
            caller = start_caller(
                lab, tmp_path, "caller.xml", number, category="9", hold_ms="40000"
            )
            runs.append(caller)
            uniqueid = await caller_channel(ami, number)
            await finish(caller, 120)
            assert_ok(caller)
            await ami.wait_for(
                lambda m: (
                    m.event == "VarSet"
                    and m.get("Uniqueid") == uniqueid
                    and m.get("Variable") == "SMELINE_TICKET"
                ),
                20,
                "SMELINE_TICKET from the voicemail AGI after the hang-up",
            )
        variables = ami.variables(uniqueid)
        assert not ami.named("AgentConnect", Uniqueid=uniqueid), (
            "an agent answered: the after-hours test needs nobody ready in the city queue"
        )
        assert variables.get("SMELINE_OUTCOME") == "voicemail", variables
        assert (variables.get("SMELINE_MESSAGE") or "").endswith(".wav"), variables
        assert re.fullmatch(r"[0-9]{1,16}", variables.get("SMELINE_TICKET") or ""), variables
        assert variables.get("SMELINE_CATEGORY") == "other"


async def test_real_survey_digit_is_stored(lab: Lab, tmp_path: Path) -> None:
    """The agent hangs up first; Queue option c keeps the caller, who answers
    the survey with 1 (SIP INFO) and is hung up on by Asterisk. The VarSet
    SMELINE_SURVEY=1 is what smeline's call tracker stores in the call record
    (the database row itself is not read here)."""
    number = "07534123457"
    async with ami_session(lab) as ami, agent_in_queue(lab, ami, "xingning", tmp_path):
        with sipp_runs() as runs:
            agent = start_phone(lab, tmp_path, "agent.xml", ring_ms="2000", talk_ms="5000")
            runs.append(agent)
            caller = start_caller(
                lab,
                tmp_path,
                "caller_survey.xml",
                number,
                category="1",
                survey="1",
                survey_ms=os.environ.get("SMELINE_TEST_SURVEY_MS", "20000"),
            )
            runs.append(caller)
            uniqueid = await caller_channel(ami, number)
            route = await route_result(ami, uniqueid)
            skip_if_after_hours(route, "xingning")
            await finish(agent, 60)
            await finish(caller, 90)
        assert_ok(agent, caller)
        complete = ami.named("AgentComplete", Uniqueid=uniqueid)
        assert complete and complete[-1].get("Reason") == "agent", complete
        survey = [
            m.get("Value")
            for m in ami.named("VarSet", Uniqueid=uniqueid)
            if m.get("Variable") == "SMELINE_SURVEY"
        ]
        assert survey == ["offered", "1"], survey


async def test_real_agent_ring_no_answer_is_autopaused(lab: Lab, tmp_path: Path) -> None:
    """The agent's phone rings out (queue timeout 15 s): AgentRingNoAnswer,
    then autopause = all pauses the member (QueueMemberPause Paused 1)."""
    number = "07534123458"
    async with ami_session(lab) as ami, agent_in_queue(lab, ami, "xingning", tmp_path):
        with sipp_runs() as runs:
            agent = start_phone(lab, tmp_path, "agent_noanswer.xml")
            runs.append(agent)
            caller = start_caller(
                lab, tmp_path, "caller_info.xml", number, category="1", hold_ms="30000"
            )
            runs.append(caller)
            uniqueid = await caller_channel(ami, number)
            route = await route_result(ami, uniqueid)
            skip_if_after_hours(route, "xingning")
            await ami.wait_for(
                lambda m: (
                    m.event == "AgentRingNoAnswer"
                    and m.get("Uniqueid") == uniqueid
                    and m.get("Interface") == AGENT_INTERFACE
                ),
                60,
                "AgentRingNoAnswer",
            )
            await ami.wait_for(
                lambda m: (
                    m.event == "QueueMemberPause"
                    and m.get("Interface") == AGENT_INTERFACE
                    and m.get("Paused") == "1"
                ),
                10,
                "QueueMemberPause Paused 1 (autopause)",
            )
            await finish(agent, 30)
            await finish(caller, 90)
        assert_ok(agent, caller)
        assert not ami.named("AgentConnect", Uniqueid=uniqueid)


async def test_real_expert_leg_ends_with_the_caller(lab: Lab, tmp_path: Path) -> None:
    """Escalation as docs/dialplan.md describes it (the AMI steps smeline
    takes): caller and agent redirected into a room, the expert originated
    through the trunk (the test carrier, whose contact is expert.xml). When
    the caller hangs up, ConfBridge ends the expert's and the agent's legs:
    expert.xml fails if its BYE does not come (a leftover leg)."""
    number = "07534123459"
    room = f"sipp-{uuid.uuid4().hex[:12]}"
    async with ami_session(lab) as ami, agent_in_queue(lab, ami, "xingning", tmp_path):
        with sipp_runs() as runs:
            expert = start_sipp(
                tmp_path,
                "expert",
                SIPP_DIR / "expert.xml",
                ip=lab.sipp_ip,
                port=lab.expert_port,
                media_port=free_port(lab.sipp_ip, media=True),
                variables={"ring_ms": "1000", "max_ms": "90000"},
                extra=["-aa"],
            )
            runs.append(expert)
            expert.wait_listening()
            agent = start_phone(lab, tmp_path, "agent.xml", ring_ms="1000", talk_ms="120000")
            runs.append(agent)
            caller = start_caller(
                lab, tmp_path, "caller_info.xml", number, category="1", hold_ms="45000"
            )
            runs.append(caller)
            uniqueid = await caller_channel(ami, number)
            route = await route_result(ami, uniqueid)
            skip_if_after_hours(route, "xingning")
            connect = await ami.wait_for(
                lambda m: m.event == "AgentConnect" and m.get("Uniqueid") == uniqueid,
                60,
                "AgentConnect",
            )
            caller_channel_name = connect.get("Channel") or ""
            agent_channel_name = connect.get("DestChannel") or ""
            for channel, role in ((caller_channel_name, "caller"), (agent_channel_name, "agent")):
                await ami.action(
                    "Setvar", [("Channel", channel), ("Variable", "SMELINE_ROOM"), ("Value", room)]
                )
                await ami.action(
                    "Setvar",
                    [("Channel", channel), ("Variable", "SMELINE_CONF_ROLE"), ("Value", role)],
                )
            await ami.action(
                "Redirect",
                [
                    ("Channel", caller_channel_name),
                    ("Context", "smeline-conference"),
                    ("Exten", "s"),
                    ("Priority", "1"),
                    ("ExtraChannel", agent_channel_name),
                    ("ExtraContext", "smeline-conference"),
                    ("ExtraExten", "s"),
                    ("ExtraPriority", "1"),
                ],
            )
            await ami.wait_for(
                lambda m: m.event == "ConfbridgeJoin" and m.get("Conference") == room,
                15,
                f"ConfbridgeJoin in {room}",
            )
            response = await ami.client.originate_and_wait(
                [
                    ("Channel", f"Local/e-{lab.expert_number}@smeline-dial-target/n"),
                    ("Context", "smeline-conference"),
                    ("Exten", "s"),
                    ("Priority", "1"),
                    ("Timeout", "30000"),
                    ("Variable", f"SMELINE_ROOM={room}"),
                    ("Variable", "SMELINE_CONF_ROLE=party"),
                    ("Variable", f"SMELINE_LINKEDID={connect.get('Linkedid') or uniqueid}"),
                ],
                timeout=40,
            )
            assert response.get("Response") == "Success", response.fields
            await ami.wait_for(
                lambda m: len(ami.named("ConfbridgeJoin", Conference=room)) >= 3,
                20,
                f"three members in {room} (caller, agent, expert)",
            )
            await finish(caller, 90)
            await finish(expert, 30)
            await finish(agent, 30)
        assert_ok(caller, expert, agent)
        assert "expert: the room ended the leg" in expert.log()
        assert "agent: the far end hung up first" in agent.log()
        await ami.wait_for(
            lambda m: m.event == "ConfbridgeEnd" and m.get("Conference") == room,
            10,
            f"ConfbridgeEnd {room}",
        )


async def test_real_agent_registers_with_digest(lab: Lab, tmp_path: Path) -> None:
    """register.xml for the plain UDP test endpoint (auth and aor from the
    shipped agent templates): a contact appears, and Expires 0 removes it."""
    async with ami_session(lab) as ami:
        registered = await register_agent(lab, tmp_path, 60)
        assert_ok(registered)
        await ami.wait_for(
            lambda m: (
                m.event == "ContactStatus"
                and m.get("AOR") == AGENT
                and m.get("ContactStatus") not in ("Removed", "Unreachable")
            ),
            10,
            f"ContactStatus of {AGENT}",
        )
        removed = await register_agent(lab, tmp_path, 0)
        assert_ok(removed)
        await ami.wait_for(
            lambda m: (
                m.event == "ContactStatus"
                and m.get("AOR") == AGENT
                and m.get("ContactStatus") == "Removed"
            ),
            10,
            f"ContactStatus Removed of {AGENT}",
        )


if __name__ == "__main__":
    write_pcaps()
