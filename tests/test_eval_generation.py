"""``chatbot eval``'s generation metrics: hand-made results, several models on one import, the
reference perplexity on the serving prompt."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from helpers import (
    CARE_GUIDE,
    CHATBOT_BIN,
    CONTRACT_KEYS,
    QUERIES,
    TINY_FAQ,
    assert_user_error,
    run_cli,
)

from chatbot.evaluation import Case, read_cases

GENERATION_KEYS = {"perplexity", "bleu", "rouge_l", "token_f1", "grounded_rate", "fallback_rate",
                   "n", "latency_ms", "fast_path"}


def turn(decision, text, *, grounded=None, fallback=False, model=None, own=None, latency=10.0):
    return {"decision": decision, "text": text, "sources": [], "grounded": grounded,
            "fallback": fallback, "model": model, "model_text": own, "latency_ms": latency}


def test_generation_metrics_on_hand_made_results():
    from chatbot.eval_generation import generation_metrics

    answers = {"a": "Delivery takes 2 to 4 business days.", "b": "We accept PayPal.",
               "c": "Call us.", "d": "Returns are free."}
    cases = [Case("q1", "a", []), Case("q2", "b", []), Case("q3", "doc", []),
             Case("q4", "c", []), Case("q5", None, []), Case("q6", "d", [])]
    results = [
        # through the model, grounded: its words are the reference
        turn("answer", answers["a"], grounded=True, model="m", own=answers["a"], latency=100),
        # through the model, not grounded: replaced by the KB's text (the reference)
        turn("answer", answers["b"], grounded=False, fallback=True, model="m",
             own="Bitcoin only.", latency=300),
        # a document case: no reference answer, but a model-generated answer all the same
        turn("answer", "See the care guide.", grounded=True, model="m", own="x", latency=200),
        turn("clarify", "Did you mean...?"),
        turn("handoff", "A colleague will reply."),
        # the fast path: answered without the model
        turn("answer", answers["d"]),
    ]
    gen = generation_metrics(cases, results, answers, (8 * math.log(2), 8),
                             fast_path=True, model="m")
    assert GENERATION_KEYS <= set(gen)
    assert (gen["n"], gen["n_answered"], gen["n_model"], gen["n_generated"]) == (4, 3, 2, 3)
    assert gen["grounded_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert gen["fallback_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert gen["perplexity"] == pytest.approx(2.0)
    assert gen["perplexity_tokens"] == 8
    # The final replies of a and b are the references; b's own words share nothing with its.
    assert (gen["bleu"], gen["rouge_l"], gen["token_f1"]) == (100.0, 1.0, 1.0)
    assert (gen["bleu_all"], gen["token_f1_all"]) == (100.0, 1.0)
    assert gen["token_f1_generated"] == 0.5
    assert gen["latency_ms"] == {"p50": 200.0, "p95": 290.0}
    assert (gen["model"], gen["fast_path"]) == ("m", True)


def test_abstentions_are_counted_apart_from_invented_answers():
    from chatbot.eval_generation import abstained, generation_metrics
    from chatbot.prompts import HANDOFF_REPLY

    assert abstained(HANDOFF_REPLY)
    assert abstained(HANDOFF_REPLY.replace("I'm", "I am") + " Sorry about that.")
    assert not abstained("Delivery takes 2 to 4 business days. A colleague can help.")
    assert not abstained("I'm passing this on.")  # too little of the reply to be it
    assert not abstained("") and not abstained(None)
    answers = {"a": "Delivery takes 2 to 4 business days.", "b": "We accept PayPal."}
    cases = [Case("q1", "a", []), Case("q2", "b", []), Case("q3", "a", []), Case("q4", "b", [])]
    results = [
        turn("answer", answers["a"], grounded=True, model="m", own=answers["a"]),
        turn("answer", answers["b"], grounded=False, fallback=True, model="m", own=HANDOFF_REPLY),
        turn("answer", answers["a"], grounded=False, fallback=True, model="m", own="In 9 days."),
        turn("answer", answers["b"], grounded=True, model="m", own=answers["b"]),
    ]
    gen = generation_metrics(cases, results, answers, None, fast_path=False, model="m")
    assert (gen["grounded_rate"], gen["fallback_rate"]) == (0.5, 0.5)
    assert gen["abstain_rate"] == 0.25
    assert gen["grounded_rate_answers"] == pytest.approx(2 / 3, abs=1e-4)  # the invented one


def test_generation_metrics_with_no_model_answers():
    from chatbot.eval_generation import generation_metrics

    gen = generation_metrics([Case("q", None, [])], [turn("handoff", "bye")], {}, None,
                             fast_path=False, model="m")
    assert gen["n"] == 0 and gen["n_generated"] == 0
    for key in ("perplexity", "bleu", "rouge_l", "token_f1", "grounded_rate", "fallback_rate",
                "abstain_rate", "grounded_rate_answers"):
        assert gen[key] is None, key


def write_queries(path: Path, *lines: dict) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_eval_scores_each_model_on_one_import(tmp_path, monkeypatch, shared_embedding_model):
    """A model whose answers are grounded and one that invents: the same cases, one KB import,
    one report per model; the fast path is off, so every answer goes through the model."""
    from chatbot.evaluation import run_eval
    from chatbot.generation.scripted import ScriptedGenerator
    from chatbot.settings import Settings
    from knowledge.store import KnowledgeStore

    queries = write_queries(
        tmp_path / "q.jsonl",
        {"query": "How do I reset my password?", "expected_id": "reset-password"},
        {"query": "Which payment methods do you accept?", "expected_id": "payment-methods"},
        {"query": "who won the 1998 world cup?", "expected_id": None},
    )
    saves = []
    real_save = KnowledgeStore.save
    monkeypatch.setattr(KnowledgeStore, "save", lambda self, *a, **k: saves.append(1)
                        or real_save(self, *a, **k))
    loaded = []

    def load(settings, name):
        loaded.append(name)
        if name == "inventor":  # numbers that no passage holds: never grounded
            return ScriptedGenerator(["Links last 99 hours.", "We take 42 currencies."])
        return ScriptedGenerator()  # echoes the top passage's first sentence: grounded

    report = run_eval(
        Settings(data_dir=tmp_path / "live", demo_kb=False),
        [TINY_FAQ, CARE_GUIDE],
        queries,
        models=["echo", "inventor", "echo"],
        load=load,
        on_case=(rows := []).append,
    )
    assert set(report) == {"models"} and list(report["models"]) == ["echo", "inventor"]
    assert loaded == ["echo", "inventor"] and len(saves) == 1
    echo, inventor = report["models"]["echo"], report["models"]["inventor"]
    for one in (echo, inventor):
        assert CONTRACT_KEYS <= set(one) and GENERATION_KEYS <= set(one["generation"])
        assert one["decisions"] == {"answer": 2, "clarify": 0, "handoff": 1}
        assert one["generation"]["fast_path"] is False
        assert one["generation"]["perplexity"] is None  # scripted: no logits
        assert (one["generation"]["n"], one["generation"]["n_model"]) == (2, 2)
    assert echo["recall@1"] == inventor["recall@1"]
    assert (echo["generation"]["grounded_rate"], echo["generation"]["fallback_rate"]) == (1.0, 0.0)
    assert (inventor["generation"]["grounded_rate"],
            inventor["generation"]["fallback_rate"]) == (0.0, 1.0)
    # The final reply of a fallback is the KB's own answer; the model's own words are not.
    assert echo["generation"]["bleu"] == inventor["generation"]["bleu"] == 100.0
    assert echo["generation"]["token_f1_generated"] == 1.0
    assert inventor["generation"]["token_f1_generated"] < 0.3
    # Each case's outcome, model by model: what the inventor said, and that it fell back.
    assert [(r["model"], r["query"][:8]) for r in rows] == [
        (m, q) for m in ("echo", "inventor") for q in ("How do I", "Which pa", "who won ")]
    invented = rows[3]
    assert (invented["expected_id"], invented["passed"], invented["rank"]) == (
        "reset-password", True, 1)
    assert invented["model_text"] == "Links last 99 hours."
    assert (invented["grounded"], invented["fallback"]) == (False, True)
    assert invented["text"] == rows[0]["text"] != invented["model_text"]
    assert rows[5]["decision"] == "handoff" and rows[5]["model_text"] is None


def test_perplexity_prompt_is_the_serving_prompt(make_services):
    """The prompt the reference answer is scored on is the one the model is given, history
    and follow-up retrieval included."""
    from chatbot.eval_generation import ReferenceScorer
    from chatbot.generation.scripted import ScriptedGenerator

    generator = ScriptedGenerator()
    chat = make_services(generator, fast_path_threshold=2.0).chat
    scorer = ReferenceScorer(chat, tokenizer=None, model=None, device="cpu")
    for case in read_cases(QUERIES)[3:5]:
        cid = chat.start_conversation(history=case.history)
        messages = scorer.prompt(cid, case.query, "REFERENCE")
        assert chat.send_message(cid, case.query).decision == "answer"
        assert messages[:-1] == generator.prompts[-1]
        assert messages[-1] == {"role": "assistant", "content": "REFERENCE"}
    assert any(m["role"] == "assistant" for m in generator.prompts[-1][1:-1]), "history shown"


def run_cli_env(*args: str, data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point, like ``run_cli``, with extra CHATBOT_ settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    base.update(CHATBOT_DATA_DIR=str(data), CHATBOT_DEMO_KB="false", **env)
    return subprocess.run([str(CHATBOT_BIN), *args], capture_output=True, text=True, env=base,
                          timeout=240)


def test_cli_eval_compares_models_with_a_report(tmp_path):
    report_path = tmp_path / "out" / "eval.md"
    proc = run_cli_env(
        "eval", "--kb", str(TINY_FAQ), "--kb", str(CARE_GUIDE), "--queries", str(QUERIES),
        "--model", "default", "--model", "other", "--limit", "4",
        "--report", str(report_path), "--json",
        data=tmp_path / "data", CHATBOT_GENERATOR="scripted",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {"models"} and set(report["models"]) == {"default", "other"}
    for one in report["models"].values():
        assert CONTRACT_KEYS <= set(one) and GENERATION_KEYS <= set(one["generation"])
        assert one["n"] == 4
        assert one["generation"]["n"] == 4
        assert one["generation"]["grounded_rate"] == 1.0
        assert set(one["generation"]["latency_ms"]) == {"p50", "p95"}
    text = report_path.read_text(encoding="utf-8")
    assert "| figure | default | other |" in text
    plots = sorted(p.name for p in (tmp_path / "out" / "eval_plots").iterdir())
    assert "generation_rouge_l.svg" in plots and "generation_grounded_rate.svg" in plots
    assert f"eval_plots/{plots[0]}" in text
    svg = (tmp_path / "out" / "eval_plots" / "generation_rouge_l.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<rect") == 2


def test_cli_eval_model_with_retrieval_only_is_a_usage_error(tmp_path):
    proc = run_cli("eval", "--kb", str(TINY_FAQ), "--queries", str(QUERIES),
                   "--retrieval-only", "--model", "x", data=tmp_path / "data")
    assert_user_error(proc, "--model", "--retrieval-only")


@pytest.mark.slow
def test_perplexity_of_the_bundled_model(tmp_path, shared_embedding_model):
    """The real bundled model on two cases: a finite perplexity, summed over the answers'
    tokens the same way the model's own loss is."""
    import torch

    from chatbot.eval_generation import reference_nll
    from chatbot.evaluation import run_eval
    from chatbot.generation.local import LocalGenerator
    from chatbot.settings import Settings
    from chatbot.training.tokens import encode_chat

    lm = LocalGenerator("bundled", device="cpu", threads=2)
    report = run_eval(
        Settings(data_dir=tmp_path / "live", demo_kb=False, max_new_tokens=24),
        [TINY_FAQ, CARE_GUIDE],
        QUERIES,
        load=lambda settings, name: lm,
        limit=2,
    )
    gen = report["generation"]
    assert gen["n"] == 2 and gen["perplexity_tokens"] > 10
    assert 1.0 < gen["perplexity"] < 1000
    assert gen["grounded_rate"] is not None and gen["fallback_rate"] is not None

    messages = [{"role": "user", "content": "How long does delivery take?"},
                {"role": "assistant", "content": "Two to four business days."}]
    nll, tokens = reference_nll(lm.tokenizer, lm.model, "cpu", messages)
    ids, labels = encode_chat(lm.tokenizer, messages)
    with torch.inference_mode():
        loss = lm.model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
    assert tokens == sum(label != -100 for label in labels)
    assert nll / tokens == pytest.approx(float(loss), rel=1e-4)
