"""``smeline`` command line: serve, migrate, create-user, openapi, asterisk-config, prompts."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from aiohttp import web

from smeline import keys
from smeline.auth.models import Role
from smeline.auth.passwords import Passwords
from smeline.auth.schemas import UserCreateIn
from smeline.auth.services import UserService
from smeline.config import Settings, load_settings
from smeline.db import make_engine, make_sessionmaker, utcnow
from smeline.eventloop import new_event_loop
from smeline.logging_setup import setup_logging
from smeline.migrate import upgrade_sync
from smeline.reference.services import ReferenceService


def _prepare_sqlite_dir(settings: Settings) -> None:
    if settings.is_sqlite and ":///" in settings.database_url:
        path = settings.database_url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


async def _ensure_first_admin(settings: Settings) -> tuple[str, str] | None:
    """On an empty database: an administrator with a one-time password."""
    engine = make_engine(settings.database_url)
    try:
        sessionmaker = make_sessionmaker(engine)
        await ReferenceService(sessionmaker=sessionmaker).seed()
        users = UserService(
            sessionmaker=sessionmaker,
            passwords=Passwords(
                time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
            ),
        )
        if await users.count() > 0:
            return None
        user, password = await users.create(
            UserCreateIn(username="admin", display_name="平台管理员", role=Role.ADMIN),
            now=utcnow(),
        )
        return user.username, password
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    _prepare_sqlite_dir(settings)
    upgrade_sync(settings.database_url)
    print("database is at the newest schema")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from smeline.app import create_app, freeze_gc_after_startup

    _prepare_sqlite_dir(settings)
    setup_logging(
        log_dir=settings.log_dir,
        level=settings.log_level,
        retention_days=settings.log_retention_days,
        to_stderr=settings.log_to_stderr,
    )
    if not args.no_migrate:
        upgrade_sync(settings.database_url)
    created = asyncio.run(_ensure_first_admin(settings))
    if created:
        # Printed once, to the terminal only: it never goes to the logs.
        print(
            "\n"
            f"  First administrator: {created[0]}\n"
            f"  One-time password:   {created[1]}\n"
            "  (shown once; you will be asked to change it at the first login)\n",
            flush=True,
        )
    if not settings.telephony_configured:
        print("  Telephony is not configured: phone features are off.", flush=True)
    print(f"  smeline on http://{settings.host}:{settings.port}/", flush=True)
    loop, loop_name = new_event_loop(settings.event_loop)
    print(f"  event loop: {loop_name}", flush=True)
    asyncio.set_event_loop(loop)
    app = create_app(settings)
    freeze_gc_after_startup(app, settings.gc_refreeze_seconds)
    web.run_app(app, host=settings.host, port=settings.port, print=None, loop=loop)
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> str:
        engine = make_engine(settings.database_url)
        try:
            sessionmaker = make_sessionmaker(engine)
            await ReferenceService(sessionmaker=sessionmaker).seed()
            users = UserService(
                sessionmaker=sessionmaker,
                passwords=Passwords(
                    time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
                ),
            )
            _, password = await users.create(
                UserCreateIn.model_validate_json(
                    json.dumps(
                        {
                            "username": args.username,
                            "display_name": args.display_name or args.username,
                            "role": args.role,
                            "county_code": args.county,
                            "window_code": args.window,
                        }
                    )
                ),
                now=utcnow(),
            )
            return password
        finally:
            await engine.dispose()

    try:
        password = asyncio.run(run())
    except Exception as exc:  # shown to an operator as one line
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.username} created; one-time password: {password}")
    return 0


def cmd_openapi(_settings: Settings, _args: argparse.Namespace) -> int:
    from smeline.app import create_app
    from smeline.openapi import build_openapi

    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"), background=False)
    print(json.dumps(build_openapi(app[keys.API_SPECS]), ensure_ascii=False, indent=2))
    return 0


async def _render_asterisk_config(settings: Settings) -> dict[str, str]:
    from sqlalchemy import select

    from smeline.auth.models import User
    from smeline.reference.models import Window
    from smeline.telephony.asterisk_config import (
        AgentPhone,
        DialplanSettings,
        ManagerUser,
        QueueOptions,
        WindowQueue,
        render_all,
    )
    from smeline.telephony.phones import PhoneBook

    engine = make_engine(settings.database_url)
    try:
        sessionmaker = make_sessionmaker(engine)
        await ReferenceService(sessionmaker=sessionmaker).seed()
        async with sessionmaker() as db:
            windows = (
                await db.scalars(select(Window).where(Window.active).order_by(Window.sort))
            ).all()
            names = {
                uid: name for uid, name in await db.execute(select(User.id, User.display_name))
            }
        phones = await PhoneBook(sessionmaker=sessionmaker).all()
        return render_all(
            windows=[WindowQueue(w.code, w.name) for w in windows],
            agents=[
                AgentPhone(
                    endpoint=p.endpoint, secret=p.secret, display_name=names.get(p.user_id, "")
                )
                for p in phones
            ],
            settings=DialplanSettings(
                hotline=settings.hotline_number,
                agi=f"{settings.agi_host}:{settings.agi_port}",
                trunk=settings.trunk_endpoint,
                recording_dir=str(settings.recordings_dir),
                message_dir=str(settings.messages_dir),
            ),
            manager=ManagerUser(secret=settings.ami_secret, username=settings.ami_username),
            options=QueueOptions(
                strategy=settings.queue_strategy, wrapup_seconds=settings.wrapup_seconds
            ),
        )
    finally:
        await engine.dispose()


def cmd_asterisk_config(settings: Settings, args: argparse.Namespace) -> int:
    """Windows → queues, agents → WebRTC endpoints, globals, the AMI user."""
    from smeline.telephony.asterisk_config import write_all

    try:
        files = asyncio.run(_render_asterisk_config(settings))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in write_all(files, args.out):
        print(path)
    return 0


def cmd_prompts(_settings: Settings, args: argparse.Namespace) -> int:
    from smeline.prompts.generate import main as generate_main

    argv = ["--out", str(args.out)] + (["--force"] if args.force else [])
    return generate_main(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema")
    sub.add_parser("migrate", help="upgrade the database schema")
    create = sub.add_parser("create-user", help="create a staff account")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--display-name")
    create.add_argument("--county", help="county code (county_admin)")
    create.add_argument("--window", help="window code (agent)")
    sub.add_parser("openapi", help="print the OpenAPI document")
    config = sub.add_parser(
        "asterisk-config", help="render Asterisk's configuration from the database"
    )
    config.add_argument("--out", type=Path, required=True, help="directory to write")
    prompts = sub.add_parser("prompts", help="generate the Mandarin voice prompts (espeak-ng, sox)")
    prompts.add_argument("--out", type=Path, required=True, help="Asterisk sounds directory")
    prompts.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    settings = load_settings()
    handlers = {
        "serve": cmd_serve,
        "migrate": cmd_migrate,
        "create-user": cmd_create_user,
        "openapi": cmd_openapi,
        "asterisk-config": cmd_asterisk_config,
        "prompts": cmd_prompts,
    }
    return handlers[args.command](settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
