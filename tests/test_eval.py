"""``chatbot eval``: the contract's metrics, on known answers and on hand-made results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import (
    CARE_GUIDE,
    CONTRACT_KEYS,
    QUERIES,
    TINY_FAQ,
    assert_user_error,
    run_cli,
)

from chatbot.errors import InvalidInput
from chatbot.evaluation import Case, metrics, read_cases


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
