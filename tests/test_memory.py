"""The server caps glibc's malloc arenas and maps large blocks (unless the environment says
otherwise)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

CALL = "from chatbot.memory import limit_malloc_arenas as f, release_free_memory as r; r(); print(f())"

# Frees an 8 MiB block, allocates another and says whether glibc mapped it (mallinfo2's hblks).
SECOND_BLOCK_MAPPED = """
import ctypes, sys
from chatbot.memory import map_large_blocks
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    assert map_large_blocks()
libc.free(libc.malloc(8 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(8 << 20)
print(libc.mallinfo2().hblks - before)
"""


def run(code: str, env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}


def test_arenas_are_capped_on_glibc_unless_the_environment_says_otherwise() -> None:
    env = clean_env()
    assert run(CALL, env) == "True"
    assert run(CALL, {**env, "MALLOC_ARENA_MAX": "4"}) == "False"


def test_a_freed_large_block_no_longer_moves_later_ones_onto_the_heap() -> None:
    env = clean_env()
    # glibc's own dynamic threshold: freeing the first block raises it past the second.
    assert run(SECOND_BLOCK_MAPPED, env, "dynamic") == "0"
    assert run(SECOND_BLOCK_MAPPED, env, "fixed") == "1"


@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_an_explicit_malloc_threshold_in_the_environment_wins(name: str) -> None:
    code = "from chatbot.memory import map_large_blocks as m; print(m())"
    assert run(code, clean_env()) == "True"
    assert run(code, {**clean_env(), name: "1048576"}) == "False"


# Fills 200 MiB of heap with small blocks, frees all but the last (which pins the heap's top,
# so only malloc_trim can give the pages back) and prints the RSS before and after a trim.
TRIMMED = """
import ctypes
from chatbot.memory import MemoryTrim
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmRSS:"))
    return int(line.split()[1]) // 1024
blocks = [libc.malloc(4096) for _ in range(50_000)]
for b in blocks:
    ctypes.memset(b, 1, 4096)
for b in blocks[:-1]:
    libc.free(b)
before = rss()
MemoryTrim(interval=60).tick()
print(before, rss())
"""


def test_the_periodic_trim_gives_freed_heap_pages_back() -> None:
    before, after = map(int, run(TRIMMED, clean_env()).split())
    assert before - after > 150, (before, after)


# Runs one bfloat16 layer over 300 input lengths and prints how much the RSS grew (MiB).
KERNELS_FOR_EVERY_LENGTH = """
import sys
import torch
from chatbot.memory import limit_onednn_primitive_cache, release_free_memory
if sys.argv[1] == "capped":
    assert limit_onednn_primitive_cache(16)
torch.set_num_threads(1)
weight = torch.ops.mkldnn._reorder_linear_weight(torch.randn(1536, 576).to(torch.bfloat16), None)
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
def layer(rows):
    x = torch.randn(rows, 576, dtype=torch.bfloat16)
    torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")
with torch.inference_mode():
    layer(8)
    release_free_memory()
    before = rss()
    for rows in range(100, 400):
        layer(rows)
release_free_memory()
print((rss() - before) // 1024)
"""


def test_the_onednn_kernel_cache_is_capped_unless_the_environment_sets_it(monkeypatch) -> None:
    from chatbot.memory import limit_onednn_primitive_cache

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.delenv("DNNL_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert limit_onednn_primitive_cache(32)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "32"
    assert not limit_onednn_primitive_cache(64)  # set now: the environment's value wins
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "32"


def test_a_capped_kernel_cache_stops_growing_with_every_prompt_length() -> None:
    from knowledge import packed_linear

    if not packed_linear.usable():
        pytest.skip("this torch build has no oneDNN bfloat16 weight packing")
    env = {k: v for k, v in clean_env().items() if "PRIMITIVE_CACHE" not in k}
    grown = int(run(KERNELS_FOR_EVERY_LENGTH, env, "default"))
    if grown < 50:
        pytest.skip(f"this CPU's oneDNN keeps little per kernel ({grown} MiB for 300)")
    assert int(run(KERNELS_FOR_EVERY_LENGTH, env, "capped")) < 0.6 * grown
