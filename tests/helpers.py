"""Paths of the test fixtures and helpers to run the installed ``chatbot`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
TINY_FAQ = FIXTURES / "shop_faq.jsonl"
CARE_GUIDE = FIXTURES / "care-guide.md"
TINY_KB_FILES = (TINY_FAQ, CARE_GUIDE)
QUERIES = FIXTURES / "queries.jsonl"

CHATBOT_BIN = Path(sys.executable).parent / "chatbot"


def run_cli(
    *args: str,
    data: Path,
    input: str | None = None,
    timeout: float = 240,
    cwd: Path | None = None,
    database_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``chatbot`` entry point as a user would (``database_url``: as
    ``CHATBOT_DATABASE_URL``; a SQLite one is the data dir's default file anyway)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(CHATBOT_DATA_DIR=str(data), CHATBOT_DEMO_KB="false")
    if database_url:
        env["CHATBOT_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(CHATBOT_BIN), *args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=timeout,
        cwd=cwd,
    )


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit status 2, a message on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip(), "the error message belongs on stderr"
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
