"""Paths of the test fixtures, helpers to run the installed ``chatbot`` command, a test clock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
TINY_FAQ = FIXTURES / "shop_faq.jsonl"
CARE_GUIDE = FIXTURES / "care-guide.md"
TINY_KB_FILES = (TINY_FAQ, CARE_GUIDE)
QUERIES = FIXTURES / "queries.jsonl"

CHATBOT_BIN = Path(sys.executable).parent / "chatbot"


def run_cli(
    *args: str,
    data: Path,
    input: str | None = None,
    timeout: float = 240,
    cwd: Path | None = None,
    database_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``chatbot`` entry point as a user would (``database_url``: as
    ``CHATBOT_DATABASE_URL``; a SQLite one is the data dir's default file anyway)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(CHATBOT_DATA_DIR=str(data), CHATBOT_DEMO_KB="false")
    if database_url:
        env["CHATBOT_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(CHATBOT_BIN), *args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=timeout,
        cwd=cwd,
    )


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit status 2, a message on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip(), "the error message belongs on stderr"
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


class Clock:
    """A clock that moves only when a test moves it (``clock.now += seconds``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# The keys of a ``chatbot eval`` report that CONTRACT.md names.
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


def save_tiny_llama(folder: Path) -> Path:
    """A real, randomly initialised 2-layer Llama saved in ``folder`` with the bundled tokenizer
    (and its chat template): loads and serves like a model folder, in a fraction of a second."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from chatbot.generation.local import load_tokenizer

    tokenizer = load_tokenizer("bundled")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
