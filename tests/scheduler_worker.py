"""One SLA scheduler process for the multi-process tests in ``test_scheduler.py``.

It builds the application's services on the given database the way ``smeline
serve`` does (``create_app`` and its start-up), then ticks an :class:`SlaScheduler`
wired from those services, with a small batch so that the work takes many ticks
and two processes interleave. Events go to a Redis channel private to the test.

Protocol on stdout, one JSON object per line: ``{"ready": true, "pid": ...}`` once
built; then, after the ``--go`` file appears, it ticks until the ``--stop`` file
appears, or with ``--until-idle`` until a tick it was not locked out of found
nothing to raise, or until ``--deadline`` seconds have passed; finally it prints
its statistics and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from smeline import keys
from smeline.app import create_app
from smeline.bus import RedisBus
from smeline.config import Settings
from smeline.ticketing.scheduler import SlaScheduler
from smeline.ticketing.sla import SlaRules


def _emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def _wait_for(path: Path, deadline: float) -> bool:
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def run(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.deadline
    settings = Settings(
        database_url=args.database_url,
        redis_url=None,
        scheduler_enabled=False,
        log_to_stderr=False,
        argon2_time_cost=1,
        argon2_memory_kib=64,
    )
    app = create_app(settings, background=False)
    runner = web.AppRunner(app)
    await runner.setup()  # seeds, loads reference data and the calendar, as on start
    bus = RedisBus(app[keys.EVENT_REGISTRY], args.redis_url, channel=args.channel)
    await bus.start()
    scheduler = SlaScheduler(
        sessionmaker=app[keys.SESSIONMAKER],
        tickets=app[keys.TICKETS],
        rules=SlaRules(settings.sla_warning_ratio),
        calendars=app[keys.CALENDARS],
        outbox=app[keys.OUTBOX],
        bus=bus,
        escalate_to_roles=settings.escalate_to_roles,
        archive_after_days=settings.archive_after_days,
        batch_size=args.batch_size,
    )
    now = datetime.fromisoformat(args.now)
    stats: dict[str, Any] = {
        "pid": os.getpid(),
        "ticks": 0,
        "locked_out": 0,
        "raised": 0,
        "escalations": 0,
        "errors": 0,
        "first_tick_at": None,
        "last_tick_at": None,
        "reason": "deadline",
    }
    try:
        _emit(ready=True, pid=os.getpid())
        if not await _wait_for(Path(args.go), deadline):
            stats["reason"] = "no go"
            return 1
        stop = Path(args.stop) if args.stop else None
        while time.monotonic() < deadline:
            if stop is not None and await asyncio.to_thread(stop.exists):
                stats["reason"] = "stopped"
                break
            started = time.time()
            try:
                result = await scheduler.tick(now)
            except Exception as exc:  # reported, and makes the test fail
                stats["errors"] += 1
                stats["last_error"] = repr(exc)
                await asyncio.sleep(0.01)
                continue
            stats["first_tick_at"] = stats["first_tick_at"] or started
            stats["last_tick_at"] = time.time()
            stats["ticks"] += 1
            stats["raised"] += result.raised
            stats["escalations"] += result.escalations
            if result.locked_out:
                stats["locked_out"] += 1
                # Let the other process finish its tick rather than spin on the lock.
                await asyncio.sleep(0.001)
            elif args.until_idle and result.raised == 0:
                stats["reason"] = "idle"
                break
    finally:
        await bus.close()
        await runner.cleanup()
        _emit(**stats)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--now", required=True, help="ISO instant every tick evaluates at")
    parser.add_argument("--go", required=True, help="start ticking once this file exists")
    parser.add_argument("--stop", help="stop once this file exists")
    parser.add_argument("--until-idle", action="store_true")
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--batch-size", type=int, default=7)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
