"""Background work a server repeats every few seconds or hours, in a daemon thread."""

from __future__ import annotations

import logging
import threading


class PeriodicJob:
    """Calls ``tick`` every ``interval`` seconds (first at start with ``run_at_start``) until
    ``stop``. A tick that raises is logged and the next one tries again: the server goes on."""

    thread_name = "periodic"
    run_at_start = False
    failure = "a periodic job failed"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enabled(self) -> bool:
        return self.interval > 0

    def tick(self) -> object:
        raise NotImplementedError

    def _tick_logged(self) -> None:
        try:
            self.tick()
        except Exception:
            logging.getLogger(type(self).__module__).exception(self.failure)

    def _loop(self) -> None:
        if self.run_at_start:
            self._tick_logged()
        while not self._stop.wait(self.interval):
            self._tick_logged()

    def start(self) -> None:
        if not self.enabled() or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
