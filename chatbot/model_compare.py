"""``chatbot model quantize``'s comparison: quality and speed of the fp32 model and its int8
copy, in one run.

Quality is ``chatbot eval`` itself (``evaluation.run_eval`` with both models on one import of
the knowledge base): the generation metrics of CONTRACT.md, on the first ``limit`` cases.
Speed is measured on each model right after it loads, on prompts in the serving layout
(``prompts.build_messages``: the system prompt, three passages of the knowledge base, the
question), greedy, in one generation forced to ``n`` new tokens whose tokens are timed as they
arrive: *time to first token* (the prompt's prefill and one step) and *decode tokens/s*,
``(n - 1) / (t_n - t_1)``; each is the best of ``repeats`` runs per prompt (the least disturbed
by other work on the machine), then the median over the prompts, after one warm-up run.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatbot.evaluation import DEFAULT_MODEL, run_eval
from chatbot.generation.base import GenerationParams
from chatbot.prompts import PromptPassage, build_messages
from chatbot.settings import Settings
from knowledge.records import Entry, Record

QUALITY_KEYS = ("perplexity", "rouge_l_generated", "token_f1_generated", "bleu_generated",
                "grounded_rate", "fallback_rate")


def kb_cases(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Cases from the knowledge base itself: each entry's first paraphrase (else its question)
    should be answered by that entry."""
    return [{"query": (r.paraphrases[0] if r.paraphrases else r.question), "expected_id": r.id}
            for r in records if isinstance(r, Entry)]


def speed_prompts(records: Sequence[Record], n: int, count_tokens: Any, settings: Settings
                  ) -> list[list[dict[str, str]]]:
    entries = [r for r in records if isinstance(r, Entry)]
    prompts = []
    for i in range(min(n, len(entries))):
        shown = [entries[(i + j) % len(entries)] for j in range(min(3, len(entries)))]
        passages = [PromptPassage(e.id, e.question, e.answer) for e in shown]
        prompts.append(build_messages(question=entries[i].question, passages=passages,
                                      count_tokens=count_tokens, budget=settings.context_tokens))
    return prompts


