"""Token bucket for copies sent per second. Pure: time comes from the injected clock, callers sleep."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """Allows `rate_per_second` on average with bursts of at most one second's worth.

    A burst is whole messages, so it is the rate rounded down, but at least one message (a rate
    of 0.5 sends one message, then one every two seconds). Callers send at most `burst` at once.
    """

    def __init__(self, rate_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate_per_second > 0 or math.isinf(rate_per_second):
            raise ValueError(f"rate_per_second must be a finite number > 0, got {rate_per_second}")
        self._rate = rate_per_second
        self.burst = max(1, math.floor(rate_per_second))
        self._capacity = float(self.burst)
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()

    def reserve(self, count: int) -> float:
        """Takes `count` tokens and returns how many seconds to wait before using them.

        Tokens may go negative (a debt repaid by waiting), so a batch larger than the burst
        still goes through, just later.
        """
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        self._tokens -= count
        return max(0.0, -self._tokens / self._rate)
