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
        self.details: list[dict[str, Any]] = []

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if not self.recording:
            return
        if phase == "start":
            if DETAIL and len(self.details) < 20:
                self.details.append(young_census(info.get("generation", 0)))
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
        return {
            "by_generation": by_gen,
            "frozen_objects": gc.get_freeze_count(),
            "young_census": self.details,
        }


#: SMELINE_BENCH_GC_DETAIL=1: before some collections, what the young
#: generations hold (objects by type, and the types with the most references:
#: a collection's cost is the references it follows). Diagnosis only: slow.
DETAIL = os.environ.get("SMELINE_BENCH_GC_DETAIL") == "1"


def young_census(generation: int) -> dict[str, Any]:
    counts: dict[str, int] = {}
    refs: dict[str, int] = {}
    objects = [o for g in range(generation + 1) for o in gc.get_objects(g)]
    for obj in objects:
        name = type(obj).__qualname__
        counts[name] = counts.get(name, 0) + 1
        refs[name] = refs.get(name, 0) + len(gc.get_referents(obj))
    top = sorted(refs.items(), key=lambda kv: -kv[1])[:8]
    return {
        "generation": generation,
        "objects": len(objects),
        "references": sum(refs.values()),
        "top_by_references": [(n, counts[n], r) for n, r in top],
    }


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
