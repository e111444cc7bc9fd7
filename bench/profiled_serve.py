"""``smeline serve`` instrumented for bench_realtime, switched by signals.

SIGUSR1 opens the measurement window, SIGUSR2 closes it. Inside it every pause
of the cyclic garbage collector is recorded (a collection stops the whole
event loop); at SIGUSR2 they are written as JSON to the file named by
SMELINE_BENCH_GC. When SMELINE_BENCH_PROFILE names a file, pyinstrument also
samples the window and its text report goes there (pyinstrument is a
bench-only tool: pip install pyinstrument).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from smeline.cli import main


class GcPauses:
    def __init__(self) -> None:
        self.recording = False
        self.started = 0.0
        self.pauses: list[tuple[int, float, int]] = []  # generation, ms, collected

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if not self.recording:
            return
        if phase == "start":
            self.started = time.perf_counter()
            return
        ms = (time.perf_counter() - self.started) * 1000
        self.pauses.append((info.get("generation", -1), ms, info.get("collected", 0)))

    def report(self) -> dict[str, Any]:
        by_gen: dict[str, Any] = {}
        for gen in (0, 1, 2):
            ms = sorted(p[1] for p in self.pauses if p[0] == gen)
            by_gen[str(gen)] = {
                "runs": len(ms),
                "total_ms": round(sum(ms), 1),
                "max_ms": round(ms[-1], 1) if ms else 0.0,
            }
        return {"by_generation": by_gen, "frozen_objects": gc.get_freeze_count()}


pauses = GcPauses()
gc.callbacks.append(pauses.callback)
profile_to = os.environ.get("SMELINE_BENCH_PROFILE")
profiler: Any = None
if profile_to:
    from pyinstrument import Profiler  # type: ignore[import-not-found]

    profiler = Profiler(interval=0.001, async_mode="disabled")


def start(*_: Any) -> None:
    pauses.pauses.clear()
    pauses.recording = True
    if profiler is not None:
        profiler.start()


def stop(*_: Any) -> None:
    pauses.recording = False
    if profiler is not None and profile_to:
        profiler.stop()
        Path(profile_to).write_text(profiler.output_text(unicode=True))
    gc_to = os.environ.get("SMELINE_BENCH_GC")
    if gc_to:
        Path(gc_to).write_text(json.dumps(pauses.report()))


signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
sys.exit(main(sys.argv[1:]))
