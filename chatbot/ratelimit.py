"""Request rate limits: a per-key allowance of ``limit`` requests per ``period`` seconds.

The algorithm is GCRA (the "generic cell rate algorithm", a token bucket kept as one number
per key): each key has a *theoretical arrival time* ``tat``; a request at ``now`` is allowed
when ``max(tat, now) + period / limit - now <= period``, and then moves ``tat`` on by
``period / limit``. So a client may send ``limit`` requests at once, and then one every
``period / limit`` seconds; an idle client earns its allowance back at the same pace. A refused
request changes nothing and learns exactly how long to wait (``retry_after``).

``check`` takes several keys (the client's address and its conversation): the request passes
only if every key has room, and then counts against all of them, atomically. State is in
memory, per process (several server processes each keep their own counts); stale keys are
dropped as the table grows, so memory stays bounded by the clients seen in one period.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    key: str | None = None  # the key that refused the request
    limit: int = 0
    retry_after: float = 0.0  # seconds until the refused request would pass

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After`` as whole seconds, rounded up (at least 1)."""
        return max(1, math.ceil(self.retry_after))


class RateLimiter:
    def __init__(
        self,
        limits: dict[str, int],
        *,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        """``limits`` maps a key kind (e.g. ``"ip"``, ``"conversation"``) to requests per
        ``period``; a kind whose limit is 0 is not limited."""
        if period <= 0:
            raise ValueError("period must be positive")
        self.limits = {kind: n for kind, n in limits.items() if n > 0}
        self.period = period
        self.clock = clock
        self.max_keys = max_keys
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.limits)

    def check(self, keys: Sequence[tuple[str, str]]) -> Verdict:
        """``keys``: ``(kind, value)`` pairs of one request. Counts it if all have room."""
        wanted = [(f"{kind}:{value}", self.limits[kind]) for kind, value in keys
                  if kind in self.limits]
        if not wanted:
            return Verdict(True)
        with self._lock:
            now = self.clock()
            updates = []
            for key, limit in wanted:
                step = self.period / limit
                new_tat = max(self._tat.get(key, now), now) + step
                wait = new_tat - now - self.period
                if wait > 1e-9:
                    return Verdict(False, key=key, limit=limit, retry_after=wait)
                updates.append((key, new_tat))
            for key, new_tat in updates:
                self._tat[key] = new_tat
            if len(self._tat) > self.max_keys:
                self._prune(now)
        return Verdict(True)

    def _prune(self, now: float) -> None:
        """Forget keys whose allowance is whole again (they behave exactly as unseen keys)."""
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
        if len(self._tat) > self.max_keys:  # a flood of distinct keys: drop the oldest half
            for key in sorted(self._tat, key=self._tat.__getitem__)[: len(self._tat) // 2]:
                del self._tat[key]

    def __len__(self) -> int:
        return len(self._tat)
