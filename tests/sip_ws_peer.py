"""A SIP-over-WebSocket peer that behaves as Asterisk did towards a JsSIP agent.

Shaped on the third batch of recordings (``../shared/asterisk/recordings-webrtc/``:
``browser-ws-webrtc-queue.txt`` — the frames a real JsSIP 3.13.8 in Chromium
exchanged with a real Asterisk 22.10.1 over WSS — and the ``pjsip set logger
on`` traces in ``asterisk-full-*.log``). It is an aiohttp WebSocket server on
``/ws`` with the subprotocol ``sip`` and does only what the recordings show:

* REGISTER without credentials → ``401 Unauthorized`` with a digest challenge
  (``realm="asterisk"``, a ``<time>/<hex>`` nonce, an opaque, MD5, qop auth);
  REGISTER with ``Authorization`` → the digest is checked against the account's
  password → ``200 OK`` (Date, Contact with ``expires``, Expires); ``Expires: 0``
  un-registers the same way;
* ``invite()``: an INVITE down the agent's WebSocket carrying Asterisk's recorded
  WebRTC offer (``WEBRTC_OFFER``; ``PLAIN_OFFER`` is the recorded offer of an
  endpoint without ``webrtc=yes``); the browser's 100 / 180 / final response are
  kept; a 2xx is ACKed with a new branch, a non-2xx final response (the 488 of
  ``variant-plain-endpoint``) with the INVITE's branch, as recorded;
* requests from the browser inside a call (INFO, BYE) → ``200 OK``; a
  re-INVITE (hold) → ``501`` — none is recorded, so none is imitated;
  ``bye()``: the caller hangs up (BYE with ``Reason: Q.850;cause=16``).

Header order and spelling follow the recordings (including pjsip's two spaces in
``Content-Length:  0``). What the recordings do not show is marked *guess* in
the comments: the answer to a wrong digest, the 403 refusal, the answer to a
BYE sent by the browser. Everything that changes from the recording is said
where it happens. There is no media: nothing answers ICE checks, so no call
here ever gets audio (the tests stop long before ICE gives up).

Thread-safe enough for the browser tests: the peer runs on its own event loop;
other threads only read its lists and call ``call_soon_threadsafe`` through the
caller's helper.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate

from aiohttp import WSMsgType, web

SERVER = "cctest-asterisk"  # the recorded Server / User-Agent
REALM = "asterisk"

# Asterisk's SDP offer to the browser, byte for byte from the working run
# (browser-ws-webrtc-queue.txt, INVITE at 11:06:45.650; 954 bytes, CRLF lines):
# endpoint with webrtc=yes, allow=alaw,ulaw, dtmf_mode=rfc4733. Nothing is
# changed: the candidates (192.0.2.2, fd00::2, fe80::…) and the fingerprint are
# the recorded ones. Chromium accepts the offer and answers; ICE then has no one
# to talk to, which these tests do not need (they assert signalling only).
WEBRTC_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1426940535 1426940535 IN IP4 192.0.2.2",
        "s=Asterisk",
        "c=IN IP4 192.0.2.2",
        "t=0 0",
        "a=msid-semantic:WMS *",
        "a=group:BUNDLE audio-0",
        "m=audio 10696 UDP/TLS/RTP/SAVPF 8 0 101",
        "a=connection:new",
        "a=setup:actpass",
        "a=fingerprint:SHA-256 ED:77:D5:38:66:94:28:BF:03:39:D4:C1:4F:2F:26:F9:80:0E:81:73:16:"
        "CB:7F:7E:5F:7B:E3:A4:AB:79:54:AD",
        "a=ice-ufrag:48691c3d5129edc8413fa378070e2ec4",
        "a=ice-pwd:5e9cd5b66a48433d2f1b905f457dcb1d",
        "a=candidate:Hc0000202 1 UDP 2130706431 192.0.2.2 10696 typ host",
        "a=candidate:H10866f5f 1 UDP 2130706431 fd00::2 10696 typ host",
        "a=candidate:H9957f478 1 UDP 2130706431 fe80::fc:ff:fe00:1 10696 typ host",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=maxptime:140",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=ssrc:552623029 cname:85c21b23-e99d-4b71-b402-ebbdb2c6dc99",
        "a=msid:63df6ea9-902a-4972-8a3f-a7b8b6b6525b cf2c3cf6-a29a-4cbc-af09-6343376aff6b",
        "a=rtcp-fb:* transport-cc",
        "a=mid:audio-0",
        "",
    ]
)

# The offer of an endpoint copied from a UDP phone (no webrtc=yes), byte for
# byte from asterisk-full-variant-plain-endpoint.log (INVITE at 11:03:50.384,
# 255 bytes): no ICE, no fingerprint. Chromium refuses it on answer and JsSIP
# replies 488 Not Acceptable Here.
PLAIN_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1631428757 1631428757 IN IP4 192.0.2.2",
        "s=Asterisk",
        "c=IN IP4 192.0.2.2",
        "t=0 0",
        "m=audio 10028 RTP/AVP 8 0 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=maxptime:140",
        "a=sendrecv",
        "",
    ]
)

assert len(WEBRTC_OFFER.encode()) == 954 and len(PLAIN_OFFER.encode()) == 255  # as recorded

# SIP's compact header forms (RFC 3261 7.3.3), in case a client uses them.
_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
}
_COMPACT.update({"c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding"})


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class SipMessage:
    """One SIP message as it came over the WebSocket."""

    start_line: str
    headers: list[tuple[str, str]]
    body: str
    raw: str

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        return self.cseq[1]

    @property
    def status(self) -> int:
        return 0 if self.is_request else int(self.start_line.split(" ")[1])

    @property
    def cseq(self) -> tuple[int, str]:
        number, method = (self.header("CSeq") or "0 NONE").split()
        return int(number), method

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if _COMPACT.get(key.lower(), key.lower()) == wanted:
                return value
        return None


def parse_sip(text: str) -> SipMessage:
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded line
            key, value = headers[-1]
            headers[-1] = (key, value + " " + line.strip())
            continue
        key, _, value = line.partition(":")
        headers.append((key.strip(), value.strip()))
    message = SipMessage(lines[0], headers, body, text)
    length = message.header("Content-Length")
    if length is not None and length.strip().isdigit():
        message.body = body.encode()[: int(length)].decode()
    return message


def digest_params(value: str) -> dict[str, str]:
    """The parameters of ``Digest k=v, k="v", …``."""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "digest":
        return {}
    found = re.findall(r'([A-Za-z0-9_-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest)
    return {key.lower(): quoted or bare for key, quoted, bare in found}


def uri_user(header_value: str) -> str:
    """``sip:USER@host`` out of a name-addr or addr-spec."""
    found = re.search(r"sips?:([^@;>]+)@", header_value)
    return found.group(1) if found else ""


def _tag(header_value: str) -> str | None:
    found = re.search(r";tag=([^;>\s]+)", header_value)
    return found.group(1) if found else None


@dataclass
class DigestCheck:
    username: str
    ok: bool


@dataclass
class Registration:
    user: str  # the digest user name (Asterisk: the endpoint)
    contact: str  # the Contact header value as JsSIP sent it
    contact_user: str  # JsSIP's random contact user: INVITEs go to it
    ws: web.WebSocketResponse
    remote_port: int


@dataclass
class Call:
    """One INVITE from the peer to a registered browser."""

    user: str
    call_id: str
    branch: str
    from_tag: str
    cseq: int
    ruri: str
    to_uri: str
    ws: web.WebSocketResponse
    responses: list[SipMessage] = field(default_factory=list)
    #: Requests the browser sent inside this call (INFO, BYE, …).
    requests: list[SipMessage] = field(default_factory=list)
    acked: bool = False
    to_tag: str | None = None
    ended_by: str | None = None  # "browser" / "peer"

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses if r.method == "INVITE"]

    @property
    def answer(self) -> SipMessage | None:
        """The browser's 200 OK to the INVITE, if any."""
        return next((r for r in self.responses if r.method == "INVITE" and r.status == 200), None)

    def final(self) -> SipMessage | None:
        return next(
            (r for r in self.responses if r.method == "INVITE" and r.status >= 200),
            None,
        )


