"""The README is a contract: settings, the quick start and the CI command must not drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatbot.settings import Settings, describe_settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"


def readme() -> str:
    if not README.is_file():
        pytest.fail("README.md is missing at the repository root")
    return README.read_text(encoding="utf-8")


def quick_start_blocks(text: str) -> list[str]:
    """Fenced code blocks of the section whose heading starts with 'Quick start'."""
    match = re.search(r"^(#+)\s+Quick start.*$", text, re.MULTILINE | re.IGNORECASE)
    assert match, "README has no heading starting with 'Quick start'"
    level = len(match.group(1))
    rest = text[match.end():]
    end = re.search(rf"^#{{1,{level}}}\s", rest, re.MULTILINE)
    section = rest[: end.start()] if end else rest
    return [b.strip() for b in re.findall(r"^```[^\n]*\n(.*?)^```", section, re.S | re.M)]


def command_lines(block: str) -> list[str]:
    lines = [line.strip() for line in block.splitlines()]
    return [line.removeprefix("$ ").strip() for line in lines if line and not line.startswith("#")]


def test_every_setting_has_a_default_and_a_one_line_description():
    rows = describe_settings()
    assert len(rows) == len(Settings.model_fields)
    for name, _default, description in rows:
        assert name.startswith("CHATBOT_") and name == name.upper()
        assert description and "\n" not in description, name


@pytest.mark.parametrize("name", [row[0] for row in describe_settings()])
def test_setting_is_documented_in_the_readme(name):
    assert re.search(rf"\b{name}\b", readme()), f"{name} is not in README.md"


def test_readme_has_a_quick_start_with_two_commands():
    blocks = quick_start_blocks(readme())
    assert len(blocks) >= 2, "Quick start needs two fenced blocks: set up and start; run tests"
    assert all(command_lines(b) for b in blocks[:2])


def test_ci_runs_the_readme_test_command():
    test_block = quick_start_blocks(readme())[1]
    assert CI_RUN.is_file(), ".ci/run is missing"
    ci = CI_RUN.read_text(encoding="utf-8")
    for line in command_lines(test_block):
        assert line in ci, f".ci/run does not run {line!r}"
