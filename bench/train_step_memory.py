"""Memory and time of one training step: the model's own loss against the loss from labelled
positions' logits only (``chatbot.training.labelled_loss``), each in a fresh process.

A batch of ``--batch`` token sequences of ``--tokens`` tokens whose last ``--answer`` tokens
are labelled (the shape of a KB example: a long prompt, a short answer), through the bundled
model (or ``--model``) with bf16 autocast where the CPU multiplies bfloat16 natively; peak RSS
and the time of one forward and backward pass.

    .venv/bin/python bench/train_step_memory.py [--batch 8 --tokens 700 --answer 120]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

from _common import footer, header


def step(loss_kind: str, args: argparse.Namespace) -> None:
    import torch

    from chatbot.generation.local import load_pretrained
    from chatbot.training.labelled_loss import labelled_loss
    from knowledge import compute

    _, model = load_pretrained(args.model, dtype=torch.float32)
    model.train()
    torch.manual_seed(0)
    ids = torch.randint(100, 40000, (args.batch, args.tokens))
    labels = torch.full_like(ids, -100)
    labels[:, -args.answer:] = ids[:, -args.answer:]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=compute.native_bfloat16()):
        loss = model(**batch).loss if loss_kind == "full" else labelled_loss(model, batch)[0]
    loss.backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{loss_kind:9s} loss {loss.item():.3f}  peak RSS {peak:5.2f} GB "
          f"(model loaded {loaded:.2f} GB)  step {seconds:5.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=700)
    parser.add_argument("--answer", type=int, default=120)
    parser.add_argument("--only", choices=["full", "labelled"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        step(args.only, args)
        return 0
    header("training step memory")
    print(f"batch {args.batch} x {args.tokens} tokens, {args.answer} labelled", flush=True)
    for kind in ("full", "labelled"):  # a process each: peak RSS never goes down
        subprocess.run([sys.executable, __file__, *(argv or sys.argv[1:]), "--only", kind],
                       check=True)
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
