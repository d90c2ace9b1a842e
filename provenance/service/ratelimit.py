"""Per-token rate limiting: a token bucket per submitter.

Each token may make ``burst`` requests at once and ``rate`` per second on average;
past that the service answers 429 with ``Retry-After`` (whole seconds until a request
would be allowed). The limit is applied after authentication and before the body is
read, so a flood costs the service a header parse and a dictionary lookup. State is
per process: behind a load balancer with N service processes a token gets up to N
times the rate (docs/service.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets by key; :meth:`take` returns 0 (allowed) or seconds to wait."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one request of ``key``'s bucket if it has one."""
        with self._lock:
            now = self._clock()
            tokens, when = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """The ``Retry-After`` header value for a wait (at least one second)."""
        return str(max(1, math.ceil(wait)))
