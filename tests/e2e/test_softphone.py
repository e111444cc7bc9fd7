"""The console's softphone in Chromium against a SIP-over-WebSocket peer.

A real ``smeline serve`` with telephony configured (the AMI double of
tests/asterisk_double stands in for Asterisk's manager interface) hands the
agent their phone settings (``GET /api/telephony/agents/me/phone``) with
``SMELINE_WEBRTC_WS_URL`` pointing at tests/sip_ws_peer.py, which speaks SIP
over WebSocket as Asterisk did in the recordings (REGISTER → 401 → 200, the
recorded WebRTC offer, ACK, BYE). JsSIP in the console is the real one, built
into ``dist/``.

Chromium gets a fake microphone (``--use-fake-ui-for-media-stream
--use-fake-device-for-media-stream``); http://127.0.0.1 is a secure context.
Nothing answers ICE checks: these tests assert signalling and what the console
shows, never audio.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from tests.asterisk_double.ami_server import AmiDouble
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Actor,
    People,
    Person,
    Server,
    Shots,
    Staff,
    catalogue,
    serving,
    until,
)
from tests.sip_ws_peer import PLAIN_OFFER, Call, SipWsPeer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
).expect

T = TypeVar("T")

# The arguments plus a fake microphone that is granted without asking.
MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

# Records every RFC 4733 tone JsSIP hands to the browser's RTCDTMFSender (its
# RFC2833 path) before the browser sends it: the only place a test can see an
# RTP telephone-event without media. Test-side only; the console has no hook.
DTMF_SPY = """
(() => {
  window.__dtmfTones = []
  const original = RTCDTMFSender.prototype.insertDTMF
  RTCDTMFSender.prototype.insertDTMF = function (tones, duration, gap) {
    window.__dtmfTones.push({ tones: String(tones), duration })
    return original.call(this, tones, duration, gap)
  }
})()
"""

WINDOW = "xingning"


class Background:
    """An event loop in a thread for the AMI double and the SIP peer (the
    Playwright sync API owns the test's own thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@dataclass
class Rig:
    background: Background
    ami: AmiDouble
    peer: SipWsPeer
    server: Server
    staff: Staff
    browser: Browser


@pytest.fixture(scope="module")
def rig(playwright: Playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    from tests.e2e.conftest import DIST

    if not (DIST / "index.html").is_file():
        pytest.skip("the console is not built: run scripts/build-web")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing")
    background = Background()
    ami = AmiDouble(bad_login_delay=0.05)
    for window in ("meijiang", WINDOW, "city"):
        ami.add_queue(window)
    peer = SipWsPeer()
    background.run(ami.start())
    background.run(peer.start())
    browser = None
    try:
        with serving(
            tmp_path_factory.mktemp("e2e-phone-server"),
            f"smeline_e2e_phone_{os.getpid()}",
            run=background.run,
            # Telephony configured: the AMI double, no FastAGI port of our own.
            ami_host="127.0.0.1",
            ami_port=str(ami.port),
            ami_username=ami.username,
            ami_secret=ami.secret,
            agi_port="0",
            # The agents' SIP WebSocket: the peer (plain ws on the loopback).
            webrtc_ws_url=peer.url,
        ) as server:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *MEDIA_ARGS]
            )
            yield Rig(background, ami, peer, server, Staff(server), browser)
    finally:
        if browser is not None:
            browser.close()
        background.run(peer.stop())
        background.run(ami.stop())
        background.close()


@pytest.fixture
def phone_people(rig: Rig) -> Iterator[People]:
    rig.peer.reset()
    opened = People(rig.browser, rig.server)
    try:
        yield opened
    finally:
        opened.close()


@dataclass
class Agent:
    actor: Actor
    endpoint: str
    password: str
    person: Person
    #: Uncaught errors of the page (a throwing RTCDTMFSender would land here).
    page_errors: list[str]


def new_agent(rig: Rig, people: People, *, known_to_peer: bool = True) -> Agent:
    """An agent of 兴宁 whose endpoint and secret the peer knows (as Asterisk
    knows them from the pjsip.conf `smeline asterisk-config` renders)."""
    actor = rig.staff.user("agent", window_code=WINDOW)
    status, phone = rig.staff.call("GET", "/api/telephony/agents/me/phone", actor)
    assert status == 200, phone
    assert phone["ws_url"] == rig.peer.url
    assert phone["codecs"] == ["PCMA", "PCMU"] and phone["dtmf"] == "rfc4733"
    if known_to_peer:
        rig.peer.accounts[phone["authorization_user"]] = phone["password"]
    person = people.new(actor.username)
    person.context.add_init_script(DTMF_SPY)
    errors: list[str] = []
    person.page.on("pageerror", lambda error: errors.append(str(error)))
    person.log_in(actor)
    return Agent(actor, phone["authorization_user"], phone["password"], person, errors)


