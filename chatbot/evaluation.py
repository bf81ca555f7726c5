"""``chatbot eval``: run labelled queries through the serving pipeline on a throwaway data dir.

Metrics are those of CONTRACT.md. Ranks come from the sources of each reply (entries ranked
best first); for a case whose decision is not an answer the ranking is still recorded, so
recall@k measures retrieval and ``in_scope_accuracy`` measures the whole decision.

On a KB whose entries name a ``subject``, each report gains ``subjects``: the cases answered
with a subject in focus and their in-scope accuracy, the others', and how often the bot asked
which subject was meant (``subject_metrics``).

Without ``retrieval_only`` every model of ``models`` answers every case in turn, on one import
of the knowledge base (one database, one index), and each report gains ``generation``
(``chatbot.eval_generation``). The fast path is off for those runs unless asked for: with it,
every confident FAQ answer would skip the model and nothing would be measured.
"""

from __future__ import annotations

import gc
import json
import statistics
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chatbot.errors import InvalidInput
from chatbot.generation import Generator, make_generator
from chatbot.settings import Settings
from knowledge.records import Entry

DEFAULT_MODEL = "default"  # --model default: the configured serving model
NO_FAST_PATH = 2.0  # a fast-path threshold above any calibrated score

LoadModel = Callable[[Settings, str], Generator]


@dataclass(frozen=True)
class Case:
    query: str
    expected_id: str | None
    history: list[dict[str, str]]


def read_cases(path: Path) -> list[Case]:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file.")
    cases = parse_cases(path.read_text(encoding="utf-8-sig"), str(path))
    if not cases:
        raise InvalidInput(f"{path}: the file holds no cases.")
    return cases


def parse_cases(text: str, name: str) -> list[Case]:
    """The cases of JSONL ``text`` (blank lines skipped); errors name ``name`` and the line."""
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not valid JSON ({exc.msg}).") from None
        cases.append(case_from_obj(obj, where))
    return cases


def case_from_obj(obj: Any, where: str) -> Case:
    """One case from its JSON object; ``where`` starts the error message."""
    if not isinstance(obj, dict) or not isinstance(obj.get("query"), str):
        raise InvalidInput(f"{where}: each case needs a string 'query'.")
    expected = obj.get("expected_id")
    if expected is not None and not isinstance(expected, str | int):
        raise InvalidInput(f"{where}: 'expected_id' must be a string or null.")
    history = obj.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(t, dict) and t.get("role") in ("user", "assistant")
        and isinstance(t.get("content"), str)
        for t in history
    ):
        raise InvalidInput(
            f"{where}: 'history' must be a list of {{role: user|assistant, content}}."
        )
    return Case(obj["query"], None if expected is None else str(expected), history)


def case_passes(case: Case, result: dict[str, Any]) -> bool:
    """The two rules of CONTRACT.md: an in-scope case is answered with ``expected_id`` as the
    top source; an out-of-scope one is not answered (clarify or handoff)."""
    if case.expected_id is None:
        return bool(result["decision"] in ("clarify", "handoff"))
    top = result["sources"][0]["id"] if result["sources"] else None
    return result["decision"] == "answer" and top is not None and (
        top == case.expected_id or top.split("#", 1)[0] == case.expected_id
    )