class _Clock:
    """A ``generate`` streamer that notes when each new token arrives (the first ``put`` is
    the prompt)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.calls = 0
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls > 1:
            self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def measure_speed(generator: Any, prompts: Sequence[list[dict[str, str]]], new_tokens: int,
                  repeats: int = 2) -> dict[str, Any]:
    """Median time to first token (ms) and decode tokens/s of a ``LocalGenerator``, each from
    one generation of ``new_tokens`` tokens: the first token's arrival, and the rate of the
    others."""
    import torch

    params = GenerationParams(max_new_tokens=new_tokens, temperature=0.0, repetition_penalty=1.0)

    def timed(inputs: Any) -> tuple[float, float]:
        kwargs = {**generator.generate_kwargs(inputs, params), "min_new_tokens": new_tokens}
        clock = _Clock()
        with torch.inference_mode():
            generator.model.generate(**kwargs, streamer=clock)
        first = clock.times[0] - clock.started
        rate = (len(clock.times) - 1) / max(clock.times[-1] - clock.times[0], 1e-9)
        return first, rate

    first, rates, lengths = [], [], []
    encoded = [generator.prompt_ids(p).to(generator.device) for p in prompts]
    if encoded:
        timed(encoded[0])  # warm-up
    for inputs in encoded:
        runs = [timed(inputs) for _ in range(repeats)]
        first.append(min(f for f, _ in runs) * 1000)
        rates.append(max(r for _, r in runs))
        lengths.append(int(inputs["input_ids"].shape[1]))
    return {"ttft_ms": round(statistics.median(first), 1) if first else None,
            "decode_tokens_per_s": round(statistics.median(rates), 2) if rates else None,
            "prompt_tokens": round(statistics.median(lengths)) if lengths else None,
            "new_tokens": new_tokens, "prompts": len(encoded)}


def compare(
    settings: Settings,
    fp32: str,
    int8: Path,
    kb_files: Sequence[Path],
    *,
    queries: Path | None = None,
    limit: int = 8,
    speed_runs: int = 3,
    new_tokens: int = 32,
    progress: Any = None,
) -> dict[str, Any]:
    """``{"models": {"fp32": row, "int8": row}, ...}``: each row has the model, load seconds,
    size, speed and the quality figures (``QUALITY_KEYS``, ``latency_ms``, accuracy)."""
    from chatbot.generation.local import LocalGenerator
    from chatbot.generation.quantize import folder_megabytes, parameter_megabytes
    from knowledge.formats import read_files

    records = read_files(kb_files)
    name = settings.model if fp32 == DEFAULT_MODEL else fp32
    models = {"fp32": name, "int8": str(int8)}
    rows: dict[str, dict[str, Any]] = {}

    def load(local: Settings, model: str) -> Any:
        started = time.perf_counter()
        generator = LocalGenerator(model, device="cpu", threads=local.torch_threads)
        label = "int8" if model == str(int8) else "fp32"
        rows[label] = {"model": model, "load_s": round(time.perf_counter() - started, 2),
                       "memory_mb": parameter_megabytes(generator.model)}
        prompts = speed_prompts(records, speed_runs, generator.count_tokens, local)
        rows[label].update(measure_speed(generator, prompts, new_tokens))
        return generator

    with tempfile.TemporaryDirectory(prefix="chatbot-quantize-") as tmp:
        if queries is None:
            queries = Path(tmp) / "cases.jsonl"
            queries.write_text("".join(json.dumps(c) + "\n" for c in kb_cases(records)),
                               encoding="utf-8")
        report = run_eval(settings, kb_files, queries, models=list(models.values()), load=load,
                          limit=limit, progress=progress)
    for label, model in models.items():
        one = report["models"][model]
        generation = one["generation"]
        rows[label].update({key: generation.get(key) for key in QUALITY_KEYS})
        rows[label]["latency_ms"] = generation["latency_ms"]
        rows[label]["n_model"] = generation["n_model"]
        rows[label]["in_scope_accuracy"] = one["in_scope_accuracy"]
    rows["int8"]["folder_mb"] = folder_megabytes(int8)
    speedup = (rows["int8"]["decode_tokens_per_s"] or 0) / (rows["fp32"]["decode_tokens_per_s"] or 1)
    return {"models": rows, "cases": report["models"][name]["n"], "kb": [str(p) for p in kb_files],
            "queries": "the KB's own paraphrases" if queries.parent == Path(tmp) else str(queries),
            "decode_speedup": round(speedup, 2)}


def table_lines(result: dict[str, Any]) -> list[str]:
    """The comparison as a Markdown table, one row per model."""
    def fmt(value: Any, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    head = ("| model | memory MB | load s | TTFT ms | decode tok/s | perplexity | ROUGE-L own "
            "| token F1 own | grounded | fallback | turn p50 ms |")
    lines = [head, "|" + "---|" * 11]
    for label, row in result["models"].items():
        lines.append(
            f"| {label} ({row['model']}) | {fmt(row['memory_mb'], 1)} | {fmt(row['load_s'], 1)} "
            f"| {fmt(row['ttft_ms'], 0)} | {fmt(row['decode_tokens_per_s'], 1)} "
            f"| {fmt(row['perplexity'])} | {fmt(row['rouge_l_generated'])} "
            f"| {fmt(row['token_f1_generated'])} | {fmt(row['grounded_rate'], 2)} "
            f"| {fmt(row['fallback_rate'], 2)} | {fmt(row['latency_ms']['p50'], 0)} |")
    lines.append(f"{result['cases']} case(s) ({result['queries']}); int8 decodes "
                 f"{result['decode_speedup']:.2f}x as fast as fp32.")
    return lines