def status_of(agent: Agent) -> Any:
    return agent.person.page.locator("[data-test=softphone-status]")


def problem_of(agent: Agent) -> Any:
    return agent.person.page.locator("[data-test=softphone-problem]")


def audio_formats(sdp: str) -> list[str]:
    m_line = next(line for line in sdp.splitlines() if line.startswith("m=audio"))
    return m_line.split()[3:]


def test_agent_registers_rings_answers_with_g711_sends_rfc4733_dtmf_and_hangs_up(
    rig: Rig, phone_people: People, shots: Shots
) -> None:
    zh = catalogue()
    peer = rig.peer
    agent = new_agent(rig, phone_people)
    page = agent.person.page
    agent.person.goto("/console/")

    # Registered with the digest of the password the server handed out.
    expect(status_of(agent)).to_have_text(zh["phone.registered"])
    assert peer.registered(agent.endpoint)
    checks = [c for c in peer.digest_checks if c.username == agent.endpoint]
    assert checks and all(c.ok for c in checks), checks
    assert "sip" in peer.subprotocols
    registers = peer.requests("REGISTER")
    assert registers[0].header("Authorization") is None  # challenged first, as recorded
    assert registers[-1].header("Authorization") is not None
    shots.take(page, "registered")

    # Asterisk's recorded WebRTC offer rings the console.
    call: Call = rig.background.run(peer.invite(agent.endpoint))
    expect(status_of(agent)).to_have_text(zh["phone.ringing"].replace("{caller}", "sipp"))
    until(lambda: 180 in call.statuses, what="180 Ringing")
    assert call.statuses[:2] == [100, 180]
    shots.take(page, "ringing")

    page.locator("[data-test=softphone-answer]").click()
    until(lambda: call.answer is not None, within=15, what="the browser's 200 OK")
    answer = call.answer
    assert answer is not None
    assert answer.header("Content-Type") == "application/sdp"
    formats = audio_formats(answer.body)
    rtpmap = dict(re.findall(r"a=rtpmap:(\d+) ([^\r\n]+)", answer.body))
    codecs = [rtpmap.get(pt, pt).split("/")[0].upper() for pt in formats]
    assert codecs[0] == "PCMA", answer.body
    assert set(codecs) <= {"PCMA", "PCMU", "TELEPHONE-EVENT"}, answer.body
    assert "opus" not in answer.body.lower()
    until(lambda: call.acked, what="the peer's ACK")
    expect(status_of(agent)).to_have_text(zh["phone.inCall"].replace("{caller}", "sipp"))
    shots.take(page, "in-call")

    # Mute is local (no SIP); the tag says so.
    page.locator("[data-test=softphone-mute]").click()
    expect(page.locator("[data-test=softphone-muted]")).to_have_text(zh["phone.muted"])
    page.locator("[data-test=softphone-mute]").click()
    expect(page.locator("[data-test=softphone-muted]")).to_have_count(0)

    # DTMF: handed to the RTP sender as RFC 4733 events, never as SIP INFO.
    page.locator("[data-test=softphone-key-5]").click()
    page.locator("[data-test=softphone-key-\\#]").click()
    until(
        lambda: len(page.evaluate("window.__dtmfTones")) >= 2,
        what="two tones handed to RTCDTMFSender",
    )
    tones = "".join(t["tones"] for t in page.evaluate("window.__dtmfTones"))
    assert "5" in tones and "#" in tones
    shots.take(page, "dtmf")

    page.locator("[data-test=softphone-hangup]").click()
    until(lambda: any(r.method == "BYE" for r in call.requests), what="the browser's BYE")
    assert call.ended_by == "browser"
    expect(status_of(agent)).to_have_text(zh["phone.registered"])
    # The WebSocket is ordered: an INFO sent for a key would have come before the BYE.
    assert peer.requests("INFO") == []
    assert [r.method for r in call.requests] == ["BYE"]
    expect(problem_of(agent)).to_have_count(0)

    # A second call, ended by the caller (the recorded BYE with Q.850 cause 16).
    second: Call = rig.background.run(peer.invite(agent.endpoint))
    expect(status_of(agent)).to_have_text(zh["phone.ringing"].replace("{caller}", "sipp"))
    page.locator("[data-test=softphone-answer]").click()
    until(lambda: second.acked, within=15, what="the second call's ACK")
    expect(status_of(agent)).to_have_text(zh["phone.inCall"].replace("{caller}", "sipp"))
    rig.background.run(peer.bye(second))
    until(
        lambda: any(r.method == "BYE" and r.status == 200 for r in second.responses),
        what="200 OK to the caller's BYE",
    )
    expect(status_of(agent)).to_have_text(zh["phone.registered"])
    expect(problem_of(agent)).to_have_count(0)
    shots.take(page, "caller-hung-up")
    assert set(agent.person.foreign_requests()) == {rig.peer.url}
    assert agent.page_errors == []


