"""The model's queue: customers are served in arrival order, and a turn that would wait too
long gives up with ModelBusy instead of hanging."""

from __future__ import annotations

import threading
import time

import pytest

from chatbot.errors import ModelUnavailable
from chatbot.generation.queue import FairQueue, ModelBusy


def test_waiters_are_served_in_arrival_order() -> None:
    queue = FairQueue()
    served: list[int] = []
    release = threading.Event()

    def holder() -> None:
        with queue.turn():
            release.wait(5)

    def customer(i: int) -> None:
        with queue.turn():
            served.append(i)

    first = threading.Thread(target=holder)
    first.start()
    while queue.waiting or not queue._busy:  # the holder has the model
        time.sleep(0.001)
    threads = []
    for i in range(8):
        t = threading.Thread(target=customer, args=(i,))
        t.start()
        threads.append(t)
        while queue.waiting < i + 1:  # arrival order is the order they queued in
            time.sleep(0.001)
    release.set()
    for t in [first, *threads]:
        t.join(5)
    assert served == list(range(8))


def test_a_turn_that_waits_too_long_gives_up_and_leaves_the_queue() -> None:
    queue = FairQueue(timeout=0.2)
    release = threading.Event()
    def hold() -> None:
        with queue.turn():
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    while not queue._busy:
        time.sleep(0.001)
    started = time.monotonic()
    with pytest.raises(ModelBusy, match="busy for 0.2 s") as info:
        with queue.turn():
            pass
    assert 0.15 < time.monotonic() - started < 2
    assert isinstance(info.value, ModelUnavailable)  # the service's fallback path catches it
    assert queue.waiting == 0
    release.set()
    holder.join(5)
    with queue.turn():  # the model is free again
        pass


def test_an_error_inside_a_turn_frees_the_model() -> None:
    queue = FairQueue(timeout=1)
    with pytest.raises(RuntimeError), queue.turn():
        raise RuntimeError("generation failed")
    with queue.turn():
        pass


def test_under_overload_a_turn_gives_up_at_once_from_the_recent_hold_times() -> None:
    queue = FairQueue(timeout=1.0)
    with queue.turn():
        time.sleep(0.3)
    assert queue.hold_seconds is not None and queue.hold_seconds >= 0.25
    queue.hold_seconds = 0.6  # as if answers lately held the model 0.6 s each
    release = threading.Event()
    entered: list[bool] = []

    def hold() -> None:
        with queue.turn():
            entered.append(True)
            release.wait(5)

    def wait_in_line() -> None:
        with queue.turn():
            pass

    holder = threading.Thread(target=hold)
    holder.start()
    while not entered:
        time.sleep(0.001)
    second = threading.Thread(target=wait_in_line)  # 0.6 s ahead of it: it may wait
    second.start()
    while queue.waiting < 1:
        time.sleep(0.001)
    assert queue.expected_wait() == pytest.approx(1.2)
    started = time.monotonic()
    with pytest.raises(ModelBusy, match="about 1 s of answers ahead"):
        with queue.turn():
            pass
    assert time.monotonic() - started < 0.1  # it did not wait for the timeout
    release.set()
    holder.join(5)
    second.join(5)
