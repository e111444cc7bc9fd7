"""What `smeline serve` tunes for speed: its event loop and the garbage collector."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from smeline.eventloop import new_event_loop, run_on


def test_auto_picks_uvloop_when_installed_and_asyncio_on_request() -> None:
    uvloop = pytest.importorskip("uvloop")
    loop, name = new_event_loop("auto")
    try:
        assert name == "uvloop" and isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    loop, name = new_event_loop("asyncio")
    try:
        assert name == "asyncio" and type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


def test_without_uvloop_auto_falls_back_and_an_explicit_request_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    loop, name = new_event_loop("auto")
    try:
        assert name == "asyncio" and isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        new_event_loop("uvloop")


def test_the_serving_process_freezes_start_up_objects_and_raises_the_young_threshold(
    tmp_path: Path,
) -> None:
    # In a child process: the collector's settings are process-wide.
    script = textwrap.dedent(
        f"""
        import asyncio, gc, json
        from aiohttp import web
        from smeline.app import GC_YOUNG_THRESHOLD, create_app, freeze_gc_after_startup
        from smeline.config import Settings
        from smeline.migrate import upgrade

        async def main():
            settings = Settings(
                database_url="sqlite+aiosqlite:///{tmp_path}/t.db",
                log_dir="{tmp_path}/log",
                log_to_stderr=False,
                scheduler_enabled=False,
            )
            await upgrade(settings.database_url)
            before = gc.get_threshold()
            app = create_app(settings, background=False)
            freeze_gc_after_startup(app)
            runner = web.AppRunner(app)
            await runner.setup()
            try:
                print(json.dumps({{
                    "before": before,
                    "after": gc.get_threshold(),
                    "frozen": gc.get_freeze_count(),
                    "want": GC_YOUNG_THRESHOLD,
                }}))
            finally:
                await runner.cleanup()

        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"][0] != seen["want"]
    assert seen["after"][0] == seen["want"]
    assert seen["frozen"] > 10_000


def test_run_on_runs_a_coroutine_on_the_chosen_loop() -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    module, name = run_on("asyncio", which())
    assert name == "asyncio" and module.startswith("asyncio")
