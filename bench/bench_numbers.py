"""How long one ``normalise()`` takes on common input (µs per call)."""

from __future__ import annotations

import time

from smeline.routing.numbers import load_mobile_segments, normalise

SAMPLES = ["+8613923001234", "0753 2123 4567", "21234567", "020 8888 8888", "anonymous"]


def main() -> None:
    load_mobile_segments()
    for raw in SAMPLES:
        normalise(raw)
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        for raw in SAMPLES:
            normalise(raw)
    per_call = (time.perf_counter() - start) / (rounds * len(SAMPLES))
    print(f"normalise: {per_call * 1e6:.2f} µs per call over {rounds * len(SAMPLES)} calls")


if __name__ == "__main__":
    main()