def entry_ranks(sources: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Rank (1 = best) of each entry id; a passage ranks its document at the same place."""
    ranks: dict[str, int] = {}
    for position, source in enumerate(sources, start=1):
        sid = source["id"]
        for candidate in (sid, sid.split("#", 1)[0]):
            ranks.setdefault(candidate, position)
    return ranks


def metrics(cases: Sequence[Case], results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    in_scope = [(c, r) for c, r in zip(cases, results, strict=True) if c.expected_id is not None]
    oos = [(c, r) for c, r in zip(cases, results, strict=True) if c.expected_id is None]
    r1 = r5 = rr = correct_in = correct_oos = 0.0
    for case, result in in_scope:
        rank = entry_ranks(result["sources"]).get(case.expected_id)
        r1 += rank == 1
        r5 += rank is not None and rank <= 5
        rr += 1.0 / rank if rank is not None and rank <= 10 else 0.0
        correct_in += case_passes(case, result)
    for case, result in oos:
        correct_oos += case_passes(case, result)
    latencies = sorted(r["latency_ms"] for r in results)
    decisions = Counter(r["decision"] for r in results)
    n_in, n_oos = len(in_scope), len(oos)
    return {
        "n": len(cases),
        "n_in_scope": n_in,
        "n_out_of_scope": n_oos,
        "recall@1": r1 / n_in if n_in else None,
        "recall@5": r5 / n_in if n_in else None,
        "mrr@10": rr / n_in if n_in else None,
        "in_scope_accuracy": correct_in / n_in if n_in else None,
        "oos_recall": correct_oos / n_oos if n_oos else None,
        "overall_accuracy": (correct_in + correct_oos) / len(cases) if cases else None,
        "decisions": {k: decisions.get(k, 0) for k in ("answer", "clarify", "handoff")},
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
        },
    }


def subject_metrics(cases: Sequence[Case], results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """For a KB whose entries name subjects: how the cases went with a subject in focus and
    without, and how often the bot asked which subject was meant."""
    pairs = list(zip(cases, results, strict=True))

    def accuracy(rows: list[tuple[Case, dict[str, Any]]]) -> float | None:
        scoped = [(c, r) for c, r in rows if c.expected_id is not None]
        return sum(case_passes(c, r) for c, r in scoped) / len(scoped) if scoped else None

    focused = [(c, r) for c, r in pairs if r.get("subject")]
    unfocused = [(c, r) for c, r in pairs if not r.get("subject")]
    asked = sum(r["decision"] == "clarify" and len({s.get("subject") for s in r["sources"]}) > 1
                and all(s.get("subject") for s in r["sources"]) for _, r in pairs)
    return {
        "cases_in_focus": len(focused),
        "in_scope_accuracy_in_focus": accuracy(focused),
        "in_scope_accuracy_no_focus": accuracy(unfocused),
        "asked_which_subject": asked,
    }


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1], 1)



def load_model(settings: Settings, name: str) -> Generator:
    """The generator for ``--model NAME``: ``default`` is the configured one; anything else is
    a folder, GGUF file or hub id served by the configured backend."""
    if name != DEFAULT_MODEL:
        settings = settings.model_copy(update={"model": name, "openai_model": ""})
    return make_generator(settings)


def run_eval(
    settings: Settings,
    kb_files: Sequence[Path],
    queries: Path,
    *,
    retrieval_only: bool = False,
    models: Sequence[str] = (DEFAULT_MODEL,),
    load: LoadModel = load_model,
    fast_path: bool | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_case: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The report of CONTRACT.md; with several ``models``, ``{"models": {name: report}}``.

    ``fast_path`` (default: off when generating) keeps or disables the serving fast path;
    ``limit`` evaluates the first cases only; ``on_case`` gets each case's outcome
    (``case_row``), model by model.
    """
    from chatbot.eval_generation import (
        RecordingGenerator,
        ReferenceScorer,
        generation_metrics,
        reference_answers,
    )
    from chatbot.services import build_services
    from knowledge.formats import read_files

    cases = read_cases(queries)[:limit]
    records = read_files(kb_files)
    names = list(dict.fromkeys(models)) or [DEFAULT_MODEL]
    if fast_path is None:
        fast_path = retrieval_only
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="chatbot-eval-") as tmp:
        # A throwaway data dir: the live database and index are never touched.
        data = Path(tmp)
        update: dict[str, Any] = {"data_dir": data, "database_url": f"sqlite:///{data / 'eval.db'}"}
        if not fast_path:
            update["fast_path_threshold"] = NO_FAST_PATH
        local = settings.model_copy(update=update)
        services = build_services(local, load_generator=False)
        try:
            services.knowledge.save(records, publish=True, note="eval")
            services.retriever.index()  # and its calibration: fitted before any case runs
            operating = services.chat.calibration_report()
            subjects = any(isinstance(r, Entry) and r.subject for r in records)
            if retrieval_only:
                results = run_cases(services.chat, cases, progress=progress,
                                    on_case=_rows_to(on_case, None))
                report = {**metrics(cases, results), "calibration": operating}
                return {**report, "subjects": subject_metrics(cases, results)} if subjects else report
            answers = reference_answers(records)
            for name in names:
                generator = RecordingGenerator(load(local, name))
                chat = replace(services.chat, generator=generator)
                scorer = ReferenceScorer.for_generator(chat, generator.inner)
                results = run_cases(chat, cases, progress=progress, scorer=scorer, answers=answers,
                                    on_case=_rows_to(on_case, name))
                report = metrics(cases, results)
                report["generation"] = generation_metrics(
                    cases, results, answers,
                    scorer.totals() if scorer else None,
                    fast_path=fast_path, model=generator.name,
                )
                report["calibration"] = operating
                if subjects:
                    report["subjects"] = subject_metrics(cases, results)
                reports[name] = report
                del generator, chat, scorer
                gc.collect()  # one model in memory at a time
        finally:
            services.engine.dispose()
    return reports[names[0]] if len(names) == 1 else {"models": reports}


