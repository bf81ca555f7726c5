"""Knowledge-base files: parsing, error messages, all-or-nothing import, revisions and versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import CARE_GUIDE, TINY_FAQ

from chatbot.cli import main
from chatbot.db import make_engine, upgrade
from chatbot.errors import InvalidInput
from knowledge.chunking import split_document
from knowledge.formats import read_files
from knowledge.records import Document, Entry
from knowledge.store import KnowledgeStore


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(*objs: dict) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def entry(entry_id: str, answer: str = "An answer.", **more) -> dict:
    return {"id": entry_id, "question": f"Question about {entry_id}?", "answer": answer, **more}


def store_for(data_dir: Path) -> KnowledgeStore:
    engine = make_engine(f"sqlite:///{data_dir / 'chatbot.db'}")
    upgrade(engine)
    return KnowledgeStore(engine)


@pytest.fixture
def cli(shared_embedding_model):
    """Invoke the real click command in-process (the data dir comes from the environment)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


# --- reading each format ---------------------------------------------------------------


def test_read_jsonl_entries():
    records = read_files([TINY_FAQ])
    assert len(records) == 9
    assert all(isinstance(r, Entry) for r in records)
    first = records[0]
    assert first.id == "delivery-time"
    assert first.question == "How long does delivery take?"
    assert "How long does shipping take?" in first.paraphrases
    assert first.tags == ("shipping",)


def test_read_jsonl_optional_fields_and_extras(tmp_path):
    path = write(
        tmp_path,
        "kb.jsonl",
        jsonl({"id": "a", "question": "Q?", "answer": "A."},
              {"id": 7, "question": "Q7?", "answer": "A7.", "url": "https://x.example/7"}),
    )
    a, seven = read_files([path])
    assert (a.paraphrases, a.tags) == ((), ())
    assert seven.id == "7"
    assert seven.to_dict()["url"] == "https://x.example/7"


def test_read_csv_with_lists_and_multiline_cells(tmp_path):
    path = write(
        tmp_path,
        "kb.csv",
        "id,question,answer,paraphrases,tags\n"
        'gift-cards,Do gift cards expire?,"Gift cards are valid\nfor 24 months.",'
        "do vouchers expire|how long is a gift card valid,payments|gifts\n"
        'klarna,Can I pay later?,"Yes, with Klarna.",,\n',
    )
    gift, klarna = read_files([path])
    assert gift.id == "gift-cards"
    assert gift.answer == "Gift cards are valid\nfor 24 months."
    assert gift.paraphrases == ("do vouchers expire", "how long is a gift card valid")
    assert gift.tags == ("payments", "gifts")
    assert (klarna.answer, klarna.paraphrases, klarna.tags) == ("Yes, with Klarna.", (), ())


def test_read_markdown_document_and_passage_ids():
    (doc,) = read_files([CARE_GUIDE])
    assert isinstance(doc, Document)
    assert (doc.id, doc.title, doc.format) == ("care-guide", "Care guide", "md")
    passages = split_document(doc)
    assert [p.id for p in passages] == ["care-guide#1", "care-guide#2"]
    assert "30 degrees" in passages[0].text
    assert "Washing waterproof jackets" in passages[0].title


def test_read_text_document(tmp_path):
    path = write(tmp_path, "opening_hours.txt", "We are open from 9 to 5.\n\nClosed on Sundays.\n")
    (doc,) = read_files([path])
    assert (doc.id, doc.format) == ("opening_hours", "txt")
    assert doc.title == "Opening hours"
    assert "Closed on Sundays." in doc.text


def test_read_html_document(tmp_path):
    path = write(
        tmp_path,
        "warranty.html",
        "<html><head><title>Warranty terms</title><style>p{color:red}</style></head><body>"
        "<script>alert('x')</script><h1>Warranty terms</h1><h2>Length</h2>"
        "<p>Every tent has a 2-year warranty.</p><h2>Claims</h2><p>Email us a photo.</p>"
        "</body></html>",
    )
    (doc,) = read_files([path])
    assert (doc.id, doc.title, doc.format) == ("warranty", "Warranty terms", "html")
    assert "alert" not in doc.text and "color" not in doc.text
    passages = split_document(doc)
    assert [p.id for p in passages] == ["warranty#1", "warranty#2"]
    assert "2-year warranty" in passages[0].text


