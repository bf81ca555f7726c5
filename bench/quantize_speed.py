"""Speed of the fp32 answer model and int8 copies of it (``chatbot model quantize``), measured
interleaved: each round times every model once, so other work on the machine slows them alike,
and the best round of each is kept.

Per model: time to first token and decode tokens/s of one greedy generation forced to
``--new-tokens`` tokens on a prompt in the serving layout (``chatbot.model_compare``: the
system prompt, three demo-KB passages, the question).

    .venv/bin/python bench/quantize_speed.py data/models/answer-int8 [more int8 folders]
"""

from __future__ import annotations

import argparse
import json

from _common import footer, header, load_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="int8 folders written by chatbot model quantize")
    parser.add_argument("--fp32", default="bundled", help="the fp32 model (default: bundled)")
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--prompts", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from chatbot.demo import demo_files
    from chatbot.generation.local import LocalGenerator
    from chatbot.model_compare import measure_speed, speed_prompts
    from chatbot.settings import Settings
    from knowledge.formats import read_files

    header("int8 vs fp32 answer model speed")
    models = {"fp32": LocalGenerator(args.fp32, device="cpu")}
    for folder in args.folders:
        models[folder] = LocalGenerator(folder, device="cpu")
    prompts = speed_prompts(read_files(demo_files()), args.prompts, models["fp32"].count_tokens,
                            Settings())
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, generator in models.items():
            run = measure_speed(generator, prompts, args.new_tokens, repeats=1)
            kept = best.setdefault(name, run)
            kept["ttft_ms"] = min(kept["ttft_ms"], run["ttft_ms"])
            kept["decode_tokens_per_s"] = max(kept["decode_tokens_per_s"], run["decode_tokens_per_s"])
        print(load_line())
    base = best["fp32"]["decode_tokens_per_s"]
    for name, row in best.items():
        print(f"{name}: time to first token {row['ttft_ms']:.0f} ms, decode "
              f"{row['decode_tokens_per_s']:.1f} tokens/s ({row['decode_tokens_per_s'] / base:.2f}x), "
              f"prompt {row['prompt_tokens']} tokens")
    print(json.dumps(best))
    footer()


if __name__ == "__main__":
    main()
