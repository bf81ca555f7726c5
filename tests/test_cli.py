"""The installed ``chatbot`` command, run as a user runs it (a subprocess per call)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from helpers import CARE_GUIDE, CHATBOT_BIN, TINY_FAQ, assert_user_error, run_cli

from chatbot.conversations import ConversationStore
from chatbot.db import alembic_config, make_engine
from knowledge.formats import read_files
from knowledge.store import KnowledgeStore

ASK_KEYS = {"conversation_id", "decision", "text", "sources", "grounded", "latency_ms"}


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Path:
    """A data dir with the tiny KB imported through the CLI (shared by this module's tests)."""
    data = tmp_path_factory.mktemp("cli") / "data"
    proc = run_cli("kb", "import", str(TINY_FAQ), str(CARE_GUIDE), data=data)
    assert proc.returncode == 0, proc.stderr
    assert "Imported 10 record(s) from 2 file(s): 10 new" in proc.stdout
    assert "Published knowledge-base version 1" in proc.stdout
    assert "Traceback" not in proc.stderr
    return data


def store(data: Path) -> KnowledgeStore:
    return KnowledgeStore(make_engine(f"sqlite:///{data / 'chatbot.db'}"))


def test_entry_point_is_installed():
    assert CHATBOT_BIN.is_file()


@pytest.mark.parametrize(
    "command",
    [[str(CHATBOT_BIN), "--help"], [sys.executable, "-m", "chatbot", "--help"]],
    ids=["chatbot", "python -m chatbot"],
)
def test_help_lists_the_commands(command, tmp_path):
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("serve", "ask", "kb", "index", "db", "eval"):
        assert name in proc.stdout
    assert not (tmp_path / "data").exists(), "--help must not create a data dir"


def test_kb_list_json_prints_entries_in_jsonl_shape(live):
    proc = run_cli("kb", "list", "--json", data=live)
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert isinstance(entries, list)
    expected = [r.to_dict() for r in read_files([TINY_FAQ])]
    assert sorted(entries, key=lambda e: e["id"]) == sorted(expected, key=lambda e: e["id"])
    for entry in entries:
        assert {"id", "question", "answer", "paraphrases", "tags"} <= set(entry)


def test_ask_json_prints_the_contract_object_and_conversation_continues(live):
    first = run_cli("ask", "How long does shipping take?", "--json", "--retrieval-only", data=live)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    result = json.loads(first.stdout)
    assert set(result) == ASK_KEYS
    assert isinstance(result["conversation_id"], str) and result["conversation_id"]
    assert result["decision"] == "answer"
    assert "2 to 4 business days" in result["text"]
    assert result["grounded"] is None  # no language model ran
    assert isinstance(result["latency_ms"], float) and result["latency_ms"] >= 0
    assert result["sources"], "an answer names its sources"
    for source in result["sources"]:
        assert set(source) == {"id", "title", "score"}
        assert isinstance(source["score"], float) and 0 <= source["score"] <= 1
    scores = [s["score"] for s in result["sources"]]
    assert scores == sorted(scores, reverse=True)
    assert result["sources"][0] == {
        "id": "delivery-time",
        "title": "How long does delivery take?",
        "score": result["sources"][0]["score"],
    }

    cid = result["conversation_id"]
    second = run_cli(
        "ask", "and to Canada?", "--conversation", cid, "--json", "--retrieval-only", data=live
    )
    assert second.returncode == 0, second.stderr
    followup = json.loads(second.stdout)
    assert followup["conversation_id"] == cid
    assert followup["sources"][0]["id"] == "delivery-canada"
    messages = ConversationStore(make_engine(f"sqlite:///{live / 'chatbot.db'}")).messages(cid)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]


def test_bad_import_file_exits_2_and_changes_nothing(live, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "new-one", "question": "Q?", "answer": "A."}\n{"id": "x"}\n')
    proc = run_cli("kb", "import", str(TINY_FAQ), str(bad), data=live)
    assert_user_error(proc, "bad.jsonl, line 2", "'question'")
    assert proc.stdout == ""
    kb = store(live)
    assert kb.current_version() == 1
    assert "new-one" not in {r.id for r in kb.drafts()}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["kb", "import"], "Missing argument"),
        (["kb", "import", "notes.pdf"], "unsupported file type '.pdf'"),
        (["kb", "import", "missing.jsonl"], "missing.jsonl: no such file"),
        (["no-such-command"], "No such command"),
        (["ask"], "Missing argument"),
        (["ask", "hello", "--bogus"], "No such option"),
        (["ask", "hello", "--retrieval-only", "--temperature", "9"], "temperature must be"),
    ],
)
def test_bad_usage_exits_2_with_a_message(args, needle, tmp_path):
    proc = run_cli(*args, data=tmp_path / "data", cwd=tmp_path)
    assert_user_error(proc, needle)


def test_invalid_setting_exits_2_naming_it(tmp_path):
    env_proc = subprocess.run(
        [str(CHATBOT_BIN), "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "CHATBOT_DATA_DIR": str(tmp_path / "d"),
             "CHATBOT_PORT": "not-a-port"},
    )
    assert_user_error(env_proc, "CHATBOT_PORT")


def test_db_upgrade_on_a_fresh_dir(tmp_path):
    data = tmp_path / "fresh"
    proc = run_cli("db", "upgrade", data=data)
    assert proc.returncode == 0, proc.stderr
    head = ScriptDirectory.from_config(alembic_config(make_engine("sqlite://"))).get_current_head()
    assert f"Database at revision {head}." in proc.stdout
    assert (data / "chatbot.db").is_file()
    again = run_cli("db", "upgrade", data=data)
    assert again.returncode == 0 and head in again.stdout


def test_index_rebuild_reuses_cached_embeddings(live):
    proc = run_cli("index", "rebuild", data=live)
    assert proc.returncode == 0, proc.stderr
    assert "Indexed 11 item(s) of knowledge-base version 1 (0 newly embedded)" in proc.stdout
    assert (live / "index" / "meta.json").is_file()


def test_kb_export_writes_every_record(live, tmp_path):
    out = tmp_path / "export.jsonl"
    proc = run_cli("kb", "export", str(out), data=live)
    assert proc.returncode == 0, proc.stderr
    assert "Wrote 10 record(s)" in proc.stdout
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 10
    assert {"kind": "document", "id": "care-guide"}.items() <= next(
        line for line in lines if line["id"] == "care-guide"
    ).items()
    assert [r.to_dict() for r in read_files([out])] == [r.to_dict() for r in store(live).published()]


def test_kb_export_into_a_missing_folder_exits_2(live, tmp_path):
    proc = run_cli("kb", "export", str(tmp_path / "nowhere" / "kb.jsonl"), data=live)
    assert_user_error(proc, "does not exist")
