"""Fine-tuning the answer model: the label mask, the labelled-positions loss, and real training
runs (the training examples are in test_training_examples.py).

Mechanics (DDP, LoRA, search) run on a tiny Llama model built from a config with the bundled
SmolLM2 tokenizer and chat template, so they take seconds; one test trains the real SmolLM2 for
a few steps and serves the result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import TINY_FAQ, assert_user_error, run_cli

from chatbot.errors import InvalidInput
from chatbot.training.arguments import micro_batches, resolve_precision
from chatbot.training.tokens import IGNORE, Collator, encode_chat
from chatbot.training.trainer import TrainOptions
from knowledge import compute


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from chatbot.generation.local import load_tokenizer

    return load_tokenizer("bundled")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """A real, randomly initialised 2-layer Llama saved with the bundled tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# --- the label mask ---------------------------------------------------------------------


def test_loss_covers_the_assistant_reply_and_its_end_of_turn_only(tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "You answer from passages.\n<passages>\n[a] A\nx\n</passages>"},
        {"role": "user", "content": "When will I get my refund?"},
        {"role": "assistant", "content": "Within 5 business days."},
    ]
    ids, labels = encode_chat(tokenizer, messages)
    assert len(ids) == len(labels)
    learned = [t for t in labels if t != IGNORE]
    first = labels.index(learned[0])
    assert all(t == IGNORE for t in labels[:first])
    assert labels[first:] == ids[first:]
    assert tokenizer.decode(learned) == "Within 5 business days.<|im_end|>\n"
    # The masked part is exactly what serving feeds the model before it starts to reply.
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(ids[:first]) == prompt


def test_a_chat_must_end_with_the_assistant(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="last message"):
        encode_chat(tokenizer, [{"role": "user", "content": "hi"}])


