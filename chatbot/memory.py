"""Keep the server's resident memory flat under concurrent turns.

glibc gives each thread that allocates its own malloc arena (up to eight per core), and freed
memory in an arena rarely goes back to the system. The server's worker threads each touch
megabytes per turn (tokenised prompts, attention buffers), so with dozens of threads the RSS
creeps up by hundreds of MiB under load although nothing is kept. Two arenas, as the
``MALLOC_ARENA_MAX=2`` setting many Python servers run with, keep it flat; an explicit
``MALLOC_ARENA_MAX`` in the environment wins.

Within those arenas, glibc raises its mmap threshold each time a large block is freed (up to
32 MiB), so after the first few prompts even the biggest buffers of a prompt's forward pass
come from the heap, and heap pages between live blocks stay resident. A fixed threshold of
4 MiB keeps those buffers in their own mappings, which go back to the system when freed, while
the small per-token buffers of decoding stay on the heap (a 128 KiB threshold, mapping those
too, made turns a third slower). A periodic ``malloc_trim`` returns the free pages left
between live heap blocks. Measured with ``bench/load_test.py`` (50 customers, 5 minutes), the
two together end the run at 1.46 GiB where it reached 1.8 GiB. (A peak of 2.6 GiB while the
first 50 turns arrived at once was not the allocator: each of them loaded its own copy of the
language detector's model, see ``chatbot.dialogue.language``.) An explicit
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

from chatbot.periodic import PeriodicJob

# from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
LARGE_BLOCK = 4 * 1024 * 1024
# Compiled oneDNN kernels kept: a prompt's 5 layer shapes, a draft's, a few query lengths.
ONEDNN_PRIMITIVES = 64


@functools.cache  # find_library runs ldconfig; the trim job asks every few seconds
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _mallopt(option: int, value: int) -> bool:
    mallopt = getattr(_libc(), "mallopt", None)  # musl, macOS: no mallopt
    return bool(mallopt(option, value)) if mallopt is not None else False


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for threads started from now on; False where not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    return _mallopt(M_ARENA_MAX, arenas)


def map_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Serve blocks from ``threshold`` bytes up with their own mappings, and trim the heap's
    top above it; False where not glibc or where the environment sets either."""
    if {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & os.environ.keys():
        return False
    # Setting either one also turns off glibc's dynamic threshold.
    return _mallopt(M_MMAP_THRESHOLD, threshold) and _mallopt(M_TRIM_THRESHOLD, threshold)


def limit_onednn_primitive_cache(capacity: int = ONEDNN_PRIMITIVES) -> bool:
    """Keep at most ``capacity`` compiled oneDNN kernels; before torch's first oneDNN op.

    oneDNN caches a kernel for every input shape a bfloat16 layer has seen, 1,024 by default,
    and prompts come in every length: reading 150 prompts of distinct lengths left the
    bundled model's process 270 MiB larger (1,322 against 1,050 MiB with 16 kept), with no
    faster reads. False where the environment sets the capacity itself."""
    if {"ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY"} & os.environ.keys():
        return False
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(capacity)
    return True


def release_free_memory() -> None:
    """Return freed heap pages to the system (after loading models), where glibc allows it."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is not None:
        malloc_trim(0)


class MemoryTrim(PeriodicJob):
    """Gives freed heap pages back to the system every ``interval`` seconds while serving."""

    thread_name = "memory-trim"
    failure = "trimming the heap failed"

    def tick(self) -> None:
        release_free_memory()
