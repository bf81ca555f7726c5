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