def case_row(model: str | None, case: Case, result: dict[str, Any]) -> dict[str, Any]:
    """One case's outcome, for reading what failed: whether it passed, where the expected entry
    ranked, the reply, and (generating) the model's own words and whether they held up."""
    row: dict[str, Any] = {
        "query": case.query,
        "expected_id": case.expected_id,
        "passed": case_passes(case, result),
        "decision": result["decision"],
        "rank": entry_ranks(result["sources"]).get(case.expected_id) if case.expected_id else None,
        "sources": [s["id"] for s in result["sources"]],
        "text": result["text"],
        "latency_ms": round(result["latency_ms"], 1),
    }
    if case.history:
        row["history"] = case.history
    if model is not None:
        row = {"model": model, **row, "model_text": result.get("model_text"),
               "grounded": result.get("grounded"), "fallback": result.get("fallback")}
    return row


def _rows_to(
    on_case: Callable[[dict[str, Any]], None] | None, model: str | None
) -> Callable[[Case, dict[str, Any]], None] | None:
    if on_case is None:
        return None
    return lambda case, result: on_case(case_row(model, case, result))


def run_cases(
    chat: Any,
    cases: Sequence[Case],
    *,
    progress: Callable[[int], None] | None = None,
    scorer: Any = None,
    answers: dict[str, str] | None = None,
    on_case: Callable[[Case, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One fresh conversation per case (its history replayed), answered as it would be live.
    With ``scorer``, the reference answer of each in-scope case is scored on the prompt the
    model is given for that turn, before the turn is run."""
    results = []
    for case in cases:
        cid = chat.start_conversation(history=case.history)
        try:
            if scorer is not None and answers and case.expected_id in answers:
                scorer.score(cid, case.query, answers[case.expected_id])
            turn = chat.send_message(cid, case.query)
            result = {**turn.to_dict(), "fallback": turn.fallback, "model": turn.model,
                      "subject": turn.subject}
            take = getattr(chat.generator, "take", None)  # a RecordingGenerator's own words
            if take is not None:
                result["model_text"] = take()
        except InvalidInput:  # e.g. an empty query: the bot refuses it, as it would live
            result = {"decision": "handoff", "sources": [], "latency_ms": 0.0, "text": "",
                      "grounded": None, "fallback": False, "model": None}
        results.append(result)
        if on_case is not None:  # as each case ends: a run cut short keeps what it did
            on_case(case, result)
        if progress:
            progress(1)
    return results
