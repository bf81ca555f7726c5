"""Where torch runs on the CPU: one long-lived thread for the heavy work, one core elsewhere.

PyTorch's CPU kernels split work over an OpenMP team that belongs to the calling thread. When a
second thread also runs multi-threaded kernels, it gets a team of its own, the process then
holds more OpenMP threads than the machine has cores, and libgomp switches every team to
near-zero spinning: each of the ~400 parallel regions of one decoding step then waits on a
sleeping thread. On a 2-core machine that made a generation step 1.6x slower (48 ms -> 80 ms
per token with SmolLM2-135M, ``bench/turn_latency.py``) merely because the main thread had
embedded the knowledge base at start.

So the heavy work (generating answers, embedding batches for an index) runs on one
persistent thread, ``compute``, with all the cores; everything else (a query's embedding, a
grounding check: a few short texts) runs where it is called, on one core, in a thread that
never starts a team.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_compute_thread: threading.Thread | None = None
_threads = 0  # 0: torch's own choice (the number of cores)


def configure(threads: int) -> None:
    """Threads for the compute thread (0: torch's default); before its first use."""
    global _threads
    _threads = threads


def _start() -> None:
    global _compute_thread
    import torch

    torch.set_num_threads(_threads or _default_threads())
    _compute_thread = threading.current_thread()


def _default_threads() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later)."""
    try:
        import torch

        return bool(torch.cpu._is_amx_tile_supported())  # private, hence the guard
    except Exception:
        return False


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware: AMX, or AVX512-BF16 (AMD Zen 4 and
    later, Intel Cooper Lake). Elsewhere torch emulates bfloat16 and it is slower than float32."""
    if amx():
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return any(
                line.startswith("flags") and "avx512_bf16" in line.split() for line in info
            )
    except OSError:
        return False


def executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="torch-compute", initializer=_start)
        return _executor


def in_compute_thread() -> bool:
    return _compute_thread is not None and threading.current_thread() is _compute_thread


def submit(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Run ``fn`` on the compute thread, after the work already queued there."""
    return executor().submit(fn, *args, **kwargs)


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args)`` on the compute thread, waiting for it (inline if already there)."""
    if in_compute_thread():
        return fn(*args, **kwargs)
    return submit(fn, *args, **kwargs).result()


def all_cores() -> None:
    """Give this thread's torch kernels all the compute thread's cores again. For a command whose
    heavy work runs in the main thread (training) after a query embedding there made it
    single-threaded: training on one of two cores took twice as long."""
    if in_compute_thread():
        return
    import torch

    torch.set_num_threads(_threads or _default_threads())


def single_threaded() -> None:
    """Keep this thread's torch kernels on one core (never in the compute thread)."""
    if in_compute_thread():
        return
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