def test_collator_pads_without_learning_the_padding() -> None:
    batch = Collator(pad_token_id=0)(
        [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_the_loss_from_labelled_logits_only_is_the_models_own_loss(tokenizer: Any,
                                                                   tiny_model: Path) -> None:
    """Same loss and gradient as the full-vocabulary-at-every-position loss, on a padded batch
    of two chats whose answers sit at different positions; with PEFT's LoRA wrapper too."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from chatbot.training.labelled_loss import keeps_logits, labelled_loss

    def chat(question: str, answer: str) -> dict[str, list[int]]:
        ids, labels = encode_chat(tokenizer, [
            {"role": "system", "content": "Answer from the passages."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ])
        return {"input_ids": ids, "labels": labels}

    batch = Collator(tokenizer.pad_token_id)([
        chat("When will I get my refund?", "Within 5 business days."),
        chat("Do you ship to Canada, and how long does it take to get there?", "Yes, 6 to 9 days."),
    ])
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    for wrapped in (model, get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"]))):
        assert keeps_logits(wrapped)
        wrapped.zero_grad()
        full = wrapped(**batch).loss
        full.backward()
        grads = [p.grad.clone() for p in wrapped.parameters() if p.requires_grad]
        wrapped.zero_grad()
        loss, outputs = labelled_loss(wrapped, batch)
        loss.backward()
        assert outputs.logits.shape[1] < batch["input_ids"].shape[1] / 2  # fewer positions
        assert loss.item() == pytest.approx(full.item(), rel=1e-5)
        again = [p.grad for p in wrapped.parameters() if p.requires_grad]
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads, again,
                                                                            strict=True))


# --- training runs ----------------------------------------------------------------------


def _import_tiny_kb(data: Path) -> None:
    proc = run_cli("kb", "import", str(TINY_FAQ), data=data)
    assert proc.returncode == 0, proc.stderr


def test_bad_options_are_refused_before_any_work(data_dir: Path) -> None:
    _import_tiny_kb(data_dir)
    assert_user_error(
        run_cli("train", "--validation-split", "1.5", "--output", "x", data=data_dir),
        "--validation-split",
    )
    assert_user_error(
        run_cli("train", "--search", "2", "--validation-split", "0", "--output", "x",
                data=data_dir),
        "--search",
    )
    assert_user_error(
        run_cli("train", "--max-batch-tokens", "0", "--output", "x", data=data_dir),
        "--max-batch-tokens must be at least 1",
    )
    assert_user_error(
        run_cli("train", "--base", str(data_dir / "missing.gguf"), "--output", "x",
                data=data_dir),
        "missing.gguf",
    )
    if not torch.cuda.is_available():
        assert_user_error(
            run_cli("train", "--precision", "fp16", "--output", "x", data=data_dir),
            "--precision fp16 needs a GPU",
        )


def test_auto_precision_is_bf16_only_where_the_cpu_multiplies_it_natively(monkeypatch) -> None:
    from knowledge import compute

    monkeypatch.setattr(compute, "native_bfloat16", lambda: True)
    assert resolve_precision("auto", cuda=False) == "bf16"
    monkeypatch.setattr(compute, "native_bfloat16", lambda: False)
    assert resolve_precision("auto", cuda=False) == "fp32"
    assert resolve_precision("bf16", cuda=False) == "bf16"
    assert resolve_precision("fp32", cuda=True) == "fp32"
    with pytest.raises(InvalidInput, match="needs a GPU"):
        resolve_precision("fp16", cuda=False)
    with pytest.raises(InvalidInput, match="--precision must be one of"):
        TrainOptions(base="bundled", output=Path("x"), precision="int4").check()


@pytest.mark.parametrize(("batch", "longest", "budget", "expected"), [
    (8, 735, 8192, (8, 1)),     # the demo KB: the whole batch in one pass
    (8, 1531, 8192, (4, 2)),    # COVID-QA's long answers: two passes of four
    (8, 5000, 4096, (1, 8)),    # an example over the budget still gets a pass of its own
    (6, 1000, 4000, (3, 2)),    # the pass divides the batch: 3, not 4
    (7, 1000, 4000, (1, 7)),
])
def test_a_step_is_split_into_passes_under_the_token_budget(
        batch: int, longest: int, budget: int, expected: tuple[int, int]) -> None:
    assert micro_batches(batch, longest, budget) == expected


def test_accumulated_passes_train_as_one_batch_would(data_dir: Path, tiny_model: Path,
                                                     tmp_path: Path) -> None:
    """Two steps of 4 examples, in one pass each or in four passes of one: the same losses
    and the same weights (a loss averaged per pass instead of over the step would differ)."""
    from safetensors.torch import load_file

    _import_tiny_kb(data_dir)
    reports, weights = [], []
    for budget in ("100000", "1"):
        out = tmp_path / f"budget-{budget}"
        proc = run_cli(
            "train", "--base", str(tiny_model), "--output", str(out), "--max-steps", "2",
            "--batch-size", "4", "--max-batch-tokens", budget, "--validation-split", "0",
            "--precision", "fp32", "--json", data=data_dir,
        )
        assert proc.returncode == 0, proc.stderr
        reports.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        weights.append(load_file(out / "model.safetensors"))
    whole, split = (r["hyperparameters"] for r in reports)
    assert (whole["examples_per_pass"], whole["gradient_accumulation_steps"]) == (4, 1)
    assert (split["examples_per_pass"], split["gradient_accumulation_steps"]) == (1, 4)
    assert reports[1]["train_loss"] == pytest.approx(reports[0]["train_loss"], rel=1e-3)
    start = load_file(tiny_model / "model.safetensors")
    moved = [name for name in start if not torch.equal(start[name], weights[0][name])]
    assert moved, "training changed the weights"
    for name in moved:
        assert torch.allclose(weights[0][name], weights[1][name], rtol=1e-3, atol=1e-6), name


def test_lora_training_writes_a_merged_model_that_loads(data_dir: Path, tiny_model: Path,
                                                        tmp_path: Path) -> None:
    _import_tiny_kb(data_dir)
    out = tmp_path / "tuned"
    proc = run_cli(
        "train", "--base", str(tiny_model), "--output", str(out), "--lora", "--epochs", "2",
        "--batch-size", "4", "--validation-split", "0.3", "--json", data=data_dir,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["hyperparameters"]["lora"] is True
    assert report["precision"] in {"fp32", "bf16"}
    # Building the examples embeds queries on one core; the training itself gets them all.
    assert report["threads"] == compute.run(torch.get_num_threads)
    assert 0 < report["example_tokens"]["mean"] <= report["example_tokens"]["max"]
    assert [row["epoch"] for row in report["epochs"]] == [1, 2]
    assert all("validation_loss" in row and "train_loss" in row for row in report["epochs"])
    assert report["validation_perplexity"] > 1
    # The report's validation loss is the kept (best) epoch's, not a second scoring of it.
    assert report["validation_loss"] == min(row["validation_loss"] for row in report["epochs"])
    assert not list(out.glob("adapter_*")), "LoRA adapters are merged into the weights"
    assert not (out / ".checkpoints").exists()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"base_model: {tiny_model}" in card and "Knowledge-base version: 1" in card
    from chatbot.generation.local import LocalGenerator

    lm = LocalGenerator(str(out))
    assert lm.tokenizer.chat_template  # the chat template travels with the model
    # ...and so does its decoding: prompt lookup, which pays for a model that quotes passages
    # (CHATBOT_PROMPT_LOOKUP_TOKENS=0 still turns it off).
    assert json.loads((out / "generation_config.json").read_text())[
        "prompt_lookup_num_tokens"] == 10
    assert lm.prompt_lookup_tokens == 10
    assert LocalGenerator(str(out), prompt_lookup_tokens=0).prompt_lookup_tokens == 0


def test_search_picks_hyper_parameters_by_validation_loss(data_dir: Path, tiny_model: Path,
                                                          tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    _import_tiny_kb(data_dir)
    proc = run_cli(
        "train", "--base", str(tiny_model), "--output", str(tmp_path / "searched"),
        "--search", "2", "--epochs", "2", "--batch-size", "8", "--validation-split", "0.3",
        "--json", data=data_dir,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    trials = report["search_trials"]
    assert len(trials) == 2
    best = min(trials, key=lambda t: t["validation_loss"])
    assert report["hyperparameters"]["learning_rate"] == pytest.approx(
        best["params"]["learning_rate"]
    )


def test_two_cpu_processes_train_data_parallel(data_dir: Path, tiny_model: Path,
                                               tmp_path: Path) -> None:
    _import_tiny_kb(data_dir)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun comes with torch"
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(CHATBOT_DATA_DIR=str(data_dir), CHATBOT_DEMO_KB="false", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "chatbot", "train",
         "--base", str(tiny_model), "--output", str(out), "--max-steps", "3",
         "--batch-size", "2", "--validation-split", "0", "--json"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"')]
    assert len(reports) == 1, "only the first process reports and saves"
    assert reports[0]["processes"] == 2
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_few_real_steps_on_smollm2_give_a_model_that_serves(data_dir: Path,
                                                              tmp_path: Path) -> None:
    _import_tiny_kb(data_dir)
    out = tmp_path / "smollm2-tuned"
    proc = run_cli(
        "train", "--output", str(out), "--max-steps", "2", "--batch-size", "2",
        "--validation-split", "0.2", data=data_dir, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Saved to" in proc.stdout and "validation loss" in proc.stdout
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config  # the GGUF base is saved as plain weights
    served = _ask_with_model(out, data_dir)
    assert served["decision"] == "answer"
    assert served["sources"][0]["id"] == "refund-time"


def _ask_with_model(model: Path, data: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(CHATBOT_DATA_DIR=str(data), CHATBOT_DEMO_KB="false", CHATBOT_MODEL=str(model),
               CHATBOT_FAST_PATH_THRESHOLD="2")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "chatbot"), "ask", "When will I get my refund?",
         "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["grounded"] is not None, "the tuned model generated the answer"
    return result

