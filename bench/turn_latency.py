"""Turn latency through ChatService on the demo knowledge base, with the bundled SmolLM2.

(a) fast-path turns (confident FAQ answers returned without the language model), measured
    with ``ChatService.send_message``;
(b) generated turns (fast path disabled with ``fast_path_threshold=1.01``), measured with
    ``ChatService.stream_message``: total time and time to the first text event
    (``Delta``, or ``Reset`` when the first sentence already failed the groundedness check);
(c) a baseline on the same prompts: plain ``model.generate(**inputs, max_new_tokens=N,
    do_sample=False)`` on the same model in float32 (a second copy of it when ours decodes
    with int8 weights) and tokenizer, with the exact ``messages`` the service built
    (captured by wrapping the generator), run right after each turn and, like
    ``LocalGenerator``, on the process's compute thread (``--baseline-main-thread`` to change
    that).

Every turn runs in a fresh conversation on a temporary data dir; the query-embedding cache is
cleared after the screening pass so measured turns embed their query as a live turn would.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from _common import BENCH, footer, header, p50_p95, percentile

DEFAULT_QUERIES = BENCH / "out" / "demo" / "queries.jsonl"  # written by bench/demo_heldout.py


@dataclass
class Recording:
    messages: list[dict[str, str]]
    text: str = ""
    seconds: float = 0.0
    first_piece: float = float("nan")  # seconds to the model's first streamed text piece


@dataclass
class RecordingGenerator:
    """Delegates to the real generator and keeps each prompt and raw output."""

    inner: Any
    calls: list[Recording] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream(self, messages: list[dict[str, str]], params: Any) -> Iterator[str]:
        rec = Recording([dict(m) for m in messages])
        self.calls.append(rec)
        started = time.perf_counter()
        try:
            for piece in self.inner.stream(messages, params):
                if not rec.text:
                    rec.first_piece = time.perf_counter() - started
                rec.text += piece
                yield piece
        finally:
            rec.seconds = time.perf_counter() - started


def load_queries(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            case = json.loads(line)
            if case.get("expected_id") is not None and not case.get("history"):
                out.append(case["query"])
    return out


def screen(services: Any, chat: Any, texts: list[str], want: str, limit: int) -> list[str]:
    """The texts whose turn (fresh conversation) is a fast-path answer / a generated answer."""
    from chatbot.dialogue.decision import is_fast_path
    from chatbot.dialogue.manager import plan_turn

    picked: list[str] = []
    for text in dict.fromkeys(texts):
        plan = plan_turn(
            text, [], services.retriever, thresholds=chat.thresholds,
            k=chat.settings.retrieval_top_k,
        )
        if plan.decision.kind != "answer":
            continue
        fast = is_fast_path(plan.decision, chat.thresholds)
        if (want == "fast") == fast:
            picked.append(text)
        if len(picked) >= limit:
            break
    return picked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=30, help="fast-path turns (default 30)")
    parser.add_argument(
        "--gen-turns", type=int, default=10, help="generated turns and baseline runs (default 10)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch.set_num_threads (default 2)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="tokens per generated answer (default 64)"
    )
    parser.add_argument(
        "--prompt-lookup", type=int, default=None,
        help="CHATBOT_PROMPT_LOOKUP_TOKENS for our turns (default: the setting's default)",
    )
    parser.add_argument(
        "--no-prefix-cache", action="store_true", help="CHATBOT_PREFIX_CACHE=false for our turns"
    )
    parser.add_argument(
        "--prefill-dtype", choices=("auto", "float32", "bfloat16"), default="auto",
        help="CHATBOT_PREFILL_DTYPE for our turns (default auto); the baseline is float32",
    )
    parser.add_argument(
        "--decode-weights", choices=("auto", "float32", "int8"), default="auto",
        help="CHATBOT_DECODE_WEIGHTS for our turns (default auto); the baseline is float32",
    )
    parser.add_argument(
        "--baseline-main-thread", action="store_true",
        help="run the baseline generate in the main thread (default: on the compute thread, "
        "where LocalGenerator generates; see knowledge/compute.py)",
    )
    parser.add_argument(
        "--queries", type=Path, default=DEFAULT_QUERIES,
        help="eval JSONL; in-scope cases without history are used (default "
        "bench/out/demo/queries.jsonl, written first by bench/demo_heldout.py)",
    )
    args = parser.parse_args(argv)
    if args.queries == DEFAULT_QUERIES:
        from demo_heldout import build

        build(DEFAULT_QUERIES.parent)

    import torch

    # What the header reports; build_services then keeps this thread on one core, and the
    # compute thread gets --threads through the settings.
    torch.set_num_threads(args.threads)
    header("turn latency (demo KB, bundled SmolLM2)")

    from chatbot.demo import ensure_demo_kb
    from chatbot.service import Delta, Final, Reset
    from chatbot.services import build_services, thresholds_from
    from chatbot.settings import Settings
    from chatbot.warmup import warm_up
    from knowledge import compute
    from knowledge.formats import read_files

    with tempfile.TemporaryDirectory(prefix="bench-turns-") as tmp:
        settings = Settings(
            data_dir=Path(tmp), database_url="", demo_kb=True, generator="local",
            torch_threads=args.threads, max_new_tokens=args.max_new_tokens,
            prefix_cache=not args.no_prefix_cache, prefill_dtype=args.prefill_dtype,
            decode_weights=args.decode_weights,
            **({} if args.prompt_lookup is None else {"prompt_lookup_tokens": args.prompt_lookup}),
        )
        t0 = time.perf_counter()
        services = build_services(settings)
        t_load = time.perf_counter() - t0
        ensure_demo_kb(services)
        t0 = time.perf_counter()
        services.retriever.index()
        t_index = time.perf_counter() - t0
        t_warm = warm_up(services)  # as `chatbot serve` does before it reports ready
        lm = services.chat.generator
        print(
            f"setup: build_services (DB, embedder, LM) {t_load:.1f} s, "
            f"demo KB index {t_index:.1f} s, warm-up {t_warm:.1f} s; torch threads now "
            f"{torch.get_num_threads()}; prefix cache "
            f"{len(lm.prefix) if lm.prefix is not None else 'off'} tokens; prompt lookup "
            f"{lm.prompt_lookup_tokens or 'off'}; prefill {lm.prefill_dtype}; decoding "
            f"{lm.decode_weights}"
        )

        fast_chat = services.chat
        gen_settings = settings.model_copy(update={"fast_path_threshold": 1.01})
        recorder = RecordingGenerator(services.chat.generator)
        gen_chat = replace(
            services.chat, settings=gen_settings, thresholds=thresholds_from(gen_settings),
            generator=recorder,
        )

        queries = load_queries(args.queries)
        # Canonical questions and paraphrases of the demo FAQ top up the fast-path pool.
        extra = [
            v for r in read_files([p for p in _demo_files() if p.suffix == ".jsonl"])
            for v in r.variants()
        ]
        fast_texts = screen(services, fast_chat, queries + extra, "fast", args.turns)
        # Customer phrasings first; canonical questions only when too few are answered.
        gen_texts = screen(services, gen_chat, queries + extra, "generate", args.gen_turns + 1)
        services.embedder._queries.clear()  # measured turns embed their query afresh

        # (a) fast path ------------------------------------------------------------------
        fast_chat.send_message(fast_chat.start_conversation(), "warm-up: how do I return an item?")
        fast_ms: list[float] = []
        not_fast = 0
        for text in fast_texts:
            cid = fast_chat.start_conversation()
            t0 = time.perf_counter()
            result = fast_chat.send_message(cid, text)
            fast_ms.append((time.perf_counter() - t0) * 1000)
            not_fast += result.decision != "answer" or result.model is not None
        from_queries = sum(t in queries for t in fast_texts)
        print(f"\n(a) fast-path turns: {len(fast_texts)} confident FAQ questions "
              f"({from_queries} from {args.queries.name}, {len(fast_texts) - from_queries} "
              f"canonical FAQ questions/paraphrases); send_message wall time")
        print(f"    {p50_p95(fast_ms)}   ({not_fast} turns did not take the fast path)")

        # (b) generated turns ------------------------------------------------------------
        if not gen_texts:
            print("\n(b) no in-scope query is answered at fast_path_threshold=1.01; skipped")
            return 0
        warm, gen_texts = gen_texts[0], gen_texts[1:]
        gen_chat.send_message(gen_chat.start_conversation(), warm)  # warm-up, not measured
        worker_tokens: list[int] = []  # new tokens the service's generate() really produced
        real_generate = lm.model.generate
        # The baseline is the plain float32 model: ours no longer holds its weights with int8.
        base_generate = real_generate
        if lm.decode_weights != "float32":
            from chatbot.generation.local import load_model

            base_model = load_model(settings.model, dtype=torch.float32).eval()
            base_model.generation_config.prompt_lookup_num_tokens = None  # plain decoding
            base_generate = base_model.generate

        def counting_generate(*a: Any, **kw: Any) -> Any:
            out = real_generate(*a, **kw)
            worker_tokens.append(int(out.shape[1] - kw["input_ids"].shape[1]))
            return out

        lm.model.generate = counting_generate
        recorder.calls.clear()
        total_ms: list[float] = []
        first_ms: list[float] = []
        gen_only_ms: list[float] = []
        base_ms: list[float] = []
        base_tokens: list[int] = []
        prompt_tokens: list[int] = []
        first_was_reset = fallbacks = grounded = 0
        rows = []
        # Each prompt: our turn, then the baseline on the same messages right after it, so
        # both see the same load on the machine.
        for text in gen_texts:
            cid = gen_chat.start_conversation()
            first: float | None = None
            t0 = time.perf_counter()
            result = None
            for event in gen_chat.stream_message(cid, text):
                if first is None and isinstance(event, Delta | Reset):
                    first = (time.perf_counter() - t0) * 1000
                    first_was_reset += isinstance(event, Reset)
                if isinstance(event, Final):
                    result = event.result
            total_ms.append((time.perf_counter() - t0) * 1000)
            first_ms.append(first if first is not None else float("nan"))
            assert result is not None
            fallbacks += result.fallback
            grounded += result.grounded is True
            rec = recorder.calls[-1] if recorder.calls else None
            rows.append((text, result, rec))
            if rec is None:
                continue
            gen_only_ms.append(rec.seconds * 1000)
            # (c) baseline: plain generate on the same prompt
            inputs = lm.prompt_ids(rec.messages).to(lm.device)

            def baseline(inputs: Any = inputs) -> Any:
                with torch.inference_mode():
                    return base_generate(
                        **inputs, max_new_tokens=args.max_new_tokens, do_sample=False,
                        pad_token_id=lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id,
                    )

            t0 = time.perf_counter()
            # On the compute thread, like ours: same OpenMP team, same cores.
            if args.baseline_main_thread:
                compute.all_cores()  # (its OpenMP team then slows the compute thread's)
                out = baseline()
            else:
                out = compute.run(baseline)
            base_ms.append((time.perf_counter() - t0) * 1000)
            prompt_tokens.append(int(inputs["input_ids"].shape[1]))
            base_tokens.append(int(out.shape[1] - inputs["input_ids"].shape[1]))
        lm.model.generate = real_generate
        n = len(gen_texts)
        from_queries = sum(t in queries for t in gen_texts)
        shown = [lm.count_tokens(rec.text) for _t, _r, rec in rows if rec is not None]
        print(f"\n(b) generated turns: {n} (fast_path_threshold=1.01, max_new_tokens="
              f"{args.max_new_tokens}, greedy, repetition_penalty {settings.repetition_penalty}); "
              f"{from_queries} from {args.queries.name}, {n - from_queries} canonical")
        print(f"    total turn           {p50_p95(total_ms)}")
        print(f"    first text event     {p50_p95(first_ms)}   "
              f"({first_was_reset} of {n} began with a Reset: first sentence not grounded)")
        print(f"    generator.stream     {p50_p95(gen_only_ms)}")
        model_first = [rec.first_piece * 1000 for _t, _r, rec in rows if rec is not None]
        print(f"    model's first token  {p50_p95(model_first)}   (time to the first streamed "
              "piece of generator.stream: prefill and one decode step)")
        print(f"    new tokens: read by the service p50 {percentile(shown, 50):.0f}, generated by "
              f"its worker thread p50 {percentile(worker_tokens, 50):.0f} "
              f"(max {max(worker_tokens, default=0)})")
        print(f"    fallback rate: {fallbacks}/{n} = {fallbacks / n:.0%} of generated answers "
              f"failed the groundedness check (grounded: {grounded}/{n})")

        where = "the main thread" if args.baseline_main_thread else "the compute thread, like ours"
        print(f"\n(c) baseline: model.generate(**inputs, max_new_tokens={args.max_new_tokens}, "
              f"do_sample=False) on the same {len(base_ms)} prompts, each right after our turn, "
              f"in {where}")
        print(f"    plain generate       {p50_p95(base_ms)}")
        print(f"    prompt tokens p50 {percentile(prompt_tokens, 50):.0f} "
              f"(max {max(prompt_tokens, default=0)}); baseline new tokens p50 "
              f"{percentile(base_tokens, 50):.0f}")
        tps = [t / (ms / 1000) for t, ms in zip(base_tokens, base_ms, strict=True) if ms > 0]
        print(f"    baseline rate p50 {percentile(tps, 50):.1f} new tokens/s (incl. prefill)")
        for label, pct in (("p50", 50), ("p95", 95)):
            b = percentile(base_ms, pct)
            print(f"    ratio baseline/ours {label}: total turn {b / percentile(total_ms, pct):.2f}"
                  f", generator.stream only {b / percentile(gen_only_ms, pct):.2f}")

        out_dir = BENCH / "out"
        out_dir.mkdir(exist_ok=True)
        with (out_dir / "turn_latency_answers.jsonl").open("w", encoding="utf-8") as fh:
            for text, result, rec in rows:
                fh.write(json.dumps({
                    "query": text, "generated": rec.text if rec else None,
                    "reply": result.text, "fallback": result.fallback,
                    "grounded": result.grounded, "latency_ms": round(result.latency_ms, 1),
                }, ensure_ascii=False) + "\n")
        print("\ngenerated answers written to bench/out/turn_latency_answers.jsonl")
        footer()
        services.engine.dispose()
    return 0


def _demo_files() -> list[Path]:
    from chatbot.demo import demo_files

    return demo_files()


if __name__ == "__main__":
    raise SystemExit(main())
