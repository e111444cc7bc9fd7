"""FastAGI routing benchmark: the real ``route`` handler in a server process, driven over the wire.

    .venv/bin/python -m bench.bench_agi_routing                      # seed, then measure
    .venv/bin/python -m bench.bench_agi_routing --keep --duration 10 # reuse the database

1. (Re)creates ``smeline_bench_agi`` (``--db``), migrates it, seeds the reference data and
   the example exchange-prefix table, then ``--members`` (100,000) members and
   ``--enterprises`` (3,000) enterprises with realistic phone keys (Meizhou mobiles from
   real 梅州 segments of the ``phone`` package, other-city mobiles, 0753 landlines) and
   counties, plus ``--profiles`` (10,000) caller profiles. ``--keep`` reuses it.
2. Starts a server process (this module with ``--serve``): ``create_app`` with the FastAGI
   server enabled and its startup run (``web.AppRunner.setup``, no HTTP listener), i.e. the
   production wiring of ``FastAgiServer`` + ``HotlineIvr`` + ``RoutingService``.
3. Drives it like Asterisk: a minimal asyncio client speaking FastAGI (environment block,
   then one recorded-shaped reply per command: GET DATA ``200 result=1``, SET VARIABLE
   ``200 result=1``). Every caller's county is known (member, enterprise, caller profile or
   landline prefix), so only the category menu is played. Phases: closed loop with
   ``--concurrency`` (200) callers for ``--duration`` s; open loop at ``--rate`` calls/s
   (Poisson) for ``--open-duration`` s.
4. The same decision made by ``bench/agi_process_per_call.py`` spawned per call (classic
   AGI: a new process per call), ``--classic-concurrency`` (20) at a time, and one at a time.
5. Prints a summary and writes ``bench/out/bench_agi_routing-<run>.json``.

The machine has two cores: this client, the server process and PostgreSQL share them.
bench/README.md explains every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.bench_tickets import (
    DEFAULT_OUT,
    DEFAULT_PG,
    REPO,
    SURNAMES,
    cpu_snapshot,
    cpu_usage,
    database_comment,
    database_dsn,
    log,
    percentile,
    pg_connect,
    quote_ident,
    quote_literal,
    recreate_database,
    sqlalchemy_url,
)
from smeline.db import make_engine, make_sessionmaker, utcnow
from smeline.eventloop import run_on
from smeline.migrate import upgrade_sync
from smeline.reference.services import ReferenceService
from smeline.routing.services import EXAMPLE_LANDLINE_PREFIXES
from tests.asterisk_double.agi_channel import DEFAULT_ENV, REPLY_510

TARGET_DECISIONS_PER_S = 1000.0
TARGET_P99_MS = 5.0
CLASSIC_SCRIPT = REPO / "bench" / "agi_process_per_call.py"

#: County weights of members, enterprises and profiles (GB/T 2260 codes).
COUNTY_WEIGHTS = {
    "441402": 26,  # 梅江区
    "441403": 16,  # 梅县区
    "441481": 16,  # 兴宁市
    "441426": 5,  # 平远县
    "441427": 5,  # 蕉岭县
    "441422": 8,  # 大埔县
    "441423": 9,  # 丰顺县
    "441424": 15,  # 五华县
}
#: Kinds of registered phones: Meizhou mobile, mobile of another city, 0753 landline.
MEMBER_PHONE_WEIGHTS = {"mz_mobile": 62, "other_mobile": 18, "landline": 20}
ENTERPRISE_PHONE_WEIGHTS = {"mz_mobile": 35, "other_mobile": 5, "landline": 60}
#: Who calls in the measured mix (all with a known county: no county menu).
CALLER_WEIGHTS = {"member": 60, "enterprise": 10, "profile": 15, "landline_prefix": 15}
#: Mobile prefixes scanned for segments (the first 7 digits) in the ``phone`` database.
SCANNED_PREFIXES = (
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 "
    "177 180 181 182 183 185 186 187 188 189 198 199"
).split()
GIVEN_NAMES = "伟 芳 娜 敏 静 丽 强 磊 洋 艳 勇 军 杰 娟 涛 明 超 秀 霞 平 刚 桂 英 华 玲".split()
COMPANY_WORDS = "嘉应 客都 梅江 金柚 丰泰 兴华 平安 蕉华 大埔 五华 雁洋 松口".split()
INDUSTRIES = "科技 电子 食品 陶瓷 茶业 建材 纺织 物流 农业 机械".split()


# --- step 1: database ----------------------------------------------------------------------


def mobile_segments() -> tuple[list[str], list[str]]:
    """(Meizhou segments, segments of other cities) from the ``phone`` package's database."""
    from phone import Phone  # type: ignore[import-untyped]  # untyped package

    db = Phone()
    meizhou: list[str] = []
    other: list[str] = []
    for prefix in SCANNED_PREFIXES:
        for n in range(10_000):
            segment = f"{prefix}{n:04d}"
            found = db.find(segment)
            if not found:
                continue
            (meizhou if found.get("area_code") == "0753" else other).append(segment)
    return meizhou, other