def test_answering_an_offer_from_a_non_webrtc_endpoint_is_named_a_misconfiguration(
    rig: Rig, phone_people: People, shots: Shots
) -> None:
    zh = catalogue()
    agent = new_agent(rig, phone_people)
    agent.person.goto("/console/")
    expect(status_of(agent)).to_have_text(zh["phone.registered"])

    # The recorded offer of an endpoint without webrtc=yes: rings fine...
    call: Call = rig.background.run(rig.peer.invite(agent.endpoint, PLAIN_OFFER))
    expect(status_of(agent)).to_have_text(zh["phone.ringing"].replace("{caller}", "sipp"))
    # ... and fails only on answer: Chromium refuses it, JsSIP answers 488.
    agent.person.page.locator("[data-test=softphone-answer]").click()
    until(lambda: call.final() is not None, within=15, what="the browser's final response")
    final = call.final()
    assert final is not None and final.status == 488, final
    until(lambda: call.acked, what="the peer's ACK of the 488")
    expect(problem_of(agent)).to_contain_text(zh["phone.error.extensionMisconfigured"])
    expect(problem_of(agent)).to_have_attribute("data-kind", "extensionMisconfigured")
    expect(status_of(agent)).to_have_text(zh["phone.registered"])
    shots.take(agent.person.page, "misconfigured-extension")


def test_a_wrong_password_and_a_refused_registration_are_named(
    rig: Rig, phone_people: People, shots: Shots
) -> None:
    zh = catalogue()
    # The peer (Asterisk) has another password for this endpoint.
    wrong = new_agent(rig, phone_people, known_to_peer=False)
    rig.peer.accounts[wrong.endpoint] = "not-the-password-the-server-handed-out"
    wrong.person.goto("/console/")
    expect(problem_of(wrong)).to_contain_text(zh["phone.error.authentication"])
    assert not rig.peer.registered(wrong.endpoint)
    assert [c.ok for c in rig.peer.digest_checks if c.username == wrong.endpoint] == [False]
    shots.take(wrong.person.page, "wrong-password")

    # Right password, but the registrar refuses the account (403).
    rig.peer.refuse_registration = 403
    refused = new_agent(rig, phone_people)
    refused.person.goto("/console/")
    expect(problem_of(refused)).to_contain_text(zh["phone.error.registrationRefused"])
    assert any(c.ok for c in rig.peer.digest_checks if c.username == refused.endpoint)
    assert not rig.peer.registered(refused.endpoint)
    shots.take(refused.person.page, "registration-refused")


def test_a_websocket_that_never_opens_is_shown_as_the_certificate_message(
    rig: Rig, phone_people: People, shots: Shots
) -> None:
    """Nothing listens on the SIP WebSocket's port: the browser reports close
    1006 before the socket ever opened — exactly what an untrusted certificate
    looks like to JsSIP (variant-untrusted-cert)."""
    zh = catalogue()
    agent = new_agent(rig, phone_people)
    rig.background.run(rig.peer.stop())
    try:
        agent.person.goto("/console/")
        expect(problem_of(agent)).to_contain_text(zh["phone.error.certificate"])
        expect(problem_of(agent)).to_have_attribute("data-kind", "certificate")
        # The hint names the page to open once to accept the certificate.
        expect(problem_of(agent)).to_contain_text(rig.peer.url.replace("ws://", "http://"))
        shots.take(agent.person.page, "websocket-1006")
    finally:
        rig.background.run(rig.peer.start())
