"""A token bucket per socket: every inbound event costs one token."""

from __future__ import annotations

import time
from collections.abc import Callable

# Float rounding must not refuse a client that waited exactly one refill.
_EPSILON = 1e-9


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up.

    A client that sends steadily below ``rate`` is never limited; one that
    bursts gets ``burst`` events through, then one per ``1 / rate`` seconds.
    The clock is injectable so the arithmetic is tested without waiting.
    """

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> bool:
        """Spend one token; False (and nothing spent) when the bucket is empty."""
        now = self._clock()
        # max(): a clock that steps back (it should not, monotonic) never drains the bucket.
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens < 1.0 - _EPSILON:
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        return True
