"""Fine-tuning the answer model: training data, the label mask, and real training runs.

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
from chatbot.prompts import HANDOFF_REPLY
from chatbot.training.arguments import resolve_precision
from chatbot.training.data import (
    DataOptions,
    ExampleSet,
    PromptShape,
    answer_check,
    build_examples,
    read_conversations,
)
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


# --- training examples ------------------------------------------------------------------


def _shape(services: Any) -> PromptShape:
    return PromptShape.from_settings(services.settings, services.chat.generator.count_tokens)


def _examples(services: Any, **options: Any) -> ExampleSet:
    version = services.retriever.index().version
    return build_examples(
        services.knowledge.published(version),
        lambda q, k: services.retriever.search(q, k),
        _shape(services),
        DataOptions(**options),
    )


def test_training_prompts_are_the_prompts_serving_sends(make_services: Any) -> None:
    services = make_services(fast_path_threshold=2.0)  # every answer goes through the model
    examples = _examples(services, abstain_share=0, followup_share=0)
    question = "When will I get my refund?"
    cid = services.chat.start_conversation()
    result = services.chat.send_message(cid, question)
    assert result.decision == "answer"
    served = services.chat.generator.prompts[-1]
    trained = [ex for ex in examples.examples if ex.messages[-2]["content"] == question]
    assert len(trained) == 1
    assert trained[0].messages[:-1] == served
    assert trained[0].messages[-1]["role"] == "assistant"


def test_examples_cover_answers_abstentions_and_follow_ups(make_services: Any) -> None:
    services = make_services()
    examples = _examples(services, abstain_share=1.0, followup_share=1.0, seed=3)
    counts = examples.counts()
    assert counts["answer"] > 0 and counts["abstain"] > 0 and counts["followup"] > 0
    entries = {e.id: e for e in services.knowledge.published() if e.kind == "faq"}
    for ex in examples.examples:
        system, target = ex.messages[0]["content"], ex.messages[-1]["content"]
        if ex.kind in ("answer", "followup"):
            assert target == entries[ex.group].answer
            assert f"[{ex.group}]" in system  # the answer is in the passages shown
        if ex.kind == "abstain":
            assert target == HANDOFF_REPLY
            assert f"[{ex.group}]" not in system  # ...and here it is not
        if ex.kind == "followup":
            assert [m["role"] for m in ex.messages] == [
                "system", "user", "assistant", "user", "assistant"
            ]


def test_no_abstain_example_where_other_passages_state_the_answer(make_services: Any,
                                                                  tiny_records: list[Any]) -> None:
    """A document that repeats an FAQ entry: "I can't answer" beside its facts is a wrong label,
    and it taught the demo model to abstain where it should answer."""
    from knowledge.records import Entry

    refund = next(r for r in tiny_records if getattr(r, "id", "") == "refund-time")
    copy = Entry(id="refund-copy", question="How are refunds paid out?", answer=refund.answer)
    services = make_services(records=[*tiny_records, copy])
    options = DataOptions(abstain_share=1.0, followup_share=0, seed=3)
    version = services.retriever.index().version
    args = (services.knowledge.published(version),
            lambda q, k: services.retriever.search(q, k), _shape(services), options)
    plain = build_examples(*args)
    checked = build_examples(*args, states_answer=answer_check(
        services.embedder.embed_sentences, services.settings.grounding_threshold,
        _shape(services).min_score,
    ))

    twin = {"refund-time": "[refund-copy]", "refund-copy": "[refund-time]"}

    def refund_abstains(examples: ExampleSet) -> list[Any]:
        return [ex for ex in examples.examples if ex.kind == "abstain"
                and ex.group in twin and twin[ex.group] in ex.messages[0]["content"]]

    assert refund_abstains(plain), "without the check, the copy's passage makes a wrong label"
    assert not refund_abstains(checked)
    assert checked.skipped_abstain >= len(refund_abstains(plain))
    assert checked.counts()["answer"] == plain.counts()["answer"]


def test_validation_split_keeps_each_entry_on_one_side(make_services: Any) -> None:
    examples = _examples(make_services(), abstain_share=1.0)
    train, val = examples.split(0.3, seed=1)
    assert train and val
    assert not {ex.group for ex in train} & {ex.group for ex in val}
    assert len(train) + len(val) == len(examples.examples)
    with pytest.raises(Exception, match="validation-split"):
        examples.split(1.0, seed=1)


def test_rated_up_replies_from_exported_conversations(tmp_path: Path, make_services: Any) -> None:
    export = tmp_path / "conversations.jsonl"
    rows = [
        {"id": "c1", "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "When will I get my refund?"},
            {"role": "assistant", "content": "Within 5 business days.", "rating": "up"},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": "You're welcome!", "rating": "down"},
        ]},
    ]
    export.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    exchanges = read_conversations(export)
    assert len(exchanges) == 1
    assert exchanges[0].question == "When will I get my refund?"
    assert exchanges[0].history == (("user", "hello"), ("assistant", "Hi! How can I help?"))
    services = make_services()
    version = services.retriever.index().version
    built = build_examples(
        services.knowledge.published(version),
        lambda q, k: services.retriever.search(q, k),
        _shape(services),
        DataOptions(abstain_share=0, followup_share=0),
        exchanges,
    )
    chats = [ex for ex in built.examples if ex.kind == "conversation"]
    assert len(chats) == 1
    assert [m["content"] for m in chats[0].messages[1:]] == [
        "hello", "Hi! How can I help?", "When will I get my refund?", "Within 5 business days."
    ]

    export.write_text('{"id": "c2"}\n', encoding="utf-8")
    with pytest.raises(Exception, match=r"conversations.jsonl:1: .*'messages'"):
        read_conversations(export)


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

