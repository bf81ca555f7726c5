"""Waiting for a Gradio page to be quiet before the next click.

Gradio's browser client reads the results of a session's events from one event stream
(``/queue/data``), which the server closes as soon as no event of the session is pending. An
event submitted in the few milliseconds between the server deciding to close and the client
reading ``close_stream`` is registered on the closing stream: the server runs it, the result
waits in the session's queue, and the client never opens a stream to read it, so the page
spins until some other event reopens one (gradio 6.31; seen in CI as a publish that "never
finished" although it was stored in 0.1 s). A person does not click within milliseconds of a
tab finishing to load; a test does, so it waits until the stream is closed too, or has stayed
open and unchanged for a while with no progress shown: then no close is imminent (the server
keeps a stream open only while an event of the session is pending), and a new event is read
from that stream.
"""

from __future__ import annotations

import time
from typing import Any

QUEUE_STREAM = "/queue/data"
QUIET_S = 0.5  # an open stream unchanged this long is not about to close
NO_PROGRESS = "() => !document.querySelector('.wrap.default:not(.hide)')"


def track_streams(page: Any) -> None:
    """Count the page's open Gradio event streams in ``page.open_streams``."""
    page.open_streams = set()
    page.stream_log = []  # shown when settle() gives up
    page.stream_changed = time.monotonic()

    def opened(request: Any) -> None:
        if QUEUE_STREAM in request.url:
            page.open_streams.add(request)
            page.stream_changed = time.monotonic()
            page.stream_log.append(f"{page.stream_changed:.3f} opened {request.url}")

    def ended(request: Any) -> None:
        if request in page.open_streams:
            page.open_streams.discard(request)
            page.stream_changed = time.monotonic()
            page.stream_log.append(f"{page.stream_changed:.3f} ended {request.failure or 'ok'}")

    page.on("request", opened)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)


def settle(page: Any, timeout: float = 30.0) -> None:
    """Wait until no event of the page runs and none is about to be dropped: progress trackers
    hidden, and no event stream open or the open one quiet for ``QUIET_S`` seconds
    (``track_streams`` must have been called on the page)."""
    deadline = time.monotonic() + timeout
    while True:
        page.wait_for_function(NO_PROGRESS)
        if not page.open_streams:
            return
        if time.monotonic() - page.stream_changed >= QUIET_S and page.evaluate(NO_PROGRESS):
            return
        assert time.monotonic() < deadline, (
            f"a Gradio event stream kept changing for {timeout:.0f} s:\n"
            + "\n".join(page.stream_log))
        page.wait_for_timeout(20)  # lets Playwright deliver the request events