@dataclass
class PhoneMaker:
    rnd: random.Random
    meizhou: list[str]
    other: list[str]
    used: set[str] = field(default_factory=set)

    def make(self, kind: str) -> str:
        while True:
            if kind == "mz_mobile":
                key = self.rnd.choice(self.meizhou) + f"{self.rnd.randrange(10_000):04d}"
            elif kind == "other_mobile":
                key = self.rnd.choice(self.other) + f"{self.rnd.randrange(10_000):04d}"
            else:  # 0753 + an 8-digit subscriber number (first digit 2-9: an exchange)
                key = f"0753{self.rnd.randint(2, 9)}{self.rnd.randrange(10_000_000):07d}"
            if key not in self.used:
                self.used.add(key)
                return key


def _pick(rnd: random.Random, weights: dict[str, int]) -> str:
    return rnd.choices(list(weights), weights=list(weights.values()))[0]


def _person(rnd: random.Random) -> str:
    return rnd.choice(SURNAMES) + "".join(rnd.choices(GIVEN_NAMES, k=rnd.choice((1, 2))))


async def seed_database(args: argparse.Namespace, dsn: str, db_url: str) -> dict[str, Any]:
    if args.keep:
        stored = await database_comment(args.pg, args.db)
        if not stored:
            raise SystemExit(f"--keep: database {args.db} was not seeded by this benchmark")
        meta: dict[str, Any] = json.loads(stored)
        log(f"reusing {args.db}: {meta['members']:,} members, {meta['enterprises']:,} enterprises")
        meta["reused"] = True
        return meta
    started = time.perf_counter()
    log(f"creating database {args.db}")
    await recreate_database(args.pg, args.db)
    await asyncio.to_thread(upgrade_sync, db_url)
    engine = make_engine(db_url)
    try:
        await ReferenceService(sessionmaker=make_sessionmaker(engine)).seed()
    finally:
        await engine.dispose()
    t = time.perf_counter()
    meizhou, other = await asyncio.to_thread(mobile_segments)
    scan_s = time.perf_counter() - t
    log(f"{len(meizhou)} Meizhou and {len(other):,} other mobile segments ({scan_s:.1f} s)")
    rnd = random.Random(args.random_seed)
    phones = PhoneMaker(rnd, meizhou, other)
    now = utcnow()
    counties = list(COUNTY_WEIGHTS)
    county_w = list(COUNTY_WEIGHTS.values())
    enterprises = []
    enterprise_county: list[str] = []
    for i in range(1, args.enterprises + 1):
        county = rnd.choices(counties, county_w)[0]
        enterprise_county.append(county)
        name = (
            f"梅州市{rnd.choice(COMPANY_WORDS)}{rnd.choice(INDUSTRIES)}有限公司"
            f"{'' if i % 7 else '分公司'}{i}"
        )
        phone = phones.make(_pick(rnd, ENTERPRISE_PHONE_WEIGHTS))
        enterprises.append((i, name, None, county, phone, _person(rnd), now))
    members = []
    for i in range(1, args.members + 1):
        enterprise = rnd.randint(1, args.enterprises) if rnd.random() < 0.7 else None
        county = (
            enterprise_county[enterprise - 1]
            if enterprise is not None and rnd.random() < 0.9
            else rnd.choices(counties, county_w)[0]
        )
        phone = phones.make(_pick(rnd, MEMBER_PHONE_WEIGHTS))
        members.append((i, _person(rnd), phone, enterprise, county, now))
    profiles = []
    for _ in range(args.profiles):
        calls = 1 + int(rnd.expovariate(0.5))
        profiles.append(
            (
                phones.make("mz_mobile"),
                rnd.choices(counties, county_w)[0],
                rnd.choice(("ivr", "ivr", "ivr", "agent")),
                calls,
                now - timedelta(days=rnd.randint(0, 365)),
            )
        )
    conn = await pg_connect(dsn)
    try:
        await conn.copy_records_to_table(
            "landline_prefixes",
            records=[(p, c, n, True, now) for p, c, n in EXAMPLE_LANDLINE_PREFIXES],
            columns=["prefix", "county_code", "note", "example", "updated_at"],
        )
        await conn.copy_records_to_table(
            "enterprises",
            records=enterprises,
            columns=[
                "id",
                "name",
                "credit_code",
                "county_code",
                "phone_key",
                "contact_name",
                "created_at",
            ],
        )
        await conn.copy_records_to_table(
            "members",
            records=members,
            columns=["id", "name", "phone_key", "enterprise_id", "county_code", "created_at"],
        )
        await conn.copy_records_to_table(
            "caller_profiles",
            records=profiles,
            columns=["phone_key", "county_code", "source", "calls", "updated_at"],
        )
        for table in ("enterprises", "members"):
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence($1, 'id'), $2)",
                table,
                args.enterprises if table == "enterprises" else args.members,
            )
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()
    meizhou_set = set(meizhou)
    kinds = Counter(
        "mz_mobile" if m[2][:7] in meizhou_set else "landline" if m[2][0] == "0" else "other"
        for m in members[:10_000]
    )
    report = {
        "members": args.members,
        "enterprises": args.enterprises,
        "profiles": args.profiles,
        "landline_prefixes": len(EXAMPLE_LANDLINE_PREFIXES),
        "meizhou_segments": len(meizhou),
        "other_segments": len(other),
        "member_phone_kinds_first_10000": dict(kinds),
        "seed_s": round(time.perf_counter() - started, 1),
        "random_seed": args.random_seed,
        "seeded_at": now.isoformat(),
        "reused": False,
    }
    conn = await pg_connect(args.pg)
    try:
        comment = json.dumps(report, ensure_ascii=False)
        await conn.execute(
            f"COMMENT ON DATABASE {quote_ident(args.db)} IS {quote_literal(comment)}"
        )
    finally:
        await conn.close()
    log(f"seeded in {report['seed_s']} s")
    return report


