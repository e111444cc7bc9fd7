"""Browser end-to-end tests: Debian's Chromium, driven by Playwright, against a
real ``smeline serve`` process on a fresh PostgreSQL database.

The server is a separate process (not the in-process ``client`` of
tests/conftest.py): Playwright's sync API runs its own event loop, and a
real process is what an agent's browser meets in production — migrations,
the first administrator printed on the terminal, the built console in
``dist/``. One server per run of this package; every test makes its own
users, so the tests do not depend on their order.

Everything skips with one clear reason when a piece is missing: the built
console (``scripts/build-web``), the ``playwright`` package (the ``test``
extra), or ``/usr/bin/chromium`` (``scripts/services`` installs it as root).
Playwright's own browser download (``playwright install``) is never used.

Screenshots of every step land in ``var/e2e-artifacts/<test>/`` (README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tests.conftest import PG_ADMIN, STRONG_PASSWORD, _db_url

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "smeline" / "agent_console" / "web" / "dist"
CATALOGUE = REPO / "smeline" / "agent_console" / "web" / "src" / "i18n" / "zh-CN.ts"
ARTIFACTS = REPO / "var" / "e2e-artifacts"

CHROMIUM = Path(os.environ.get("SMELINE_E2E_CHROMIUM", "/usr/bin/chromium"))
# The exact launch arguments. --disable-background-networking keeps
# Chromium's own traffic (updates, safe browsing) out of the recorded requests.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

SERVER_START_SECONDS = 30.0
UI_TIMEOUT_MS = 10_000
BEIJING = ZoneInfo("Asia/Shanghai")


# --- waiting -----------------------------------------------------------------------------------


def until(predicate: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
    """tests/polling.py's ``until`` for synchronous code: poll with a deadline."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        time.sleep(0.02)  # the poll interval, not a wait for something


# --- the server --------------------------------------------------------------------------------


@dataclass
class Server:
    base_url: str  # http://127.0.0.1:PORT
    database_url: str
    first_admin: str
    first_admin_password: str  # the one-time password `smeline serve` printed
    output: Path

    @property
    def netloc(self) -> str:
        return urlsplit(self.base_url).netloc

    def url(self, path: str) -> str:
        return self.base_url + path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/api/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


# --- the portal --------------------------------------------------------------------------------


@dataclass
class Portal:
    """A portal of the platform on an origin of its own (another port of the
    loopback): one static page embedding the chat widget with its one script
    tag, as docs/widget.md tells portals to. Its origin is in the server's
    ``realtime_allowed_origins``."""

    port: int
    smeline_url: str = ""  # set once the server runs: the widget's data-smeline

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    def page(self) -> bytes:
        return (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            "<title>梅州市中小企业公共服务平台</title></head><body>"
            "<h1>梅州市中小企业公共服务平台</h1><p>政策申报 · 融资服务 · 在线咨询</p>"
            f'<script src="{self.smeline_url}/widget/chat.js"'
            f' data-smeline="{self.smeline_url}" async></script>'
            "</body></html>"
        ).encode()


def _portal_handler(portal: Portal) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            body = portal.page()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no access log on the test output

    return Handler