def test_jsonl_round_trips_documents(tmp_path):
    path = write(
        tmp_path,
        "docs.jsonl",
        jsonl({"id": "guide", "kind": "document", "title": "Guide", "text": "# Guide\n\nBody."}),
    )
    (doc,) = read_files([path])
    assert isinstance(doc, Document)
    assert doc.to_dict() == {
        "id": "guide", "kind": "document", "title": "Guide", "text": "# Guide\n\nBody.",
        "format": "md",
    }


# --- errors name file, line and problem ------------------------------------------------


BAD_FILES = {
    "missing-field": (
        "bad.jsonl",
        jsonl(entry("a"), {"id": "b", "question": "Q?"}),
        ["bad.jsonl", "line 2", "'answer'", "missing"],
    ),
    "bad-json": (
        "bad.jsonl",
        jsonl(entry("a"), entry("b")) + '{"id": "c", "question": "Q?",\n',
        ["bad.jsonl", "line 3", "not valid JSON"],
    ),
    "not-an-object": ("bad.jsonl", '["a", "b"]\n', ["bad.jsonl", "line 1", "JSON object"]),
    "wrong-type": (
        "bad.jsonl",
        jsonl(entry("a", tags=[1, 2])),
        ["bad.jsonl", "line 1", "'tags'"],
    ),
    "empty-answer": (
        "bad.jsonl",
        jsonl(entry("a"), entry("b"), entry("c", answer="   ")),
        ["bad.jsonl", "line 3", "'answer'", "empty"],
    ),
    "not-utf8": (
        "bad.jsonl",
        jsonl(entry("a")).encode() + '{"id": "b", "question": "Caf\u00e9?", "answer": "A."}\n'
        .encode("latin-1"),
        ["bad.jsonl", "line 2", "UTF-8"],
    ),
    "csv-missing-column": (
        "bad.csv",
        "id,question\nx,What?\n",
        ["bad.csv", "line 1", "answer"],
    ),
    "csv-bad-row-after-multiline-cell": (
        "bad.csv",
        'id,question,answer\na,Q?,"two\nlines"\nb,Q2?,\n',
        ["bad.csv", "line 4", "'answer'"],
    ),
    "unsupported-extension": ("kb.pdf", "whatever", ["kb.pdf", "unsupported", ".pdf"]),
    "no-entries": ("empty.jsonl", "\n\n", ["empty.jsonl", "no entries"]),
    "empty-document": ("blank.md", "   \n", ["blank.md", "empty"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_file_error_names_file_line_and_problem(tmp_path, case):
    name, content, needles = BAD_FILES[case]
    path = write(tmp_path, name, content)
    with pytest.raises(InvalidInput) as info:
        read_files([path])
    for needle in needles:
        assert needle in info.value.message, (needle, info.value.message)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InvalidInput, match="nowhere.jsonl: no such file"):
        read_files([tmp_path / "nowhere.jsonl"])


def test_duplicate_id_across_files_names_both_places(tmp_path):
    first = write(tmp_path, "first.jsonl", jsonl(entry("a"), entry("shared")))
    second = write(tmp_path, "second.jsonl", jsonl(entry("b"), entry("c"), entry("shared")))
    with pytest.raises(InvalidInput) as info:
        read_files([first, second])
    message = info.value.message
    assert "'shared'" in message
    assert "second.jsonl, line 3" in message
    assert "first.jsonl, line 2" in message


# --- through the CLI: all-or-nothing, revisions, versions, export ------------------------


def test_import_is_all_or_nothing(cli, tmp_path, data_dir):
    good = write(tmp_path, "good.jsonl", jsonl(entry("a"), entry("b")))
    assert cli("kb", "import", good).exit_code == 0
    store = store_for(data_dir)
    before = [r.to_dict() for r in store.published()]
    version = store.current_version()

    more = write(tmp_path, "more.jsonl", jsonl(entry("a", answer="Changed."), entry("c")))
    bad = write(tmp_path, "bad.jsonl", jsonl(entry("d")) + '{"id": "e"}\n')
    result = cli("kb", "import", more, bad)

    assert result.exit_code == 2
    assert "bad.jsonl, line 2" in result.stderr and "'question'" in result.stderr
    assert "Traceback" not in result.stderr
    assert store.current_version() == version
    assert [r.to_dict() for r in store.published()] == before
    assert [r.id for r in store.drafts()] == ["a", "b"]
    assert len(store.history("a")) == 1


def test_reimport_creates_revisions_only_for_changes(cli, tmp_path, data_dir):
    v1 = write(tmp_path, "v1.jsonl", jsonl(entry("a"), entry("b")))
    assert cli("kb", "import", v1).exit_code == 0
    v2 = write(tmp_path, "v2.jsonl", jsonl(entry("a", answer="A better answer."), entry("b")))
    result = cli("kb", "import", v2)
    assert result.exit_code == 0, result.stderr
    assert "1 updated" in result.stdout and "1 unchanged" in result.stdout

    store = store_for(data_dir)
    history = store.history("a")
    assert [(h["revision"], h["action"]) for h in history] == [(1, "create"), (2, "update")]
    assert history[-1]["data"]["answer"] == "A better answer."
    assert [h["revision"] for h in store.history("b")] == [1]
    assert store.get("a").answer == "A better answer."


def test_unchanged_records_create_no_revision(data_dir, tiny_records):
    store = store_for(data_dir)
    first, _ = store.save(tiny_records, publish=True)
    again, _ = store.save(tiny_records, publish=True)
    assert first.created == len(tiny_records)
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(tiny_records))
    assert all(len(store.history(r.id)) == 1 for r in tiny_records)


def test_versions_increase_with_each_import(cli, tmp_path, data_dir):
    path = write(tmp_path, "kb.jsonl", jsonl(entry("a")))
    store = store_for(data_dir)
    seen = []
    for answer in ("One.", "Two.", "Two."):
        path.write_text(jsonl(entry("a", answer=answer)), encoding="utf-8")
        assert cli("kb", "import", path).exit_code == 0
        seen.append(store.current_version())
    assert seen == [1, 2, 3]
    assert [v.version for v in store.versions()] == [3, 2, 1]
    assert store.published(1)[0].answer == "One."
    assert store.published(3)[0].answer == "Two."


def test_export_then_import_into_empty_data_dir_reproduces_entries(
    cli, tmp_path, data_dir, monkeypatch
):
    extra = write(tmp_path, "extra.jsonl", jsonl(entry("with-extra", url="https://x.example")))
    assert cli("kb", "import", TINY_FAQ, CARE_GUIDE, extra).exit_code == 0
    exported = tmp_path / "export.jsonl"
    result = cli("kb", "export", exported)
    assert result.exit_code == 0, result.stderr
    original = [r.to_dict() for r in store_for(data_dir).published()]
    assert len(original) == 11

    fresh = tmp_path / "fresh"
    monkeypatch.setenv("CHATBOT_DATA_DIR", str(fresh))
    assert cli("kb", "import", exported).exit_code == 0
    assert [r.to_dict() for r in store_for(fresh).published()] == original


def test_replace_removes_other_entries(cli, tmp_path, data_dir):
    assert cli("kb", "import", TINY_FAQ, CARE_GUIDE).exit_code == 0
    only = write(tmp_path, "only.jsonl", jsonl(entry("payment-methods", answer="Cards only.")))
    result = cli("kb", "import", "--replace", only)
    assert result.exit_code == 0, result.stderr
    assert "9 removed" in result.stdout

    store = store_for(data_dir)
    assert [r.id for r in store.published()] == ["payment-methods"]
    assert store.history("care-guide")[-1]["action"] == "delete"
    # The earlier version is still intact.
    assert len(store.published(1)) == 10