# --- callers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    callerid: str  # as the trunk presents it
    kind: str  # member | enterprise | profile | landline_prefix


def present(key: str, rnd: random.Random) -> str:
    """How a trunk delivers a key: local landlines mostly without area code, some +86."""
    if key.startswith("0753"):
        return key[4:] if rnd.random() < 0.7 else key
    r = rnd.random()
    if r < 0.1:
        return "+86" + key
    if r < 0.15:
        return "0" + key  # out-of-town mobiles arrive with the trunk 0 on some trunks
    return key


async def load_callers(dsn: str, n: int, seed: int) -> list[Caller]:
    rnd = random.Random(seed)
    conn = await pg_connect(dsn)
    try:
        members = [
            r[0]
            for r in await conn.fetch(
                "SELECT phone_key FROM members ORDER BY random() LIMIT $1", max(n, 1000)
            )
        ]
        enterprises = [
            r[0]
            for r in await conn.fetch(
                "SELECT phone_key FROM enterprises ORDER BY random() LIMIT $1", max(n // 4, 500)
            )
        ]
        profiles = [
            r[0]
            for r in await conn.fetch(
                "SELECT phone_key FROM caller_profiles ORDER BY random() LIMIT $1", max(n, 1000)
            )
        ]
    finally:
        await conn.close()
    out: list[Caller] = []
    for _ in range(n):
        kind = _pick(rnd, CALLER_WEIGHTS)
        if kind == "member":
            key = rnd.choice(members)
        elif kind == "enterprise":
            key = rnd.choice(enterprises)
        elif kind == "profile":
            key = rnd.choice(profiles)
        else:  # an unregistered landline: the exchange-prefix table knows its county
            key = f"0753{rnd.randint(2, 9)}{rnd.randrange(10_000_000):07d}"
        out.append(Caller(present(key, rnd), kind))
    return out


def env_template(script: str, request: str) -> str:
    """The recorded environment (field order of recordings--agi-session.txt) as a template."""
    lines = []
    for key, value in DEFAULT_ENV:
        if key == "agi_network_script":
            value = script
        elif key == "agi_request":
            value = request
        elif key == "agi_channel":
            value = "PJSIP/trunk-{seq:08x}"
        elif key == "agi_uniqueid":
            value = "bench-{t}.{seq}"
        elif key in ("agi_callerid", "agi_calleridname"):
            value = "{callerid}"
        elif key == "agi_dnid" or key == "agi_extension":
            value = "12345"
        lines.append(f"{key}: {value}\n")
    return "".join(lines) + "\n"


class EnvMaker:
    """Environments of successive calls, spread over the server ports round robin."""

    def __init__(self, template: str, callers: Sequence[Caller], ports: Sequence[int]) -> None:
        self.template = template
        self.callers = callers
        self.ports = ports or [0]
        self.seq = 0
        self.t = int(time.time())

    def next(self) -> tuple[bytes, Caller, int]:
        self.seq += 1
        caller = self.callers[self.seq % len(self.callers)]
        port = self.ports[self.seq % len(self.ports)]
        text = self.template.format(seq=self.seq, t=self.t, callerid=caller.callerid, port=port)
        return text.encode("utf-8"), caller, port


# --- the server process --------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    """``--serve``: the production wiring of the FastAGI side, without the HTTP listener."""
    from aiohttp import web

    from smeline import keys
    from smeline.app import create_app, freeze_gc_after_startup
    from smeline.config import Settings
    from smeline.logging_setup import setup_logging

    settings = Settings(
        database_url=args.db_url,
        agi_enabled=True,
        agi_host="127.0.0.1",
        agi_port=args.agi_port,
        log_dir=Path(args.log_dir),
        log_to_stderr=False,
        scheduler_enabled=False,
    )
    setup_logging(
        log_dir=settings.log_dir,
        level=settings.log_level,
        retention_days=settings.log_retention_days,
        to_stderr=False,
    )
    profiler = None
    if args.profile_out:
        from pyinstrument import Profiler  # type: ignore[import-not-found]  # optional

        profiler = Profiler(interval=0.0005, async_mode="disabled")
    app = create_app(settings, background=False)
    freeze_gc_after_startup(app)  # as `smeline serve` does
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup contexts: reference data, AGI server start
    agi = app[keys.AGI_SERVER]

    gc_pauses = GcPauses()
    gc_pauses.install()

    def stats() -> dict[str, Any]:
        t = os.times()
        return {**agi.stats(), "cpu_s": round(t.user + t.system, 3), **gc_pauses.stats()}

    print(json.dumps({"ready": True, "port": agi.port, **stats()}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = line.strip().decode()
        if command == "stats":
            print(json.dumps(stats()), flush=True)
        elif command == "profile-start" and profiler is not None:
            profiler.start()
            print(json.dumps({"profiling": True}), flush=True)
        elif command == "profile-stop" and profiler is not None:
            profiler.stop()
            text = profiler.output_text(unicode=True)
            await asyncio.to_thread(Path(args.profile_out).write_text, text)
            print(json.dumps({"profile": args.profile_out}), flush=True)
        elif command == "stop":
            break
    await runner.cleanup()
    print(json.dumps({"stopped": True, **stats()}), flush=True)


class GcPauses:
    """Time spent in the cyclic garbage collector (a stall of the whole event loop)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.total_s = 0.0
        self.max_s = 0.0
        self.gen2 = 0

    def install(self) -> None:
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        pause = time.perf_counter() - self.started
        self.total_s += pause
        self.max_s = max(self.max_s, pause)
        self.gen2 += info.get("generation") == 2

    def stats(self) -> dict[str, Any]:
        return {
            "gc_pause_s": round(self.total_s, 4),
            "gc_max_pause_ms": round(self.max_s * 1000, 2),
            "gc_gen2_runs": self.gen2,
        }


#: GC pauses of this (client) process: a pause delays the replies it owes the server.
CLIENT_GC = GcPauses()


class ServerProcess:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    async def start(
        cls,
        db_url: str,
        log_dir: Path,
        stderr_path: Path,
        profile: Path | None,
        loop: str,
        cpus: set[int] | None = None,
    ) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMELINE_")}
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "bench.bench_agi_routing", "--serve"]
        if cpus:
            command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
        command += ["--db-url", db_url, "--log-dir", str(log_dir), "--agi-port", "0"]
        command += ["--loop", loop]
        if profile is not None:
            command += ["--profile-out", str(profile)]
        with stderr_path.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=str(REPO),
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"server process exited; see {stderr_path}")
        ready = json.loads(line)
        log(f"server process pid={process.pid} listening for FastAGI on port {ready['port']}")
        return cls(process, int(ready["port"]))

    async def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        result: dict[str, Any] = json.loads(line)
        return result

    async def stop(self) -> dict[str, Any]:
        final: dict[str, Any] = {}
        if self.process.returncode is None:
            try:
                final = await self.ask("stop")
                await asyncio.wait_for(self.process.wait(), 20)
            except (TimeoutError, ConnectionError, json.JSONDecodeError):
                self.process.send_signal(signal.SIGKILL)
                await self.process.wait()
        return final


# --- the FastAGI client --------------------------------------------------------------------


class AgiCall(asyncio.Protocol):
    """Asterisk's side of one FastAGI session, answering with recorded reply shapes."""

    def __init__(self, env: bytes, done: asyncio.Future[float], hold: float = 0.0) -> None:
        self.env = env
        self.done = done
        # The caller's own time on the menu (listening, pressing the key): the
        # GET DATA reply waits this long, and the time actually held is kept
        # apart so latency counts only smeline's side.
        self.hold = hold
        self.held = 0.0
        self.buffer = b""
        self.sent_at = 0.0
        self.action_at = 0.0
        self.action = b""
        self.menus = 0
        self.county_menu = False
        self.fallback = False
        self.county = b""
        self.unexpected: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        assert self.transport is not None
        self.transport.write(self.env)  # the environment ends with its blank line
        self.sent_at = time.perf_counter()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        replies = []
        held = False
        while (end := buffer.find(b"\n")) >= 0:
            line = buffer[:end]
            replies.append(self.answer(line))
            held = held or (self.hold > 0 and line.startswith(b"GET DATA "))
            buffer = buffer[end + 1 :]
        self.buffer = buffer
        if not replies or self.transport is None:
            return
        if held:
            started = time.perf_counter()
            asyncio.get_running_loop().call_later(self.hold, self._release, replies, started)
        else:
            self.transport.write(b"".join(replies))

    def _release(self, replies: list[bytes], started: float) -> None:
        self.held += time.perf_counter() - started
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(replies))

    def answer(self, line: bytes) -> bytes:
        if line.startswith(b"SET VARIABLE "):
            name, _, value = line[13:].partition(b" ")
            if name == b"SMELINE_DECISION":
                # The route's one packed variable (handlers.DECISION_FIELDS).
                fields = value.strip(b'"').split(b"~")
                self.action_at = time.perf_counter()
                self.action = fields[0]
                self.county = fields[6] if len(fields) > 6 else b""
            elif name == b"SMELINE_ACTION":
                self.action_at = time.perf_counter()
                self.action = value.strip(b'"')
            elif name == b"SMELINE_COUNTY":
                self.county = value.strip(b'"')
            elif name == b"SMELINE_ROUTE":
                self.fallback = True
            return b"200 result=1\n"
        if line.startswith(b"GET DATA "):
            self.menus += 1
            if b"county-menu" in line:
                self.county_menu = True
            return b"200 result=1\n"  # the caller pressed 1
        if line == b"HANGUP":
            return b"200 result=1\n"
        self.unexpected.append(line[:60])
        return REPLY_510.encode() + b"\n"

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(time.perf_counter())


@dataclass(slots=True)
class CallResult:
    scheduled: float  # open loop: when the call was due; closed loop: when it started
    started: float  # before connect
    sent: float  # environment written
    ended: float  # connection closed by the server
    action_at: float
    ok: bool
    kind: str
    action: str = ""
    county_menu: bool = False
    fallback: bool = False
    menus: int = 0
    error: str = ""
    held: float = 0.0  # the caller's own time on the menu (not smeline's)


async def one_call(
    port: int, env: bytes, caller: Caller, scheduled: float, call_limit: float, hold: float = 0.0
) -> CallResult:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    done: asyncio.Future[float] = loop.create_future()
    proto = AgiCall(env, done, hold)
    try:
        async with asyncio.timeout(call_limit):
            await loop.create_connection(lambda: proto, "127.0.0.1", port)
            ended = await done
    except (OSError, TimeoutError) as exc:
        if proto.transport is not None:
            proto.transport.abort()
        now = time.perf_counter()
        return CallResult(
            scheduled=scheduled,
            started=started,
            sent=proto.sent_at or now,
            ended=now,
            action_at=0.0,
            ok=False,
            kind=caller.kind,
            error=type(exc).__name__,
        )
    ok = bool(proto.action) and not proto.unexpected and not proto.fallback
    if ok:
        error = ""
    elif proto.unexpected:
        error = f"unexpected command {proto.unexpected[0]!r}"
    else:
        error = "fallback" if proto.fallback else "no SMELINE_ACTION"
    return CallResult(
        scheduled=scheduled,
        started=started,
        sent=proto.sent_at,
        ended=ended,
        action_at=proto.action_at,
        ok=ok,
        kind=caller.kind,
        action=proto.action.decode(),
        county_menu=proto.county_menu,
        fallback=proto.fallback,
        menus=proto.menus,
        error=error,
        held=proto.held,
    )


def summarise(
    results: Sequence[CallResult],
    window: tuple[float, float],
    extra: dict[str, Any],
    *,
    by_schedule: bool = False,
) -> dict[str, Any]:
    """Figures of the calls that ended inside ``window`` (open loop: that were due in it)."""
    t0, t1 = window
    inside = [r for r in results if t0 <= (r.scheduled if by_schedule else r.ended) <= t1]
    ok = [r for r in inside if r.ok]
    # smeline's side only: the caller's own time on the menu (--hold-ms) is taken out
    lat = sorted((r.ended - r.sent - r.held) * 1000 for r in ok)
    act = sorted((r.action_at - r.sent - r.held) * 1000 for r in ok)
    total = sorted((r.ended - r.scheduled - r.held) * 1000 for r in ok)
    connect = sorted((r.sent - r.started) * 1000 for r in ok)
    span = max(t1 - t0, 1e-9)
    errors = Counter(r.error for r in inside if not r.ok)
    return {
        **extra,
        "window_s": round(span, 2),
        "decisions": len(ok),
        "calls": len(inside),
        "decisions_per_s": round(len(ok) / span, 1),
        "p50_ms": round(percentile(lat, 50), 2),
        "p90_ms": round(percentile(lat, 90), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "max_ms": round(lat[-1], 2) if lat else 0.0,
        "to_action_p50_ms": round(percentile(act, 50), 2),
        "to_action_p99_ms": round(percentile(act, 99), 2),
        "from_scheduled_p50_ms": round(percentile(total, 50), 2),
        "from_scheduled_p99_ms": round(percentile(total, 99), 2),
        "connect_p50_ms": round(percentile(connect, 50), 2),
        "connect_p99_ms": round(percentile(connect, 99), 2),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(5)),
        "fallbacks_seen": sum(1 for r in inside if r.fallback),
        "county_menu_played": sum(1 for r in inside if r.county_menu),
        "menus_per_call": round(sum(r.menus for r in ok) / max(len(ok), 1), 3),
        "actions": dict(Counter(r.action for r in ok)),
        "caller_kinds": dict(Counter(r.kind for r in ok)),
    }


async def closed_loop(
    envs: EnvMaker, concurrency: int, warmup: float, duration: float, call_limit: float
) -> tuple[list[CallResult], tuple[float, float]]:
    results: list[CallResult] = []
    start = time.perf_counter()
    t0 = start + warmup
    t1 = t0 + duration

    async def worker() -> None:
        while time.perf_counter() < t1:
            env, caller, port = envs.next()
            results.append(await one_call(port, env, caller, time.perf_counter(), call_limit))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, (t0, t1)


async def open_loop(
    envs: EnvMaker,
    rate: float,
    warmup: float,
    duration: float,
    call_limit: float,
    hold_ms: float = 0.0,
) -> tuple[list[CallResult], tuple[float, float], dict[str, Any]]:
    """Poisson arrivals; a call starts at its time whatever the others do.

    ``hold_ms``: each caller spends 0.5–1.5 × this on the category menu before
    pressing the key, so about rate × hold calls are in progress at once (the
    hold itself is not counted in the latency)."""
    rnd = random.Random(7)
    holds = random.Random(11)
    results: list[CallResult] = []
    tasks: set[asyncio.Task[None]] = set()
    in_flight = 0
    peak = 0
    seen: list[int] = []
    lags: list[float] = []
    start = time.perf_counter() + 0.05
    t0 = start + warmup
    t1 = t0 + duration

    async def call(scheduled: float) -> None:
        nonlocal in_flight, peak
        seen.append(in_flight)  # Poisson arrivals see the time average (PASTA)
        in_flight += 1
        peak = max(peak, in_flight)
        env, caller, port = envs.next()
        lags.append(time.perf_counter() - scheduled)
        hold = hold_ms / 1000 * holds.uniform(0.5, 1.5)
        try:
            results.append(await one_call(port, env, caller, scheduled, call_limit, hold))
        finally:
            in_flight -= 1

    due = start
    while True:
        due += rnd.expovariate(rate)
        if due > t1:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(call(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    # Calls due in the window, not calls ending in it: a call due just before t1
    # counts even if it ends later (no coordinated omission).
    window_results = [r for r in results if t0 <= r.scheduled <= t1]
    lags_sorted = sorted(lag * 1000 for lag in lags)
    info = {
        "offered_per_s": rate,
        "due_in_window": len(window_results),
        "peak_in_flight": peak,
        "mean_in_flight": round(sum(seen) / max(len(seen), 1), 1),
        "send_lag_p99_ms": round(percentile(lags_sorted, 99), 2),
    }
    return window_results, (t0, t1), info


# --- classic AGI: a process per call -------------------------------------------------------


async def classic_call(dsn: str, env: bytes, caller: Caller, call_limit: float) -> CallResult:
    started = time.perf_counter()
    action_at = 0.0
    action = b""
    menus = 0
    county_menu = fallback = False
    unexpected: list[bytes] = []
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLASSIC_SCRIPT),
        dsn,
        cwd=str(REPO),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    assert process.stderr is not None
    error = ""
    try:
        async with asyncio.timeout(call_limit):
            process.stdin.write(env)
            await process.stdin.drain()
            while line := await process.stdout.readline():
                line = line.rstrip(b"\n")
                if line.startswith(b"SET VARIABLE "):
                    name, _, value = line[13:].partition(b" ")
                    if name == b"SMELINE_ACTION":
                        action_at = time.perf_counter()
                        action = value.strip(b'"')
                    elif name == b"SMELINE_ROUTE":
                        fallback = True
                    reply = b"200 result=1\n"
                elif line.startswith(b"GET DATA "):
                    menus += 1
                    county_menu = county_menu or b"county-menu" in line
                    reply = b"200 result=1\n"
                else:
                    unexpected.append(line[:60])
                    reply = REPLY_510.encode() + b"\n"
                process.stdin.write(reply)
                await process.stdin.drain()
            stderr = await process.stderr.read()
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        error = "TimeoutError"
        stderr = b""
    ended = time.perf_counter()
    if stderr and not error:
        error = stderr.decode(errors="replace").strip().splitlines()[-1][:120]
    ok = bool(action) and not unexpected and not fallback and not error
    return CallResult(
        scheduled=started,
        started=started,
        sent=started,  # latency of a classic call counts from the fork: the process is the cost
        ended=ended,
        action_at=action_at,
        ok=ok,
        kind=caller.kind,
        action=action.decode(),
        county_menu=county_menu,
        fallback=fallback,
        menus=menus,
        error=error if not ok else "",
    )


async def classic_loop(
    dsn: str, envs: EnvMaker, concurrency: int, warmup: float, duration: float, call_limit: float
) -> tuple[list[CallResult], tuple[float, float]]:
    results: list[CallResult] = []
    t0 = time.perf_counter() + warmup
    t1 = t0 + duration

    async def worker() -> None:
        while time.perf_counter() < t1:
            env, caller, _ = envs.next()
            results.append(await classic_call(dsn, env, caller, call_limit))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, (t0, t1)


# --- measuring -----------------------------------------------------------------------------


async def measured(
    name: str,
    servers: Sequence[ServerProcess],
    phase: Callable[[], Any],
) -> tuple[Any, dict[str, Any]]:
    """Runs ``phase`` and returns its result with CPU use and server counters around it."""
    pids = [server.process.pid for server in servers]
    before_stats = await server_stats(servers)
    client_gc = CLIENT_GC.stats()
    cpu0 = cpu_snapshot(pids)
    own0 = os.times()
    # The load generator's own collector pauses would be counted as the
    # server's latency: off while a phase runs (memory is plentiful).
    gc.disable()
    try:
        result = await phase()
    finally:
        gc.enable()
    own1 = os.times()
    cpu1 = cpu_snapshot(pids)
    after_stats = await server_stats(servers)
    elapsed = max(cpu1.at - cpu0.at, 1e-9)
    usage = cpu_usage(cpu0, cpu1)
    usage["client_cores"] = round((own1.user + own1.system - own0.user - own0.system) / elapsed, 2)
    usage["children_cores"] = round(
        (own1.children_user + own1.children_system - own0.children_user - own0.children_system)
        / elapsed,
        2,
    )
    # Whatever else ran on the machine meanwhile (it is shared): busy cores minus ours.
    ours = usage["server_cores"] + usage["postgres_cores"]
    ours += usage["client_cores"] + usage["children_cores"]
    usage["other_cores"] = round(
        max(usage["machine_busy_pct"] / 100 * (os.cpu_count() or 1) - ours, 0.0), 2
    )
    info: dict[str, Any] = {"cpu": usage}
    info["client_gc_pause_s"] = round(CLIENT_GC.stats()["gc_pause_s"] - client_gc["gc_pause_s"], 4)
    if servers:
        info["server"] = {
            k: after_stats[k] - before_stats.get(k, 0)
            for k in (
                "sessions_total",
                "deadline_fallbacks",
                "errors",
                "sessions_rejected",
                "gc_pause_s",
                "gc_gen2_runs",
            )
        }
        info["server"]["gc_max_pause_ms_so_far"] = after_stats.get("gc_max_pause_ms")
        sessions = max(after_stats["sessions_total"] - before_stats["sessions_total"], 1)
        cpu_s = after_stats["cpu_s"] - before_stats["cpu_s"]
        info["server"]["cpu_ms_per_session"] = round(1000 * cpu_s / sessions, 3)
    log(f"{name}: done")
    return result, info


async def server_stats(servers: Sequence[ServerProcess]) -> dict[str, float]:
    """The servers' counters, summed."""
    total: dict[str, float] = defaultdict(float)
    for server in servers:
        stats = await server.ask("stats")
        for key, value in stats.items():
            if isinstance(value, int | float):
                total[key] = max(total[key], value) if "max" in key else total[key] + value
    return dict(total)


def machine_info() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
    }


async def run(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    dsn = database_dsn(args.pg, args.db)
    db_url = sqlalchemy_url(dsn)
    result: dict[str, Any] = {
        "run_id": run_id,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(),
        "targets": {"decisions_per_s": TARGET_DECISIONS_PER_S, "p99_ms": TARGET_P99_MS},
        "note": "client, server process and PostgreSQL share the same CPUs",
    }
    conn = await pg_connect(args.pg)
    try:
        result["machine"]["postgres"] = await conn.fetchval("SHOW server_version")
        data_directory = await conn.fetchval("SHOW data_directory")
    finally:
        await conn.close()
    postmaster: tuple[int, set[int]] | None = None
    if args.pin:
        # PostgreSQL's new backends (the server's pool connects after this)
        # inherit the postmaster's CPUs: put them with the client, leaving the
        # server's CPU to the server. Restored at the end.
        pid = int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
        postmaster = (pid, os.sched_getaffinity(pid))
        os.sched_setaffinity(pid, {args.pin[1]})
        result["pinned"] = {"server_cpu": args.pin[0], "client_and_postgres_cpu": args.pin[1]}
    try:
        return await measure_all(args, run_id, dsn, db_url, result)
    finally:
        if postmaster is not None:
            os.sched_setaffinity(postmaster[0], postmaster[1])


async def measure_all(
    args: argparse.Namespace, run_id: str, dsn: str, db_url: str, result: dict[str, Any]
) -> dict[str, Any]:
    CLIENT_GC.install()
    result["seed"] = await seed_database(args, dsn, db_url)
    if args.seed_only:
        return result
    callers = await load_callers(dsn, 20_000, args.random_seed + 1)
    out_dir: Path = args.out
    profile = out_dir / f"bench_agi_routing-{run_id}-profile.txt" if args.profile else None
    servers: list[ServerProcess] = []
    try:
        for i in range(args.servers):
            servers.append(
                await ServerProcess.start(
                    db_url,
                    out_dir / "logs" / f"agi-{run_id}-server{i + 1}",
                    out_dir / "logs" / f"agi-{run_id}-server{i + 1}.stderr",
                    profile if i == 0 else None,
                    args.loop,
                    {args.pin[0]} if args.pin else None,
                )
            )
        ports = [server.port for server in servers]
        envs = EnvMaker(env_template("route", "agi://127.0.0.1:{port}/route"), callers, ports)
        if args.duration > 0:
            log(
                f"closed loop: {args.concurrency} callers, {args.warmup:g} s warm-up + "
                f"{args.duration:g} s, {len(servers)} server process(es)"
            )
            if profile is not None:
                await servers[0].ask("profile-start")
            (calls, window), info = await measured(
                "closed loop",
                servers,
                lambda: closed_loop(
                    envs, args.concurrency, args.warmup, args.duration, args.timeout
                ),
            )
            if profile is not None:
                await servers[0].ask("profile-stop")
                result["profile"] = str(profile)
            result["closed"] = summarise(calls, window, {"concurrency": args.concurrency, **info})
        result["open"] = []
        for rate in args.rate:
            if rate <= 0 or args.open_duration <= 0:
                continue
            log(f"open loop: {rate:g} calls/s (Poisson) for {args.open_duration:g} s")
            (calls, window, extra), info = await measured(
                f"open loop {rate:g}/s",
                servers,
                lambda r=rate: open_loop(
                    envs, r, 1.0, args.open_duration, args.timeout, args.hold_ms
                ),
            )
            result["open"].append(summarise(calls, window, {**extra, **info}, by_schedule=True))
    finally:
        result["server_final"] = [await server.stop() for server in servers]
    result["servers"] = args.servers
    if args.classic_duration > 0:
        classic_envs = EnvMaker(env_template("", "agi_process_per_call.py"), callers, [])
        for concurrency, duration in (
            (args.classic_concurrency, args.classic_duration),
            (1, min(args.classic_duration, 8.0)),
        ):
            log(f"classic AGI, a process per call: {concurrency} at a time, {duration:g} s")
            (calls, window), info = await measured(
                f"classic C={concurrency}",
                [],
                lambda c=concurrency, d=duration: classic_loop(
                    dsn, classic_envs, c, 2.0, d, args.timeout * 10
                ),
            )
            key = "classic" if concurrency == args.classic_concurrency else "classic_c1"
            result[key] = summarise(calls, window, {"concurrency": concurrency, **info})
    result["machine"]["loadavg_end"] = os.getloadavg()
    return result


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def print_summary(result: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    closed = result.get("closed")
    if closed:
        rows.append(
            (
                f"FastAGI closed loop C={closed['concurrency']}: decisions/s",
                f"{closed['decisions_per_s']:.0f} /s",
                f">= {TARGET_DECISIONS_PER_S:.0f} /s",
                verdict(closed["decisions_per_s"] >= TARGET_DECISIONS_PER_S),
            )
        )
        rows.append(
            (
                "  latency p50 / p99 (env sent → server closed)",
                f"{closed['p50_ms']:.1f} / {closed['p99_ms']:.1f} ms",
                f"p99 < {TARGET_P99_MS:g} ms",
                verdict(closed["p99_ms"] < TARGET_P99_MS),
            )
        )
    for opn in result.get("open", []):
        rows.append(
            (
                f"FastAGI open loop {opn['offered_per_s']:g}/s: achieved",
                f"{opn['decisions_per_s']:.0f} /s (in progress: mean "
                f"{opn['mean_in_flight']}, peak {opn['peak_in_flight']})",
                "",
                "",
            )
        )
        rows.append(
            (
                "  smeline p50 / p99 (env → close, less the caller's menu time)",
                f"{opn['p50_ms']:.2f} / {opn['p99_ms']:.2f} ms",
                f"p99 < {TARGET_P99_MS:g} ms",
                verdict(opn["p99_ms"] < TARGET_P99_MS and opn["decisions"] > 0),
            )
        )
    for key in ("classic", "classic_c1"):
        c = result.get(key)
        if c:
            rows.append(
                (
                    f"classic AGI (process per call) C={c['concurrency']}",
                    f"{c['decisions_per_s']:.1f} /s, p50 {c['p50_ms']:.0f} / "
                    f"p99 {c['p99_ms']:.0f} ms",
                    "",
                    "",
                )
            )
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:<40} {target:<14} {ok}")
    print()
    phases = [("closed", result.get("closed"))]
    phases += [(f"open {o['offered_per_s']:g}/s", o) for o in result.get("open", [])]
    phases += [(k, result.get(k)) for k in ("classic", "classic_c1")]
    for key, phase in phases:
        if not phase:
            continue
        server = phase.get("server", {})
        print(
            f"{key}: {phase['decisions']} decisions in {phase['window_s']} s, errors "
            f"{phase['errors']} {phase['error_kinds'] or ''}, fallbacks seen "
            f"{phase['fallbacks_seen']}, county menu {phase['county_menu_played']}, "
            f"actions {phase['actions']}"
        )
        if server:
            print(
                f"  server: sessions {server['sessions_total']}, deadline_fallbacks "
                f"{server['deadline_fallbacks']}, errors {server['errors']}, rejected "
                f"{server['sessions_rejected']}, {server['cpu_ms_per_session']} ms CPU/session, "
                f"GC {server['gc_pause_s']} s (max pause so far "
                f"{server['gc_max_pause_ms_so_far']} ms)"
            )
        print(f"  cpu: {phase['cpu']}")
        print(
            f"  to SMELINE_ACTION p50/p99 {phase['to_action_p50_ms']}/{phase['to_action_p99_ms']}"
            f" ms; from scheduled p50/p99 {phase['from_scheduled_p50_ms']}/"
            f"{phase['from_scheduled_p99_ms']} ms; connect p99 {phase['connect_p99_ms']} ms"
        )
    m = result["machine"]
    print(
        f"\nmachine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB, PostgreSQL "
        f"{m.get('postgres')}; client, server and PostgreSQL share the CPUs"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_agi_routing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--enterprises", type=int, default=3_000)
    p.add_argument("--profiles", type=int, default=10_000, help="caller profiles to seed")
    p.add_argument("--random-seed", type=int, default=20261202)
    p.add_argument("--db", default="smeline_bench_agi", help="bench database (dropped!)")
    p.add_argument("--pg", default=DEFAULT_PG, help="admin DSN of the PostgreSQL server")
    p.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    p.add_argument("--seed-only", action="store_true")
    p.add_argument("--concurrency", type=int, default=200, help="closed-loop callers")
    p.add_argument("--duration", type=float, default=20.0, help="closed-loop seconds (0: skip)")
    p.add_argument("--warmup", type=float, default=3.0, help="unrecorded closed-loop seconds")
    p.add_argument(
        "--rate",
        type=lambda text: [float(r) for r in text.split(",") if r.strip()],
        default=[100.0, 250.0, 400.0, 1000.0],
        help="open loop: calls/s, comma-separated for several phases (0: skip)",
    )
    p.add_argument("--open-duration", type=float, default=10.0, help="seconds per open loop")
    p.add_argument(
        "--hold-ms",
        type=float,
        default=0.0,
        help="open loop: the caller's own time on the category menu (0.5-1.5 x this), "
        "not counted in latency; rate x hold = calls in progress at once",
    )
    p.add_argument("--servers", type=int, default=1, help="FastAGI server processes")
    p.add_argument(
        "--pin",
        type=lambda text: [int(c) for c in text.split(",")],
        help="SERVER_CPU,CLIENT_CPU: pin the server process(es) and this client to one CPU "
        "each (taskset / sched_setaffinity); PostgreSQL stays unpinned",
    )
    p.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="the server processes' event loop (as SMELINE_EVENT_LOOP; auto = uvloop if installed)",
    )
    p.add_argument("--classic-concurrency", type=int, default=20)
    p.add_argument(
        "--classic-duration", type=float, default=20.0, help="classic AGI seconds (0: skip)"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="per FastAGI call")
    p.add_argument(
        "--profile", action="store_true", help="pyinstrument the server in the closed loop"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    # the server process
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--db-url", help=argparse.SUPPRESS)
    p.add_argument("--log-dir", help=argparse.SUPPRESS)
    p.add_argument("--agi-port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.db):
        p.error("--db must be a plain lower-case identifier")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        run_on(args.loop, serve(args))
        return 0
    run_id = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.pin:
        os.sched_setaffinity(0, {args.pin[1]})
    # The client runs on the same loop as the servers (--loop), so that the
    # load generator costs as little of the shared CPUs as it can.
    result, _name = run_on(args.loop, run(args, run_id))
    if not args.seed_only:
        print_summary(result)
    path = args.out / f"bench_agi_routing-{run_id}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
