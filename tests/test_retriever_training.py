"""``chatbot train --retriever``: the split, hard negatives, and a few real training steps that
write a model folder the index is rebuilt with."""

from __future__ import annotations

import json

import pytest
from helpers import TINY_FAQ, assert_user_error, run_cli

from chatbot.errors import InvalidInput
from chatbot.training.retriever import hard_negatives, nearest_accuracy, split_entries
from knowledge.records import Entry

ENTRIES = [
    Entry("delivery", "How long does delivery take?", "Delivery takes 2 to 4 days. Tracked.",
          ("when will my parcel arrive", "shipping time?", "how many days for delivery")),
    Entry("returns", "How do I return an item?", "Use the returns portal within 30 days.",
          ("send something back", "return process", "can I give it back")),
    Entry("password", "How do I reset my password?", "Click Forgot password.",
          ("forgot my password",)),
]


def test_split_holds_out_paraphrases_and_trains_on_the_rest():
    split = split_entries(ENTRIES, 0.34)
    held = {(text, eid) for text, eid in split.heldout}
    assert {eid for _, eid in held} == {"delivery", "returns"}  # one paraphrase: nothing held
    for text, eid in held:
        assert (text, eid) not in split.train and text not in split.kept[eid]
    anchors = {text for text, _ in split.train}
    assert "Delivery takes 2 to 4 days." in anchors  # the answer's first sentence
    assert "forgot my password" in anchors
    assert split_entries(ENTRIES, 0.34) == split  # reproducible
    assert split_entries(ENTRIES, 0.0).heldout == []


def test_a_kb_of_one_entry_cannot_train():
    with pytest.raises(InvalidInput, match="at least two FAQ entries"):
        split_entries(ENTRIES[:1], 0.2)


def test_hard_negatives_are_other_entries_questions(embedder):
    split = split_entries(ENTRIES, 0.0)
    negatives = hard_negatives(embedder._model, split)
    questions = {e.id: e.question for e in ENTRIES}
    for (anchor, eid), negative in zip(split.train, negatives, strict=True):
        assert negative in questions.values() and negative != questions[eid], anchor
    assert nearest_accuracy(embedder._model, split_entries(ENTRIES, 0.34)) is not None


def test_a_few_real_steps_write_a_model_the_index_is_rebuilt_with(tmp_path):
    data = tmp_path / "data"
    assert run_cli("kb", "import", str(TINY_FAQ), data=data).returncode == 0
    out = tmp_path / "retriever"
    proc = run_cli("train", "--retriever", "--max-steps", "2", "--batch-size", "4",
                   "--output", str(out), "--json", data=data, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["steps"] == 2 and report["heldout_paraphrases"] >= 1
    assert 0.0 <= report["heldout_top1_before"] <= 1.0
    assert 0.0 <= report["heldout_top1_after"] <= 1.0
    assert report["index_rebuilt"]["model"] == str(out)
    assert (out / "training_report.json").is_file()
    meta = json.loads((data / "index" / "meta.json").read_text())
    assert meta["model"] == str(out)

    # The folder serves (CHATBOT_EMBEDDING_MODEL=DIR): the rebuilt index is used as it is.
    from chatbot.services import build_services
    from chatbot.settings import Settings

    services = build_services(Settings(data_dir=data, demo_kb=False, embedding_model=str(out)),
                              load_generator=False)
    try:
        reply = services.chat.send_message(services.chat.start_conversation(),
                                           "How long does delivery take?")
        assert reply.sources[0]["id"] == "delivery-time"
        # Nothing re-embedded: the index was ready for the tuned model.
        assert getattr(services.embedder, "last_embedded", 0) == 0
    finally:
        services.engine.dispose()


def test_answer_model_options_are_refused_with_the_retriever(tmp_path):
    proc = run_cli("train", "--retriever", "--lora", data=tmp_path / "data")
    assert_user_error(proc, "--retriever")
