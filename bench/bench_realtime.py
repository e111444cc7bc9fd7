"""socket.io capacity benchmark: connections, chat delivery and wallboard fan-out.

    .venv/bin/python -m bench.bench_realtime                      # one process
    .venv/bin/python -m bench.bench_realtime --processes 2        # two processes + Redis

1. (Re)creates ``smeline_bench_rt`` (``--db``), migrates it, starts ``--processes``
   ``smeline serve`` processes (with Redis when more than one; windows open around the
   clock; cheap argon2 for the set-up; no per-IP chat-start limit), creates through the API
   ``--agents`` agents spread over the nine windows and ``--supervisors`` supervisors, and
   marks today a working day.
2. Connects the agents (``/agent``) and supervisors (``/supervisor``), then starts
   ``--chats`` chats over the REST API (each visitor chooses a county, so chats spread over
   the windows and are assigned to the agents) and connects each visitor (``/visitor``).
   Extra visitor sockets (a second tab of an active chat) bring the total to
   ``--connections``. The server's RSS is read before and after: memory per connection.
3. Chat delivery: for ``--duration`` seconds visitors send messages (Poisson, ``--rate``
   per second in all) with ``chat.send``; the latency is from the send to the assigned
   agent's socket receiving ``chat.message`` (same machine clock).
4. Wallboard fan-out: every ``wallboard.update`` each supervisor receives during that time;
   the latency is from the snapshot's ``at`` (taken by the server when it builds the
   snapshot) to the receipt.

The clients are a minimal engine.io v4 / socket.io v5 WebSocket client on aiohttp (a
python-socketio client per connection would cost the load generator far more than the
server). Client and servers share the machine's CPUs. Figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from bench.bench_agi_routing import machine_info
from bench.bench_tickets import DEFAULT_PG, database_dsn, free_port, log, percentile, pg_connect
from smeline.migrate import upgrade_sync

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "out"
BEIJING = timezone(timedelta(hours=8))
WINDOWS = (
    ("meijiang", "441402"),
    ("meixian", "441403"),
    ("xingning", "441481"),
    ("pingyuan", "441426"),
    ("jiaoling", "441427"),
    ("dabu", "441422"),
    ("fengshun", "441423"),
    ("wuhua", "441424"),
)
PASSWORD = "Bench-Passw0rd-2026!"
TARGET_RSS_GB = 1.5
TARGET_CHAT_P99_MS = 100.0
TARGET_FANOUT_P99_MS = 200.0


# --- the servers -------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    output: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


#: Extra settings for the servers (``--set KEY=VALUE``, e.g. gc_refreeze_seconds=0).
SERVER_ENV: dict[str, str] = {}


def start_server(
    db_url: str, workdir: Path, redis_url: str | None, capacity: int, profile: Path | None = None
) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMELINE_")}
    env.update(
        PYTHONPATH=str(REPO),
        SMELINE_DATABASE_URL=db_url,
        SMELINE_PORT=str(port),
        SMELINE_LOG_DIR=str(workdir / f"log-{port}"),
        SMELINE_LOG_TO_STDERR="false",
        SMELINE_LOG_LEVEL="WARNING",
        SMELINE_ARGON2_TIME_COST="1",
        SMELINE_ARGON2_MEMORY_KIB="64",
        SMELINE_BUSINESS_HOURS='[["00:00", "23:59:59"]]',
        SMELINE_CHAT_STARTS_PER_IP_PER_MINUTE="0",
        SMELINE_CHAT_AGENT_CAPACITY=str(capacity),
        SMELINE_SCHEDULER_ENABLED="false",
    )
    if redis_url:
        env["SMELINE_REDIS_URL"] = redis_url
    env.update(SERVER_ENV)
    # Instrumented serve: GC pauses inside the measurement window (SIGUSR1..2),
    # and a pyinstrument profile when asked.
    module = "bench.profiled_serve"
    env["SMELINE_BENCH_GC"] = str(workdir / f"gc-{port}.json")
    if os.environ.get("SMELINE_BENCH_GC_DETAIL"):
        env["SMELINE_BENCH_GC_DETAIL"] = os.environ["SMELINE_BENCH_GC_DETAIL"]
    if profile is not None:
        env["SMELINE_BENCH_PROFILE"] = str(profile)
    output = workdir / f"serve-{port}.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--no-migrate"],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(proc, port, output)


async def read_gc_report(server: Server) -> dict[str, Any] | None:
    """The server's GC pauses of the measurement window (bench/profiled_serve.py)."""
    path = server.output.parent / f"gc-{server.port}.json"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            report: dict[str, Any] = json.loads(path.read_text())
            return report
        await asyncio.sleep(0.1)  # poll interval while the server writes it
    return None


