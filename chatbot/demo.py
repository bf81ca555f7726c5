"""The built-in demo knowledge base (a fictional outdoor shop), imported into an empty KB."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import knowledge
from knowledge.errors import Conflict

if TYPE_CHECKING:
    from chatbot.services import Services

DEMO_DIR = Path(knowledge.__file__).parent / "demo"


def demo_files() -> list[Path]:
    return sorted(p for p in DEMO_DIR.iterdir() if p.suffix in (".jsonl", ".md"))


def ensure_demo_kb(services: Services) -> bool:
    """Import the demo KB when the setting allows it and nothing was ever published."""
    from knowledge.formats import read_files

    if not services.settings.demo_kb or services.knowledge.current_version() > 0:
        return False
    try:
        services.knowledge.save(read_files(demo_files()), publish=True, note="demo knowledge base")
    except Conflict:  # another server sharing the database imported it at the same moment
        return False
    return True
