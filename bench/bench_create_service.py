"""Create rate of the work-order service without HTTP: what the domain layer costs.

    .venv/bin/python -m bench.bench_create_service [--db smeline_bench] [--count 3000]

Runs ``TicketService.create`` in this process against an already seeded bench
database (see bench_tickets.py), 25 at a time, and prints creates/s and the CPU
time of this process per create. Compare with bench_tickets.py's HTTP figure to see
what the web layer adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from smeline import keys
from smeline.app import create_app
from smeline.auth.models import Role
from smeline.auth.permissions import Principal
from smeline.config import Settings
from smeline.db import utcnow
from smeline.ticketing.schemas import TicketCreateIn


async def run(db: str, count: int, concurrency: int) -> None:
    settings = Settings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}",
        log_to_stderr=False,
        scheduler_enabled=False,
    )
    app = create_app(settings, background=False)
    await app[keys.REFERENCE].load()
    await app[keys.CALENDARS].load()
    await app[keys.POLICIES].load()
    await app[keys.BUS].start()
    service = app[keys.TICKETS]
    admin = Principal(
        user_id=1,
        username="bench",
        role=Role.ADMIN,
        county_code=None,
        window_code=None,
        session_id=0,
    )
    data = TicketCreateIn.model_validate_json(
        json.dumps(
            {
                "subject": "咨询贷款贴息",
                "description": "企业想了解贴息申请条件。",
                "source": "phone",
                "category_code": "financing",
                "county_code": "441481",
                "contact_phone": "13800001234",
            }
        )
    )
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await service.create(admin, data, now=utcnow())

    await asyncio.gather(*[one() for _ in range(100)])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*[one() for _ in range(count)])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{count} creates: {count / wall:.0f} creates/s, {cpu / count * 1000:.2f} ms CPU each")
    await app[keys.BUS].close()
    await app[keys.ENGINE].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="smeline_bench")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(run(args.db, args.count, args.concurrency))


if __name__ == "__main__":
    main()