class SipWsPeer:
    """See the module docstring. ``accounts``: digest user → password."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.accounts: dict[str, str] = {}
        #: When set, a REGISTER with correct credentials is answered with this
        #: final status (403: the account is known and refused).
        self.refuse_registration: int | None = None
        #: Every message received, in order, and the raw text of every one sent.
        self.received: list[SipMessage] = []
        self.sent: list[str] = []
        self.digest_checks: list[DigestCheck] = []
        self.registrations: dict[str, Registration] = {}
        self.calls: list[Call] = []
        #: The subprotocol each WebSocket was opened with.
        self.subprotocols: list[str | None] = []
        self._nonces: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._cseq = itertools.count(9273)  # the recorded first INVITE CSeq

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._websocket)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Close every WebSocket and stop listening (the port is kept for a restart)."""
        runner, self._runner = self._runner, None
        for registration in list(self.registrations.values()):
            await registration.ws.close()
        self.registrations.clear()
        if runner is not None:
            await runner.cleanup()

    def reset(self) -> None:
        """Forget everything seen so far (between tests)."""
        self.refuse_registration = None
        self.received.clear()
        self.sent.clear()
        self.digest_checks.clear()
        self.calls.clear()

    # -- queries ---------------------------------------------------------------

    def requests(self, method: str) -> list[SipMessage]:
        return [m for m in self.received if m.is_request and m.method == method]

    def registered(self, user: str) -> bool:
        return user in self.registrations

    # -- the WebSocket -------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("sip",), autoping=True)
        await ws.prepare(request)
        self.subprotocols.append(ws.ws_protocol)
        peername = request.transport.get_extra_info("peername") if request.transport else None
        remote_port = int(peername[1]) if peername else 0
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                text = str(frame.data)
                if not text.strip():
                    continue  # a CRLF keep-alive (recorded both ways)
                message = parse_sip(text)
                self.received.append(message)
                await self._dispatch(ws, remote_port, message)
        finally:
            # Asterisk drops the contact as soon as the WebSocket closes
            # (variant-tab-closed).
            for user, registration in list(self.registrations.items()):
                if registration.ws is ws:
                    del self.registrations[user]
        return ws

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        self.sent.append(text)
        await ws.send_str(text)

    async def _dispatch(self, ws: web.WebSocketResponse, port: int, message: SipMessage) -> None:
        if not message.is_request:
            self._on_response(ws, message)
            return
        if message.method == "REGISTER":
            await self._on_register(ws, port, message)
        elif message.method == "ACK":
            return
        else:
            await self._on_in_dialog(ws, port, message)

    # -- REGISTER ------------------------------------------------------------

    def _via(self, message: SipMessage, port: int) -> str:
        """The request's Via with ``rport`` filled and ``received`` added, as
        Asterisk answered: ``…invalid;rport=54944;received=127.0.0.1;branch=…``."""
        via = message.header("Via") or ""
        sent_by, _, params = via.partition(";")
        kept = [p for p in params.split(";") if p and p != "rport"]
        return ";".join([sent_by, f"rport={port}", "received=127.0.0.1", *kept])

    def _response_head(
        self, message: SipMessage, port: int, status: str, to_tag: str | None
    ) -> list[str]:
        to = message.header("To") or ""
        if to_tag is not None and _tag(to) is None:
            to = f"{to};tag={to_tag}"
        return [
            f"SIP/2.0 {status}",
            f"Via: {self._via(message, port)}",
            f"Call-ID: {message.header('Call-ID')}",
            f"From: {message.header('From')}",
            f"To: {to}",
            f"CSeq: {message.header('CSeq')}",
        ]

    @staticmethod
    def _finish(lines: list[str], body: str = "") -> str:
        # pjsip writes "Content-Length:  0" (two spaces) in its own responses.
        return "\r\n".join([*lines, f"Server: {SERVER}", "Content-Length:  0", "", body])

    def _branch(self, message: SipMessage) -> str:
        found = re.search(r";branch=([^;\s]+)", message.header("Via") or "")
        return found.group(1) if found else uuid.uuid4().hex

    def _challenge(self) -> str:
        # Recorded: nonce="1795345603/b0c7571a8d816d30b1de7ce65febadcf" (a
        # timestamp and a hash), opaque="5a72d03b673e3683".
        nonce = f"{int(time.time())}/{secrets.token_hex(16)}"
        self._nonces.add(nonce)
        return (
            f'Digest realm="{REALM}",nonce="{nonce}",opaque="{secrets.token_hex(8)}",'
            'algorithm=MD5,qop="auth"'
        )

    def _check_digest(self, message: SipMessage, params: dict[str, str]) -> bool:
        username = params.get("username", "")
        password = self.accounts.get(username)
        ok = (
            password is not None
            and params.get("realm") == REALM
            and params.get("nonce") in self._nonces
            and params.get("algorithm", "MD5").upper() == "MD5"
        )
        if ok and password is not None:
            ha1 = md5(f"{username}:{REALM}:{password}")
            ha2 = md5(f"{message.method}:{params.get('uri', '')}")
            if params.get("qop") == "auth":
                expected = md5(
                    f"{ha1}:{params['nonce']}:{params.get('nc', '')}:"
                    f"{params.get('cnonce', '')}:auth:{ha2}"
                )
            else:
                expected = md5(f"{ha1}:{params['nonce']}:{ha2}")
            ok = secrets.compare_digest(expected, params.get("response", ""))
        self.digest_checks.append(DigestCheck(username, ok))
        return ok

    async def _on_register(self, ws: web.WebSocketResponse, port: int, message: SipMessage) -> None:
        branch = self._branch(message)  # recorded: the To tag of the answer is the branch
        authorization = message.header("Authorization")
        params = digest_params(authorization) if authorization else {}
        if not params or not self._check_digest(message, params):
            # Recorded for a REGISTER without credentials. *Guess* for a wrong
            # digest: Asterisk (res_pjsip_authenticator_digest) challenges again
            # with a fresh nonce; JsSIP then gives up with "Authentication Error".
            lines = self._response_head(message, port, "401 Unauthorized", branch)
            lines.append(f"WWW-Authenticate: {self._challenge()}")
            await self._send(ws, self._finish(lines))
            return
        self._nonces.discard(params["nonce"])
        user = params["username"]
        if self.refuse_registration is not None:
            # *Guess*: not recorded. A final refusal with the usual headers.
            status = f"{self.refuse_registration} Forbidden"
            await self._send(ws, self._finish(self._response_head(message, port, status, branch)))
            return
        expires = int(message.header("Expires") or "300")
        contact = message.header("Contact") or ""
        lines = self._response_head(message, port, "200 OK", branch)
        lines.append(f"Date: {formatdate(usegmt=True)}")
        if expires > 0:
            self.registrations[user] = Registration(user, contact, uri_user(contact), ws, port)
            # Recorded: "Contact: <sip:…;transport=ws>;expires=299" for Expires 300
            # (the remaining time, one second gone), then "Expires: 300".
            contact_uri = contact.split(";+sip", 1)[0].split(">", 1)[0] + ">"
            lines.append(f"Contact: {contact_uri};expires={expires - 1}")
        else:
            self.registrations.pop(user, None)
        lines.append(f"Expires: {expires}")
        await self._send(ws, self._finish(lines))

    # -- calls ---------------------------------------------------------------

    async def invite(self, user: str, sdp: str = WEBRTC_OFFER) -> Call:
        """Ring ``user``'s browser as Queue() rang PJSIP/webagent."""
        registration = self.registrations[user]
        # Changed from the recording: the Request-URI and To carry this
        # browser's contact user and WebSocket source port (recorded
        # "sip:0a4bppmh@127.0.0.1:54944;transport=ws"), the Via this peer's own
        # port (recorded 8089), and Call-ID / tags / branch are new per call
        # (uuid4, like pjsip). Everything else is the recorded INVITE.
        ruri = f"sip:{registration.contact_user}@127.0.0.1:{registration.remote_port};transport=ws"
        call = Call(
            user=user,
            call_id=str(uuid.uuid4()),
            branch=f"z9hG4bKPj{uuid.uuid4()}",
            from_tag=str(uuid.uuid4()),
            cseq=next(self._cseq),
            ruri=ruri,
            to_uri=f"<sip:{registration.contact_user}@127.0.0.1>",
            ws=registration.ws,
        )
        self.calls.append(call)
        body = sdp
        lines = [
            f"INVITE {ruri} SIP/2.0",
            f"Via: SIP/2.0/WSS 127.0.0.1:{self.port};rport;branch={call.branch};alias",
            f'From: "sipp" <sip:sipp@vm>;tag={call.from_tag}',
            f"To: {call.to_uri}",
            "Contact: <sip:asterisk@vm:5060;transport=ws>",
            f"Call-ID: {call.call_id}",
            f"CSeq: {call.cseq} INVITE",
            "Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, "
            "UPDATE, PRACK, INFO, REFER",
            "Supported: 100rel, timer, replaces, norefersub, histinfo",
            "Session-Expires: 1800",
            "Min-SE: 90",
            "Max-Forwards: 70",
            f"User-Agent: {SERVER}",
            "Content-Type: application/sdp",
            f"Content-Length:   {len(body.encode())}",
            "",
            body,
        ]
        await self._send(call.ws, "\r\n".join(lines))
        return call

    def _call_of(self, message: SipMessage) -> Call | None:
        call_id = message.header("Call-ID")
        return next((c for c in self.calls if c.call_id == call_id), None)

    def _on_response(self, ws: web.WebSocketResponse, message: SipMessage) -> None:
        call = self._call_of(message)
        if call is None:
            return
        call.responses.append(message)
        if message.method != "INVITE" or message.status < 200 or call.acked:
            return
        call.to_tag = _tag(message.header("To") or "")
        call.acked = True
        # Recorded: a 2xx gets an ACK with a new branch; a non-2xx final
        # response (488) an ACK with the INVITE's own branch.
        branch = call.branch if message.status >= 300 else f"z9hG4bKPj{uuid.uuid4()}"
        lines = [
            f"ACK {call.ruri} SIP/2.0",
            f"Via: SIP/2.0/WSS 127.0.0.1:{self.port};rport;branch={branch};alias",
            f'From: "sipp" <sip:sipp@vm>;tag={call.from_tag}',
            f"To: {message.header('To')}",
            f"Call-ID: {call.call_id}",
            f"CSeq: {call.cseq} ACK",
            "Max-Forwards: 70",
            f"User-Agent: {SERVER}",
            "Content-Length:  0",
            "",
            "",
        ]
        task = asyncio.ensure_future(self._send(ws, "\r\n".join(lines)))
        task.add_done_callback(lambda t: t.exception())

    async def _on_in_dialog(
        self, ws: web.WebSocketResponse, port: int, message: SipMessage
    ) -> None:
        call = self._call_of(message)
        if call is None:
            # *Guess*: a request outside any dialog this peer knows.
            lines = self._response_head(message, port, "481 Call/Transaction Does Not Exist", None)
            await self._send(ws, self._finish(lines))
            return
        call.requests.append(message)
        if message.method in ("INVITE", "UPDATE"):
            # *Guess*, and deliberately no more: the recordings hold no
            # re-INVITE (hold / unhold), so this peer does not pretend to
            # know Asterisk's SDP answer to one.
            lines = self._response_head(message, port, "501 Not Implemented", None)
            await self._send(ws, self._finish(lines))
            return
        if message.method == "BYE":
            call.ended_by = call.ended_by or "browser"
        # Recorded for INFO (11:06:56.896): Via with rport/received, Call-ID,
        # From, To, CSeq, Server, Content-Length. *Guess*: the same for a BYE
        # from the browser (the recorded calls were all ended by the caller).
        await self._send(ws, self._finish(self._response_head(message, port, "200 OK", None)))

    async def bye(self, call: Call) -> None:
        """The caller hangs up (recorded BYE at 11:07:05.626)."""
        call.ended_by = call.ended_by or "peer"
        lines = [
            f"BYE {call.ruri} SIP/2.0",
            f"Via: SIP/2.0/WSS 127.0.0.1:{self.port};rport;branch=z9hG4bKPj{uuid.uuid4()};alias",
            f'From: "sipp" <sip:sipp@vm>;tag={call.from_tag}',
            f"To: {call.to_uri};tag={call.to_tag}",
            f"Call-ID: {call.call_id}",
            f"CSeq: {call.cseq + 1} BYE",
            "Reason: Q.850;cause=16",
            "Max-Forwards: 70",
            f"User-Agent: {SERVER}",
            "Content-Length:  0",
            "",
            "",
        ]
        await self._send(call.ws, "\r\n".join(lines))
