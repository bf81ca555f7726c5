"""The demo shop's multi-turn dialogues (``bench/data/demo_dialogues.jsonl``, written before
anything was tuned on them) pass through the serving pipeline: questions about the product
named earlier by the customer or the bot, "the other one", no product in focus, requests to
act, and general questions in between."""

from __future__ import annotations

from pathlib import Path

from chatbot.demo import demo_files
from chatbot.evaluation import run_eval
from chatbot.settings import Settings

DIALOGUES = Path(__file__).resolve().parent.parent / "bench" / "data" / "demo_dialogues.jsonl"


def test_every_demo_dialogue_is_handled_right(tmp_path, shared_embedding_model):
    rows: list[dict] = []
    report = run_eval(Settings(data_dir=tmp_path / "live", demo_kb=False), demo_files(),
                      DIALOGUES, retrieval_only=True, on_case=rows.append)
    failed = [(r["query"], r["expected_id"], r["decision"], r["sources"][:3]) for r in rows
              if not r["passed"]]
    assert not failed, failed
    assert report["n"] >= 20 and report["in_scope_accuracy"] == 1.0 and report["oos_recall"] == 1.0
    # The demo's classifier head ranks held-out phrasings better than the fused score alone,
    # so it counts.
    calibration = report["calibration"]
    assert calibration["heldout_top1"] > calibration["heldout_top1_without_head"]
    assert calibration["classifier_weight"] > 0 and calibration["margin_weight"] > 0
    # The KB names subjects: the report shows how the cases about one went.
    subjects = report["subjects"]
    assert subjects["cases_in_focus"] >= 12 and subjects["in_scope_accuracy_in_focus"] == 1.0
    assert subjects["asked_which_subject"] >= 2  # "how much does it weigh?" with none in focus
