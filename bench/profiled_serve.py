"""``smeline serve`` under pyinstrument, switched by signals (bench_realtime --profile).

SIGUSR1 starts sampling, SIGUSR2 stops it and writes the text report to the
file named by SMELINE_BENCH_PROFILE. pyinstrument is a bench-only tool
(pip install pyinstrument).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from pyinstrument import Profiler  # type: ignore[import-not-found]

from smeline.cli import main

profiler = Profiler(interval=0.001, async_mode="disabled")


def start(*_: Any) -> None:
    profiler.start()


def stop(*_: Any) -> None:
    profiler.stop()
    Path(os.environ["SMELINE_BENCH_PROFILE"]).write_text(profiler.output_text(unicode=True))


signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
sys.exit(main(sys.argv[1:]))
