"""Request rate limits: a per-key allowance of ``limit`` requests per ``period`` seconds.

The algorithm is GCRA (the "generic cell rate algorithm", a token bucket kept as one number
per key): each key has a *theoretical arrival time* ``tat``; a request at ``now`` is allowed
when ``max(tat, now) + period / limit - now <= period``, and then moves ``tat`` on by
``period / limit``. So a client may send ``limit`` requests at once, and then one every
``period / limit`` seconds; an idle client earns its allowance back at the same pace. A refused
request changes nothing and learns exactly how long to wait (``retry_after``).

``check`` takes several keys (the client's address and its conversation): the request passes
only if every key has room, and then counts against all of them, atomically.

Two stores of the ``tat`` numbers:

- ``RateLimiter``: in memory, per process, on the monotonic clock; stale keys are dropped as
  the table grows, so memory stays bounded by the clients seen in one period.
- ``DatabaseRateLimiter``: a ``rate_limits`` table that every server process sharing the
  database counts in (README, Scale-out), on the wall clock, since the nodes share no other.
  One short transaction per request; the rows of the request's keys are locked (PostgreSQL
  ``FOR UPDATE``, SQLite's write lock) so two nodes never both spend the last request. If the
  database cannot be reached the request is let through (the turn itself will then say what
  is wrong), rather than refusing every customer for a limiter's sake.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from chatbot.models import RateLimitRow

log = logging.getLogger(__name__)


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


def wanted_keys(limits: Mapping[str, int], keys: Sequence[tuple[str, str]]) -> dict[str, int]:
    """The stored key and the limit of each ``(kind, value)`` whose kind is limited."""
    return {f"{kind}:{value}"[:200]: limits[kind] for kind, value in keys if kind in limits}


def gcra(
    wanted: Mapping[str, int], tats: Mapping[str, float], now: float, period: float
) -> tuple[Verdict, dict[str, float]]:
    """One request against every key in ``wanted`` (key -> limit), given the keys' stored
    ``tat`` (a missing key is unseen): the verdict, and the new ``tat`` of each key if allowed
    (nothing to store if refused)."""
    updates: dict[str, float] = {}
    for key, limit in wanted.items():
        step = period / limit
        new_tat = max(tats.get(key, now), now) + step
        wait = new_tat - now - period
        if wait > 1e-9:
            return Verdict(False, key=key, limit=limit, retry_after=wait), {}
        updates[key] = new_tat
    return Verdict(True), updates


class _Limits:
    """The limits and the clock of a limiter, whichever store keeps its counts."""

    #: Whether ``check`` does I/O (an async caller then runs it in a worker thread).
    blocking = False

    def __init__(self, limits: dict[str, int], period: float, clock: Callable[[], float]) -> None:
        """``limits`` maps a key kind (e.g. ``"ip"``, ``"conversation"``) to requests per
        ``period``; a kind whose limit is 0 is not limited."""
        if period <= 0:
            raise ValueError("period must be positive")
        self.limits = {kind: n for kind, n in limits.items() if n > 0}
        self.period = period
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.limits)


class RateLimiter(_Limits):
    def __init__(
        self,
        limits: dict[str, int],
        *,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        super().__init__(limits, period, clock)
        self.max_keys = max_keys
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, keys: Sequence[tuple[str, str]]) -> Verdict:
        """``keys``: ``(kind, value)`` pairs of one request. Counts it if all have room."""
        wanted = wanted_keys(self.limits, keys)
        if not wanted:
            return Verdict(True)
        with self._lock:
            now = self.clock()
            verdict, updates = gcra(wanted, self._tat, now, self.period)
            self._tat.update(updates)
            if len(self._tat) > self.max_keys:
                self._prune(now)
        return verdict

    def _prune(self, now: float) -> None:
        """Forget keys whose allowance is whole again (they behave exactly as unseen keys)."""
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
        if len(self._tat) > self.max_keys:  # a flood of distinct keys: drop the oldest half
            for key in sorted(self._tat, key=self._tat.__getitem__)[: len(self._tat) // 2]:
                del self._tat[key]

    def __len__(self) -> int:
        return len(self._tat)


class DatabaseRateLimiter(_Limits):
    """The same limits, counted in the database that several server processes share."""

    blocking = True
    PRUNE_EVERY = 500  # checks between deletes of rows whose allowance is whole again

    def __init__(
        self,
        engine: Engine,
        limits: dict[str, int],
        *,
        period: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(limits, period, clock)
        self.engine = engine
        self._checks = 0
        self._failing = False
        self._insert = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    def check(self, keys: Sequence[tuple[str, str]]) -> Verdict:
        wanted = wanted_keys(self.limits, keys)
        if not wanted:
            return Verdict(True)
        try:
            verdict = self._check(wanted)
        except SQLAlchemyError as exc:
            if not self._failing:  # one line per outage, not one per request
                log.warning("rate limits not counted, the database is unavailable: %s",
                            str(exc).splitlines()[0])
            self._failing = True
            return Verdict(True)
        if self._failing:
            log.warning("rate limits counted again")
            self._failing = False
        return verdict

    def _check(self, wanted: dict[str, int]) -> Verdict:
        ordered = sorted(wanted)  # one lock order for every node: no deadlock between them
        with Session(self.engine) as session, session.begin():
            # Insert-if-missing first: it takes SQLite's write lock before anything is read,
            # and gives PostgreSQL a row to lock for a key no node has seen yet.
            session.execute(
                self._insert(RateLimitRow)
                .values([{"key": key, "tat": 0.0} for key in ordered])
                .on_conflict_do_nothing(index_elements=["key"])
            )
            rows = session.scalars(
                select(RateLimitRow)
                .where(RateLimitRow.key.in_(ordered))
                .order_by(RateLimitRow.key)
                .with_for_update()
            ).all()
            now = self.clock()
            verdict, updates = gcra(wanted, {row.key: row.tat for row in rows}, now, self.period)
            for row in rows:
                if row.key in updates:
                    row.tat = updates[row.key]
        self._checks += 1
        if self._checks % self.PRUNE_EVERY == 0:
            # Apart from the check, so it never waits on rows while holding this request's.
            # A row whose tat has passed behaves exactly as a missing one.
            with Session(self.engine) as session, session.begin():
                session.execute(delete(RateLimitRow).where(RateLimitRow.tat <= now))
        return verdict

    def __len__(self) -> int:
        with Session(self.engine) as session:
            return len(session.scalars(select(RateLimitRow.key)).all())
