"""Keep the server's resident memory flat under concurrent turns.

glibc gives each thread that allocates its own malloc arena (up to eight per core), and freed
memory in an arena rarely goes back to the system. The server's worker threads each touch
megabytes per turn (tokenised prompts, attention buffers), so with dozens of threads the RSS
creeps up by hundreds of MiB under load although nothing is kept. Two arenas, as the
``MALLOC_ARENA_MAX=2`` setting many Python servers run with, keep it flat; an explicit
``MALLOC_ARENA_MAX`` in the environment wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # from glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for threads started from now on; False where not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = getattr(_libc(), "mallopt", None)  # musl, macOS: no mallopt
    return bool(mallopt(M_ARENA_MAX, arenas)) if mallopt is not None else False


def release_free_memory() -> None:
    """Return freed heap pages to the system (after loading models), where glibc allows it."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is not None:
        malloc_trim(0)
