"""``chatbot eval``: the contract's metrics, on known answers and on hand-made results."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from helpers import CARE_GUIDE, CHATBOT_BIN, QUERIES, TINY_FAQ, assert_user_error, run_cli

from chatbot.errors import InvalidInput
from chatbot.evaluation import Case, metrics, read_cases

CONTRACT_KEYS = {
    "n",
    "n_in_scope",
    "n_out_of_scope",
    "recall@1",
    "recall@5",
    "mrr@10",
    "in_scope_accuracy",
    "oos_recall",
    "overall_accuracy",
    "decisions",
    "latency_ms",
}


def test_cli_eval_reports_every_metric_and_leaves_the_live_dir_alone(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    (live / "keep.txt").write_text("untouched")
    proc = run_cli(
        "eval",
        "--kb", str(TINY_FAQ),
        "--kb", str(CARE_GUIDE),
        "--queries", str(QUERIES),
        "--retrieval-only",
        "--json",
        data=live,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)

    assert CONTRACT_KEYS <= set(report)
    assert (report["n"], report["n_in_scope"], report["n_out_of_scope"]) == (7, 5, 2)
    for key in ("recall@1", "recall@5", "mrr@10", "in_scope_accuracy", "oos_recall",
                "overall_accuracy"):
        assert 0.0 <= report[key] <= 1.0, key
    # Known answers: every in-scope query names its entry among the first five.
    assert report["recall@5"] == 1.0
    assert report["recall@1"] >= 0.8
    assert report["recall@1"] <= report["mrr@10"] <= report["recall@5"]
    assert report["oos_recall"] == 1.0
    assert report["in_scope_accuracy"] >= 0.6
    assert set(report["decisions"]) == {"answer", "clarify", "handoff"}
    assert sum(report["decisions"].values()) == 7
    assert report["decisions"]["answer"] >= 3
    assert set(report["latency_ms"]) == {"p50", "p95"}
    assert 0 <= report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    assert sorted(p.name for p in live.iterdir()) == ["keep.txt"]
    assert "generation" not in report
    # The tiny KB's own calibration and its operating point at the thresholds in force.
    calibration = report["calibration"]
    assert calibration["fitted"] is True and calibration["answerable_cases"] >= 8
    point = calibration["operating_point"]
    assert set(point) >= {"answer_threshold", "answer_precision", "answer_rate", "oos_recall"}
    assert point["answer_threshold"] >= 0.3
    for key in ("answer_precision", "answer_rate", "oos_recall"):
        assert 0.0 <= point[key] <= 1.0, key


def test_cli_eval_writes_each_case_and_refuses_a_path_it_cannot_write(tmp_path):
    cases = tmp_path / "cases.jsonl"
    proc = run_cli("eval", "--kb", str(TINY_FAQ), "--kb", str(CARE_GUIDE), "--queries",
                   str(QUERIES), "--retrieval-only", "--cases", str(cases), data=tmp_path / "d")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in cases.read_text().splitlines()]
    expected = [json.loads(line) for line in QUERIES.read_text().splitlines() if line.strip()]
    assert [r["query"] for r in rows] == [e["query"] for e in expected]
    for row, case in zip(rows, expected, strict=True):
        assert row["expected_id"] == case["expected_id"]
        assert row["decision"] in ("answer", "clarify", "handoff") and "model" not in row
        if case["expected_id"] is None:
            assert row["rank"] is None and row["passed"] == (row["decision"] != "answer")
        else:  # every in-scope query ranks its entry in the first five (the test above)
            assert 1 <= row["rank"] <= 5
    assert any(r.get("history") for r in rows)  # the follow-up keeps its history

    proc = run_cli("eval", "--kb", str(TINY_FAQ), "--queries", str(QUERIES), "--retrieval-only",
                   "--cases", str(tmp_path / "no-such-dir" / "c.jsonl"), data=tmp_path / "d")
    assert_user_error(proc, "no-such-dir", "cannot write the cases file")


def test_cli_eval_bad_queries_file_exits_2(tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "hi", "expected_id": null}\n{"query": \n')
    proc = run_cli(
        "eval", "--kb", str(TINY_FAQ), "--queries", str(queries), "--retrieval-only",
        data=tmp_path / "data",
    )
    assert_user_error(proc, "q.jsonl, line 2", "not valid JSON")


def test_cli_eval_without_kb_is_a_usage_error(tmp_path):
    proc = run_cli("eval", "--queries", str(QUERIES), data=tmp_path / "data")
    assert_user_error(proc, "--kb")


# --- metrics on hand-made results --------------------------------------------------------


def result(decision: str, ranking: list[str], latency: float) -> dict:
    return {
        "decision": decision,
        "sources": [{"id": i, "title": i, "score": 0.5} for i in ranking],
        "latency_ms": latency,
    }


def test_metrics_on_hand_made_results():
    cases = [
        Case("q1", "a", []),
        Case("q2", "b", []),
        Case("q3", "c", []),
        Case("q4", "d", []),
        Case("q5", None, []),
        Case("q6", None, []),
    ]
    results = [
        result("answer", ["a", "b"], 10),  # rank 1, answered right
        result("clarify", ["a", "b", "c"], 20),  # rank 2, not answered
        result("answer", ["x", "y", "z", "w", "v", "c"], 30),  # rank 6, answered wrong
        result("handoff", ["x"], 40),  # not retrieved
        result("handoff", ["x"], 50),  # out of scope, handled right
        result("answer", ["x"], 60),  # out of scope, answered: wrong
    ]
    report = metrics(cases, results)
    assert report == {
        "n": 6,
        "n_in_scope": 4,
        "n_out_of_scope": 2,
        "recall@1": 0.25,
        "recall@5": 0.5,
        "mrr@10": pytest.approx((1 + 1 / 2 + 1 / 6 + 0) / 4),
        "in_scope_accuracy": 0.25,
        "oos_recall": 0.5,
        "overall_accuracy": pytest.approx(2 / 6),
        "decisions": {"answer": 3, "clarify": 1, "handoff": 2},
        "latency_ms": {"p50": 35.0, "p95": 57.5},
    }


def test_mrr_counts_only_the_first_ten():
    cases = [Case("q", "target", [])]
    ranking = [f"e{i}" for i in range(10)] + ["target"]
    report = metrics(cases, [result("clarify", ranking, 5)])
    assert (report["recall@5"], report["mrr@10"]) == (0.0, 0.0)
    assert report["latency_ms"] == {"p50": 5.0, "p95": 5.0}


def test_document_answered_by_its_first_passage_ranks_first():
    """A passage counts as its document: expected "care-guide", top source "care-guide#1"."""
    cases = [Case("how do I wash my jacket?", "care-guide", [])]
    report = metrics(cases, [result("answer", ["care-guide#1", "delivery-time"], 5)])
    assert report["in_scope_accuracy"] == 1.0
    assert report["recall@1"] == 1.0
    assert report["mrr@10"] == 1.0


def test_metrics_without_in_scope_cases():
    report = metrics([Case("q", None, [])], [result("handoff", [], 1)])
    assert report["recall@1"] is None and report["in_scope_accuracy"] is None
    assert report["oos_recall"] == 1.0 and report["overall_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        (['{"query": "a", "expected_id": "x"}', "not json"], "line 2: not valid JSON"),
        (['{"expected_id": "x"}'], "line 1: each case needs a string 'query'"),
        (['{"query": "a", "expected_id": ["x"]}'], "line 1: 'expected_id'"),
        (['{"query": "a", "history": [{"role": "bot", "content": "x"}]}'], "line 1: 'history'"),
        (["", "  "], "holds no cases"),
    ],
)
def test_read_cases_errors_name_the_line(tmp_path: Path, lines, needle):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        read_cases(path)
    assert needle in info.value.message


def test_read_cases_accepts_history_and_null_expected():
    cases = read_cases(QUERIES)
    assert len(cases) == 7
    assert cases[4].history[0] == {"role": "user", "content": "How long does shipping take?"}
    assert cases[5].expected_id is None


# --- generation metrics ------------------------------------------------------------------

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


def test_generation_metrics_with_no_model_answers():
    from chatbot.eval_generation import generation_metrics

    gen = generation_metrics([Case("q", None, [])], [turn("handoff", "bye")], {}, None,
                             fast_path=False, model="m")
    assert gen["n"] == 0 and gen["n_generated"] == 0
    for key in ("perplexity", "bleu", "rouge_l", "token_f1", "grounded_rate", "fallback_rate"):
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