@pytest.fixture(scope="package")
def portal() -> Iterator[Portal]:
    found = Portal(port=0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _portal_handler(found))
    found.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, name="e2e-portal", daemon=True)
    thread.start()
    try:
        yield found
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def serving(
    workdir: Path,
    name: str,
    *,
    run: Callable[[Coroutine[Any, Any, None]], Any] = asyncio.run,
    **settings: str,
) -> Iterator[Server]:
    """``smeline serve`` as a process of its own on a free port, against a
    fresh database ``name`` (dropped at the end), with these ``SMELINE_*``
    settings on top of the tests' own (cheap argon2, logs to a file).
    ``run`` runs the database set-up (a loop of the caller's where one is
    already running in this thread, as with Playwright's sync API)."""
    run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    run(_pg(f'CREATE DATABASE "{name}"'))
    database_url = _db_url(name)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMELINE_")}
    env.update(
        PYTHONPATH=str(REPO),
        SMELINE_DATABASE_URL=database_url,
        SMELINE_HOST="127.0.0.1",
        SMELINE_PORT=str(port),
        SMELINE_LOG_DIR=str(workdir / "log"),
        SMELINE_LOG_TO_STDERR="false",
        SMELINE_ARGON2_TIME_COST="1",
        SMELINE_ARGON2_MEMORY_KIB="64",
    )
    env.update({f"SMELINE_{key.upper()}": value for key, value in settings.items()})
    output = workdir / "serve.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smeline.cli", "serve"],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"smeline serve exited with {proc.returncode}:\n{output.read_text()[-3000:]}"
                )
            return _healthy(base_url)

        until(ready, within=SERVER_START_SECONDS, what="smeline serve answering /api/health")
        printed = output.read_text()
        admin = re.search(r"First administrator:\s*(\S+)", printed)
        password = re.search(r"One-time password:\s*(\S+)", printed)
        assert admin and password, f"no first administrator printed:\n{printed}"
        yield Server(base_url, database_url, admin.group(1), password.group(1), output)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory, portal: Portal) -> Iterator[Server]:
    if not (DIST / "index.html").is_file():
        pytest.skip(
            f"the console is not built ({DIST.relative_to(REPO)}/index.html): run scripts/build-web"
        )
    with serving(
        tmp_path_factory.mktemp("e2e-server"),
        f"smeline_e2e_{os.getpid()}_{uuid.uuid4().hex[:6]}",
        # Windows open around the clock, so routing does not depend on when the
        # tests run; tests that chat also mark today a working day (Staff.open_today).
        business_hours='[["00:00", "23:59:59"]]',
        # The browser reaches the server from the loopback, which is the trusted
        # proxy: the visitor's context sets X-Forwarded-For (docs/webchat.md).
        chat_trusted_proxies='["127.0.0.1/32", "::1/128"]',
        # The portal page embedding the widget (its socket.io and REST calls
        # come from that origin: docs/widget.md, cross-origin).
        realtime_allowed_origins=json.dumps([portal.base_url]),
    ) as running:
        portal.smeline_url = running.base_url
        yield running


# --- staff accounts through the API ------------------------------------------------------------


@dataclass
class Actor:
    id: int
    username: str
    role: str
    token: str
    password: str = STRONG_PASSWORD
    window_code: str | None = None


