"""A first-come, first-served turn at the model, with a bounded wait.

One generation runs at a time per model on a CPU (two generations at once only split the same
cores and finish later). ``threading.Lock`` wakes waiters in no particular order, so under load
one customer could wait behind many later ones; ``FairQueue`` serves them in arrival order,
and a turn that would wait longer than ``timeout`` seconds gives up with ``ModelBusy`` (the
service then answers from the knowledge base) instead of leaving the customer waiting. Under
overload it does not even wait that long: from the recent time each answer held the model, a
turn that can see its wait would pass ``timeout`` gives up at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from chatbot.errors import ModelUnavailable


class ModelBusy(ModelUnavailable):
    """The model was busy with other customers' answers for longer than the queue allows."""


class FairQueue:
    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._busy = False
        self.hold_seconds: float | None = None  # moving average of how long a turn holds it

    def expected_wait(self) -> float:
        """Seconds a turn arriving now would wait, from the recent hold times."""
        ahead = len(self._waiting) + self._busy
        return ahead * (self.hold_seconds or 0.0)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextmanager
    def turn(self) -> Iterator[None]:
        ticket = object()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self._cond:
            if self.timeout is not None and self.expected_wait() > self.timeout:
                raise ModelBusy(
                    f"The language model is busy: about {self.expected_wait():.0f} s of "
                    f"answers ahead ({len(self._waiting) + self._busy}), over {self.timeout:g} s."
                )
            self._waiting.append(ticket)
            try:
                while self._busy or self._waiting[0] is not ticket:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise ModelBusy(
                            f"The language model stayed busy for {self.timeout:g} s "
                            f"({len(self._waiting) - 1} answers ahead)."
                        )
                    self._cond.wait(left)
            except BaseException:
                self._waiting.remove(ticket)
                self._cond.notify_all()  # the next in line may now be first
                raise
            self._waiting.popleft()
            self._busy = True
        started = time.monotonic()
        try:
            yield
        finally:
            held = time.monotonic() - started
            with self._cond:
                self.hold_seconds = held if self.hold_seconds is None else (
                    0.8 * self.hold_seconds + 0.2 * held)
                self._busy = False
                self._cond.notify_all()