async def wait_healthy(session: aiohttp.ClientSession, server: Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"smeline serve exited:\n{server.output.read_text()[-3000:]}")
        try:
            async with session.get(server.url + "/api/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)  # poll interval while the process starts
    raise RuntimeError("smeline serve did not answer /api/health within 60 s")


# --- accounts through the API ------------------------------------------------------------------


class Http:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def login(self, username: str, password: str) -> dict[str, Any]:
        status, body = await self.call(
            "POST", "/api/auth/login", body={"username": username, "password": password}
        )
        if status != 200:
            raise RuntimeError(f"login {username}: {status} {body}")
        return dict(body)

    async def activate(self, username: str, otp: str) -> str:
        first = await self.login(username, otp)
        status, body = await self.call(
            "POST",
            "/api/auth/password",
            first["token"],
            {"current_password": otp, "new_password": PASSWORD},
        )
        if status not in (200, 204):
            raise RuntimeError(f"password change {username}: {status} {body}")
        return str((await self.login(username, PASSWORD))["token"])


@dataclass
class Staff:
    user_id: int
    username: str
    token: str
    window: str | None


async def make_staff(
    http: Http, admin_token: str, role: str, index: int, window: str | None
) -> Staff:
    username = f"{role}{index:04d}"
    payload: dict[str, Any] = {"username": username, "display_name": username, "role": role}
    if window:
        payload["window_code"] = window
    status, body = await http.call("POST", "/api/users", admin_token, payload)
    if status != 201:
        raise RuntimeError(f"create {username}: {status} {body}")
    token = await http.activate(username, body["one_time_password"])
    return Staff(int(body["user"]["id"]), username, token, window)


# --- a minimal socket.io client ----------------------------------------------------------------


@dataclass
class Socket:
    """One engine.io v4 WebSocket carrying one socket.io namespace."""

    namespace: str
    ws: aiohttp.ClientWebSocketResponse | None = None
    acks: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    next_ack: int = 1
    on_event: Any = None  # (name, data, received_at) -> None
    closed: bool = False
    reader: asyncio.Task[None] | None = None

    async def connect(
        self, session: aiohttp.ClientSession, base: str, auth: dict[str, Any]
    ) -> None:
        url = base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await session.ws_connect(url, headers={"Origin": base}, heartbeat=None)
        opened = await self.ws.receive_str()
        if not opened.startswith("0"):
            raise RuntimeError(f"unexpected engine.io open {opened[:80]}")
        await self.ws.send_str(f"40{self.namespace},{json.dumps(auth)}")
        while True:
            msg = await self.ws.receive_str()
            if msg == "2":
                await self.ws.send_str("3")
                continue
            if msg.startswith(f"40{self.namespace},"):
                break
            if msg.startswith(f"44{self.namespace},"):
                raise RuntimeError(f"refused on {self.namespace}: {msg[:200]}")
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        prefix_event = f"42{self.namespace},"
        prefix_ack = f"43{self.namespace},"
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data: str = msg.data
            now = time.time()
            if data == "2":
                await self.ws.send_str("3")
            elif data.startswith(prefix_event):
                name, *rest = json.loads(data[len(prefix_event) :])
                if self.on_event is not None:
                    self.on_event(name, rest[0] if rest else None, now)
            elif data.startswith(prefix_ack):
                body = data[len(prefix_ack) :]
                match = re.match(r"(\d+)", body)
                if match:
                    future = self.acks.pop(int(match.group(1)), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(body[match.end() :]))
        self.closed = True

    async def call(self, event: str, data: Any, limit: float = 10.0) -> Any:
        assert self.ws is not None
        ack = self.next_ack
        self.next_ack += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[ack] = future
        await self.ws.send_str(f"42{self.namespace},{ack}{json.dumps([event, data])}")
        return await asyncio.wait_for(future, limit)

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()


# --- the run -----------------------------------------------------------------------------------


@dataclass
class ChatClient:
    chat_id: int
    token: str
    server: Server
    visitor: Socket | None = None
    agent_id: int | None = None


async def gather_limited(coros: Sequence[Any], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def run(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    dsn = database_dsn(args.pg, args.db)
    admin = await pg_connect(args.pg)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{args.db}"')
    finally:
        await admin.close()
    db_url = "postgresql+asyncpg://" + dsn.split("://", 1)[1]
    await asyncio.to_thread(upgrade_sync, db_url)
    workdir = args.out / f"rt-{run_id}"
    workdir.mkdir(parents=True, exist_ok=True)
    redis_url = args.redis if args.processes > 1 else None
    capacity = max(1, -(-args.chats // args.agents)) + 2  # windows get agents unevenly
    profile = workdir / "profile.txt" if args.profile else None
    servers = [start_server(db_url, workdir, redis_url, capacity, profile)]
    result: dict[str, Any] = {
        "run_id": run_id,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(),
    }
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            await wait_healthy(session, servers[0])  # the first one seeds and prints the admin
            for _ in range(1, args.processes):
                servers.append(start_server(db_url, workdir, redis_url, capacity))
            for server in servers[1:]:
                await wait_healthy(session, server)
            result.update(await measure(args, session, servers, dsn))
        finally:
            for server in servers:
                server.proc.terminate()
            for server in servers:
                try:
                    server.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.proc.kill()
    return result


async def measure(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    servers: list[Server],
    dsn: str,
) -> dict[str, Any]:
    printed = servers[0].output.read_text()
    otp = re.search(r"One-time password:\s*(\S+)", printed)
    if otp is None:
        raise RuntimeError(f"no first administrator printed:\n{printed[-2000:]}")
    http = Http(session, servers[0].url)
    admin_token = await http.activate("admin", otp.group(1))
    today = datetime.now(BEIJING).date()
    for day in (today, today + timedelta(days=1)):
        status, body = await http.call(
            "PUT",
            f"/api/calendar/overrides/{day.isoformat()}",
            admin_token,
            {"is_workday": True, "note": "bench"},
        )
        if status != 204:
            raise RuntimeError(f"calendar override: {status} {body}")
    log(f"creating {args.agents} agents and {args.supervisors} supervisors")
    agents = await gather_limited(
        [
            make_staff(http, admin_token, "agent", i, WINDOWS[i % len(WINDOWS)][0])
            for i in range(args.agents)
        ],
        8,
    )
    supervisors = await gather_limited(
        [make_staff(http, admin_token, "supervisor", i, None) for i in range(args.supervisors)], 8
    )
    rss0 = [s.rss_mb() for s in servers]
    log(f"server RSS before connections: {[round(r) for r in rss0]} MB")

    # agents and supervisors first: an online agent is a chat seat
    agent_sockets: dict[int, Socket] = {}
    received: dict[str, float] = {}  # client_id -> when the agent got it
    fanout: list[float] = []

    all_in = asyncio.Event()
    sent: dict[str, float] = {}  # client_id -> when the visitor sent it
    errors = 0
    sending_done = False

    def on_agent_event(name: str, data: Any, at: float) -> None:
        if name == "chat.message" and isinstance(data, dict) and data.get("client_id"):
            received.setdefault(str(data["client_id"]), at)
            if sending_done and len(received.keys() & sent.keys()) >= len(sent) - errors:
                all_in.set()

    def on_supervisor_event(name: str, data: Any, at: float) -> None:
        if name == "wallboard.update" and isinstance(data, dict) and data.get("at"):
            made = datetime.fromisoformat(str(data["at"])).timestamp()
            fanout.append((at - made) * 1000)

    async def connect(server: Server, namespace: str, auth: dict[str, Any], handler: Any) -> Socket:
        sock = Socket(namespace=namespace, on_event=handler)
        await sock.connect(session, server.url, auth)
        return sock

    t0 = time.perf_counter()
    agent_list = await gather_limited(
        [
            connect(servers[i % len(servers)], "/agent", {"token": a.token}, on_agent_event)
            for i, a in enumerate(agents)
        ],
        100,
    )
    agent_sockets = {a.user_id: s for a, s in zip(agents, agent_list, strict=True)}
    supervisor_sockets = await gather_limited(
        [
            connect(
                servers[i % len(servers)], "/supervisor", {"token": s.token}, on_supervisor_event
            )
            for i, s in enumerate(supervisors)
        ],
        50,
    )
    log(f"{len(agent_sockets)} agents, {len(supervisor_sockets)} supervisors connected")

    log(f"starting {args.chats} chats")
    rnd = random.Random(args.seed)

    async def start_chat(i: int) -> ChatClient:
        window, county = WINDOWS[i % len(WINDOWS)]
        server = servers[(i // 7) % len(servers)]
        status, body = await Http(session, server.url).call(
            "POST",
            "/api/chat/start",
            body={
                "name": f"访客{i}",
                "company": f"梅州某某公司{i}",
                "county_code": county,
                "category_code": rnd.choice(["financing", "information", "legal", "technology"]),
            },
        )
        if status not in (200, 201):
            raise RuntimeError(f"chat start: {status} {body}")
        return ChatClient(int(body["chat_id"]), str(body["token"]), server)

    chats = await gather_limited([start_chat(i) for i in range(args.chats)], 20)
    conn = await pg_connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, agent_id FROM chats WHERE state = 'assigned' AND agent_id IS NOT NULL"
        )
    finally:
        await conn.close()
    assigned = {int(r["id"]): int(r["agent_id"]) for r in rows}
    for chat in chats:
        chat.agent_id = assigned.get(chat.chat_id)
    active = [c for c in chats if c.agent_id is not None]
    log(f"{len(active)} of {len(chats)} chats assigned")

    async def visitor(chat: ChatClient, handler: Any = None) -> Socket:
        return await connect(chat.server, "/visitor", {"token": chat.token}, handler)

    visitor_list = await gather_limited([visitor(c) for c in chats], 200)
    for chat, sock in zip(chats, visitor_list, strict=True):
        chat.visitor = sock
    extra_needed = max(
        0, args.connections - len(agent_sockets) - len(supervisor_sockets) - len(chats)
    )
    extras = await gather_limited(
        [visitor(chats[i % len(chats)]) for i in range(extra_needed)], 200
    )
    total = len(agent_sockets) + len(supervisor_sockets) + len(visitor_list) + len(extras)
    connect_s = time.perf_counter() - t0
    await asyncio.sleep(2)  # let the servers settle before reading RSS (not a wait for a result)
    rss1 = [s.rss_mb() for s in servers]
    per_conn_kb = (sum(rss1) - sum(rss0)) * 1024 / max(total, 1)
    log(
        f"{total} sockets open in {connect_s:.1f} s; RSS {[round(r) for r in rss1]} MB, "
        f"{per_conn_kb:.1f} KB per connection"
    )

    log(f"chat messages: {args.rate}/s for {args.duration} s")
    send_tasks: set[asyncio.Task[None]] = set()

    async def send(chat: ChatClient, n: int) -> None:
        nonlocal errors
        client_id = f"b{chat.chat_id}-{n}"
        assert chat.visitor is not None
        sent[client_id] = time.time()
        try:
            reply = await chat.visitor.call(
                "chat.send", {"client_id": client_id, "body": f"消息{n}"}
            )
            if not isinstance(reply, list) or not reply or not reply[0].get("ok"):
                errors += 1
        except (TimeoutError, aiohttp.ClientError):
            errors += 1

    fanout.clear()

    async def churn() -> None:
        """New chats keep arriving (2 a second): the wallboard has something to push."""
        i = args.chats
        while not sending_done:
            await start_chat(i)
            i += 1
            await asyncio.sleep(0.5)  # the arrival interval, not a wait for a result

    churner = asyncio.create_task(churn())
    cpu0 = [srv.cpu_s() for srv in servers]
    for srv in servers:
        srv.proc.send_signal(signal.SIGUSR1)
    start = time.perf_counter()
    due = start
    n = 0
    while True:
        due += rnd.expovariate(args.rate)
        if due - start > args.duration:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        n += 1
        task = asyncio.create_task(send(rnd.choice(active), n))
        send_tasks.add(task)
        task.add_done_callback(send_tasks.discard)
    if send_tasks:
        await asyncio.gather(*send_tasks)
    sending_done = True
    await churner
    send_s = time.perf_counter() - start
    cpu1 = [srv.cpu_s() for srv in servers]
    for srv in servers:
        srv.proc.send_signal(signal.SIGUSR2)
    gc_reports = [await read_gc_report(srv) for srv in servers]
    # Every acknowledged message should reach its agent: wait for the last ones (10 s at most).
    expected = len(sent) - errors
    if len(received.keys() & sent.keys()) < expected:
        all_in.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 10)
    latencies = sorted((received[c] - sent[c]) * 1000 for c in sent if c in received)
    fan = sorted(fanout)
    rss2 = [s.rss_mb() for s in servers]

    for sock in [*agent_list, *supervisor_sockets, *visitor_list, *extras]:
        await sock.close()
    return {
        "processes": len(servers),
        "connections": total,
        "agents": len(agent_sockets),
        "supervisors": len(supervisor_sockets),
        "chats": len(chats),
        "chats_assigned": len(active),
        "connect_s": round(connect_s, 1),
        "rss_before_mb": [round(r, 1) for r in rss0],
        "rss_connected_mb": [round(r, 1) for r in rss1],
        "rss_after_chat_mb": [round(r, 1) for r in rss2],
        "kb_per_connection": round(per_conn_kb, 1),
        "server_cores_while_sending": [
            round((b - a) / send_s, 2) for a, b in zip(cpu0, cpu1, strict=True)
        ],
        "server_cpu_ms_per_message": round(1000 * (sum(cpu1) - sum(cpu0)) / max(len(sent), 1), 2),
        "messages_sent": len(sent),
        "messages_delivered": len(latencies),
        "send_errors": errors,
        "chat_p50_ms": round(percentile(latencies, 50), 1),
        "chat_p99_ms": round(percentile(latencies, 99), 1),
        "chat_max_ms": round(latencies[-1], 1) if latencies else 0.0,
        "wallboard_updates_received": len(fan),
        "fanout_p50_ms": round(percentile(fan, 50), 1),
        "fanout_p99_ms": round(percentile(fan, 99), 1),
        "server_gc_while_sending": gc_reports,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bench_realtime", description=__doc__)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the servers, e.g. --set gc_refreeze_seconds=0",
    )
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--chats", type=int, default=3_000)
    p.add_argument("--agents", type=int, default=300)
    p.add_argument("--supervisors", type=int, default=50)
    p.add_argument("--rate", type=float, default=300.0, help="chat messages per second in all")
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--processes", type=int, default=1, choices=(1, 2))
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--db", default="smeline_bench_rt")
    p.add_argument("--pg", default=DEFAULT_PG)
    p.add_argument("--seed", type=int, default=20261202)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--profile", action="store_true", help="pyinstrument the first server while sending"
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for item in args.set:
        key, _, value = item.partition("=")
        SERVER_ENV["SMELINE_" + key.strip().upper()] = value.strip()
    run_id = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args, run_id))
    result["server_settings"] = dict(SERVER_ENV)
    targets = {
        "rss_gb": TARGET_RSS_GB,
        "chat_p99_ms": TARGET_CHAT_P99_MS,
        "fanout_p99_ms": TARGET_FANOUT_P99_MS,
    }
    result["targets"] = targets
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "args")}, indent=2))
    path = args.out / f"bench_realtime-{run_id}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