class Staff:
    """Drives the HTTP API outside the browser (set-up and checks), like
    tests/conftest.py's ``Api``: an administrator of its own, then users."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._n = 0
        self.admin = self._bootstrap_admin()

    def call(
        self, method: str, path: str, actor: Actor | None = None, json_body: Any = None
    ) -> tuple[int, Any]:
        data = None if json_body is None else json.dumps(json_body).encode()
        request = urllib.request.Request(self.server.url(path), data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if actor is not None:
            request.add_header("Authorization", f"Bearer {actor.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, (json.loads(raw) if raw else None)

    def _bootstrap_admin(self) -> Actor:
        """An administrator for the API, made the way an operator would
        (``smeline create-user``): the first one belongs to the browser test."""
        result = subprocess.run(
            [sys.executable, "-m", "smeline.cli", "create-user", "e2e-admin", "--role", "admin"],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("SMELINE_")},
                "PYTHONPATH": str(REPO),
                "SMELINE_DATABASE_URL": self.server.database_url,
                "SMELINE_ARGON2_TIME_COST": "1",
                "SMELINE_ARGON2_MEMORY_KIB": "64",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found = re.search(r"one-time password: (\S+)", result.stdout)
        assert found, result.stdout + result.stderr
        return self._activate("e2e-admin", "admin", found.group(1), None)

    def _activate(self, username: str, role: str, otp: str, window_code: str | None) -> Actor:
        status, body = self.call(
            "POST", "/api/auth/login", json_body={"username": username, "password": otp}
        )
        assert status == 200, body
        actor = Actor(body["user"]["id"], username, role, body["token"], window_code=window_code)
        status, body = self.call(
            "POST",
            "/api/auth/password",
            actor,
            {"current_password": otp, "new_password": STRONG_PASSWORD},
        )
        assert status == 204, body
        return actor

    def user(self, role: str, *, window_code: str | None = None, name: str | None = None) -> Actor:
        self._n += 1
        username = f"{role}-{uuid.uuid4().hex[:6]}"
        payload: dict[str, Any] = {
            "username": username,
            "display_name": name or username,
            "role": role,
        }
        if window_code:
            payload["window_code"] = window_code
        status, body = self.call("POST", "/api/users", self.admin, payload)
        assert status == 201, body
        return self._activate(username, role, body["one_time_password"], window_code)

    def open_today(self) -> None:
        """Today and tomorrow (Beijing) are working days, whatever the calendar says:
        with the all-day business hours of the server, every window is open."""
        today = datetime.now(BEIJING).date()
        for day in (today, today + timedelta(days=1)):
            status, body = self.call(
                "PUT",
                f"/api/calendar/overrides/{day.isoformat()}",
                self.admin,
                {"is_workday": True, "note": "e2e"},
            )
            assert status == 204, body


@pytest.fixture(scope="package")
def staff(server: Server) -> Staff:
    return Staff(server)


# --- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
    )
    if not CHROMIUM.is_file():
        pytest.skip(
            f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk "
            "(scripts/services does it when run as root)"
        )
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


FETCH_JS = """
async ([method, path, body, headers]) => {
  const h = { ...headers }
  if (body !== null) h['Content-Type'] = 'application/json'
  if (method !== 'GET') {
    const csrf = document.cookie.match(/(?:^|; )smeline_csrf=([^;]+)/)
    if (csrf) h['X-CSRF-Token'] = decodeURIComponent(csrf[1])
  }
  try {
    const r = await fetch(path, {
      method, headers: h, credentials: 'same-origin',
      body: body === null ? undefined : JSON.stringify(body),
    })
    const text = await r.text()
    let data = text
    try { data = text ? JSON.parse(text) : null } catch (e) {}
    return { status: r.status, body: data }
  } catch (e) {
    return { status: 0, body: String(e) }
  }
}
"""

# A bare socket.io client (engine.io 4 over WebSocket) for the `/agent`
# namespace, authenticated by the session cookie like the console's own. An
# open /agent socket makes the agent a web-chat seat (docs/realtime.md). Used
# until the console's chat panel connects by itself.
AGENT_SOCKET_JS = """
(namespace) => new Promise((resolve, reject) => {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  const ws = new WebSocket(`${scheme}://${location.host}/socket.io/?EIO=4&transport=websocket`)
  window.__e2eSockets = [...(window.__e2eSockets || []), ws]
  ws.onmessage = (event) => {
    const data = String(event.data)
    if (data.startsWith('0{')) ws.send(`40${namespace},`)
    else if (data === '2') ws.send('3')
    else if (data.startsWith(`40${namespace},`)) resolve(true)
    else if (data.startsWith(`44${namespace},`)) reject(new Error(data))
  }
  ws.onerror = () => reject(new Error('WebSocket error'))
})
"""


@dataclass
class Reply:
    status: int  # 0: the request never reached the server (network down)
    body: Any


@dataclass
class Person:
    """One person at one browser: a context of their own (cookies, headers,
    network), one page, and every request it made."""

    name: str
    server: Server
    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(self.server.url(path))

    def log_in(self, actor: Actor) -> None:
        """A session cookie for ``actor`` in this context (the login form is
        tested once, in test_console.py)."""
        response = self.context.request.post(
            self.server.url("/api/auth/login"),
            data={"username": actor.username, "password": actor.password},
        )
        assert response.status == 200, response.text()

    def fetch(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """A request from inside the page: the browser's own network stack, cookies
        (with the CSRF header the console sends), extra headers and offline state."""
        result = self.page.evaluate(FETCH_JS, [method, path, body, headers or {}])
        return Reply(int(result["status"]), result["body"])

    def join_agent_namespace(self) -> None:
        self.page.evaluate(AGENT_SOCKET_JS, "/agent")

    @contextmanager
    def offline(self) -> Iterator[None]:
        """A network drop: nothing leaves the browser until the block ends."""
        self.context.set_offline(True)
        try:
            yield
        finally:
            self.context.set_offline(False)

    def foreign_requests(self, *also: str) -> list[str]:
        """Requests to anything but the service itself and the hosts ``also``
        names (the portal's, for the visitor); data: and blob: URLs never
        leave the browser."""
        allowed = {self.server.netloc, *also}
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob")
            and (urlsplit(url).scheme not in ("http", "ws") or urlsplit(url).netloc not in allowed)
        ]


class People:
    """Several people at once (visitor, agents, supervisor), each in a browser
    context of their own; all closed at the end of the test."""

    def __init__(self, browser: Browser, server: Server) -> None:
        self._browser = browser
        self._server = server
        self.everyone: list[Person] = []

    def new(
        self,
        name: str,
        *,
        headers: dict[str, str] | None = None,
        forwarded_for: str | None = None,
    ) -> Person:
        """``headers`` go with every request of the context. ``forwarded_for``
        puts ``X-Forwarded-For`` on the requests to the service only, below the
        page: the widget's cross-origin calls from a portal page would otherwise
        carry a header the CORS preflight does not allow (the real proxy adds it
        after the browser, where CORS does not look)."""
        context = self._browser.new_context(
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            viewport={"width": 1280, "height": 800},
            extra_http_headers=headers or {},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        if forwarded_for is not None:
            address = forwarded_for

            def forward(route: Route) -> None:
                route.continue_(headers={**route.request.headers, "x-forwarded-for": address})

            context.route(self._server.url("/api/**"), forward)
        page = context.new_page()
        person = Person(name, self._server, context, page)
        context.on("request", lambda request: person.requests.append(request.url))
        page.on("websocket", lambda ws: person.requests.append(ws.url))
        self.everyone.append(person)
        return person

    def close(self) -> None:
        for person in self.everyone:
            person.context.close()


@pytest.fixture
def people(browser: Browser, server: Server) -> Iterator[People]:
    opened = People(browser, server)
    try:
        yield opened
    finally:
        opened.close()


# --- artefacts ---------------------------------------------------------------------------------


class Shots:
    """Screenshots of each step: var/e2e-artifacts/<test>/<NN>-<step>.png."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._n = 0

    def take(self, page: Page, step: str, *, selector: str | None = None) -> bytes:
        self._n += 1
        path = self.directory / f"{self._n:02d}-{step}.png"
        if selector is None:
            return page.screenshot(path=path, full_page=True)
        return page.locator(selector).screenshot(path=path)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    directory = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return Shots(directory)


def png_colours(png: bytes) -> int:
    """How many distinct colours an 8-bit RGB(A) PNG holds: a line of text drawn
    with a real font has dozens (anti-aliasing), a blank or one-colour box one."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, chunk = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6), f"unexpected PNG format {depth}/{colour_type}"
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], (previous[i - channels] if i >= channels else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        previous = line
    return len({bytes(row[i : i + channels]) for row in rows for i in range(0, stride, channels)})


def catalogue() -> dict[str, str]:
    """The console's one zh-CN catalogue, read from its source: the tests look
    for the very strings agents see, not copies of them."""
    text = CATALOGUE.read_text(encoding="utf-8")
    return dict(re.findall(r"^\s*'([^']+)':\s*'([^']*)',?\s*$", text, flags=re.MULTILINE))
