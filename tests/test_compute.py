"""Heavy torch work runs on one persistent compute thread; small work stays on one core."""

from __future__ import annotations

import threading

import torch

from knowledge import compute


def test_work_runs_on_one_persistent_thread_with_its_own_thread_count() -> None:
    seen = {compute.run(lambda: threading.get_ident()) for _ in range(3)}
    assert len(seen) == 1 and threading.get_ident() not in seen
    assert compute.run(compute.in_compute_thread) is True
    assert compute.in_compute_thread() is False
    assert compute.run(torch.get_num_threads) >= 1
    # Work submitted from the compute thread itself runs inline instead of deadlocking.
    assert compute.run(lambda: compute.run(lambda: 42)) == 42


def test_small_work_is_single_threaded_outside_the_compute_thread() -> None:
    box: list[int] = []

    def caller() -> None:
        compute.single_threaded()
        box.append(torch.get_num_threads())

    t = threading.Thread(target=caller)
    t.start()
    t.join()
    assert box == [1]


def test_a_thread_made_single_threaded_gets_all_its_cores_back(monkeypatch) -> None:
    """``chatbot train`` embeds queries to build its examples, then trains in the same thread:
    it used to train on one core."""
    monkeypatch.setattr(compute, "_threads", 3)
    box: list[int] = []

    def caller() -> None:
        compute.single_threaded()
        box.append(torch.get_num_threads())
        compute.all_cores()
        box.append(torch.get_num_threads())

    t = threading.Thread(target=caller)
    t.start()
    t.join()
    assert box == [1, 3]


def test_a_large_embedding_batch_goes_to_the_compute_thread(embedder, monkeypatch) -> None:
    where: list[bool] = []
    real = embedder._encode_here

    def spy(texts, show_progress=False):  # type: ignore[no-untyped-def]
        where.append(compute.in_compute_thread())
        return real(texts, show_progress)

    monkeypatch.setattr(embedder, "_encode_here", spy)
    embedder.embed_sentences(["one short text"])
    embedder.embed_sentences([f"text number {i}" for i in range(40)])
    assert where == [False, True]


def test_services_load_their_models_with_the_calling_thread_on_one_core(
    monkeypatch, data_dir
) -> None:
    """A thread that once ran torch kernels on two cores keeps an OpenMP team beside the
    compute thread's, and libgomp then stops spinning in both (an elementwise product on the
    compute thread went from 10 to 76 us): the models load with the caller on one core."""
    import chatbot.services as services
    from chatbot.settings import Settings

    seen: list[int] = []

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop before loading")

    monkeypatch.setattr(services, "Embedder", recording)
    errors: list[BaseException] = []

    def build() -> None:
        torch.set_num_threads(2)  # as the server's main thread starts: all the cores
        try:
            services.build_services(Settings(data_dir=data_dir), load_generator=False)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    assert [str(e) for e in errors] == ["stop before loading"]
    assert seen == [1]
