"""The server caps glibc's malloc arenas (unless the environment already does)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CALL = "from chatbot.memory import limit_malloc_arenas as f, release_free_memory as r; r(); print(f())"


def run(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", CALL], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_arenas_are_capped_on_glibc_unless_the_environment_says_otherwise() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert run(env) == "True"
    assert run({**env, "MALLOC_ARENA_MAX": "4"}) == "False"
