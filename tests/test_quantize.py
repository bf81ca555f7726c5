"""``chatbot model quantize``: int8 dynamic quantization, the saved folder, serving it, and the
quality/speed comparison. Mechanics on a tiny random Llama with the bundled tokenizer (fast);
one test on the real bundled SmolLM2 with a few tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY_KB_FILES, assert_user_error, run_cli, save_tiny_llama

from chatbot.generation.base import GenerationParams

MESSAGES = [{"role": "user", "content": "How long does delivery take?"}]
GREEDY = GenerationParams(max_new_tokens=6, temperature=0.0, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, randomly initialised 2-layer Llama saved with the bundled tokenizer."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def logits(model: Any, tokenizer: Any) -> Any:
    import torch

    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    with torch.inference_mode():
        return model(**ids).logits


def test_a_quantized_folder_loads_the_same_int8_model_and_serves(tiny_model: Path, tmp_path: Path):
    import torch

    from chatbot.generation import quantize as q
    from chatbot.generation.local import LocalGenerator, load_pretrained

    tokenizer, fp32 = load_pretrained(str(tiny_model), dtype=torch.float32)
    int8 = q.quantize(fp32)
    linear = sum(isinstance(m, torch.nn.Linear) for m in fp32.modules())
    assert q.quantized_layers(int8) == linear == 2 * 7 + 1  # q k v o gate up down, lm_head
    assert q.quantized_layers(fp32) == 0  # the fp32 model is left as it was
    out = q.save_quantized(int8, tokenizer, tmp_path / "int8", base=str(tiny_model),
                           keep_lm_head=False)
    marker = json.loads((out / q.MARKER).read_text())
    assert marker["method"] == q.METHOD and marker["quantized_layers"] == linear
    assert (out / q.WEIGHTS).is_file() and not list(out.glob("*.safetensors"))
    assert q.is_quantized(out) and not q.is_quantized(tiny_model)

    served = LocalGenerator(str(out), device="auto")
    assert served.device == "cpu" and q.quantized_layers(served.model) == linear
    assert torch.equal(logits(served.model, tokenizer), logits(int8, tokenizer))
    # int8 weights change the numbers a little, not the model: close to fp32.
    assert not torch.equal(logits(int8, tokenizer), logits(fp32, tokenizer))
    assert torch.allclose(logits(int8, tokenizer), logits(fp32, tokenizer), atol=0.05)
    text = "".join(served.stream(MESSAGES, GREEDY))
    assert text == "".join(LocalGenerator(str(out)).stream(MESSAGES, GREEDY))  # deterministic

    head = q.quantize(fp32, keep_lm_head=True)
    assert q.quantized_layers(head) == linear - 1
    assert isinstance(head.lm_head, torch.nn.Linear)
    kept = q.save_quantized(head, tokenizer, tmp_path / "head", base="x", keep_lm_head=True)
    assert torch.equal(logits(q.load_quantized(kept), tokenizer), logits(head, tokenizer))


def test_a_damaged_folder_is_a_clear_error(tiny_model: Path, tmp_path: Path):
    from chatbot.errors import ModelUnavailable
    from chatbot.generation import quantize as q
    from chatbot.generation.local import load_pretrained

    tokenizer, fp32 = load_pretrained(str(tiny_model))
    out = q.save_quantized(q.quantize(fp32), tokenizer, tmp_path / "int8", base="x",
                           keep_lm_head=False)
    (out / q.WEIGHTS).write_bytes(b"not a state dict")
    with pytest.raises(ModelUnavailable, match="(?i)quantize it again"):
        q.load_quantized(out)


def test_the_command_quantizes_and_compares_quality_and_speed(tiny_model: Path, data_dir: Path,
                                                              tmp_path: Path):
    out = tmp_path / "int8"
    proc = run_cli("model", "quantize", "--model", str(tiny_model), "--output", str(out),
                   "--kb", str(TINY_KB_FILES[0]), "--limit", "2", "--speed-prompts", "2",
                   "--new-tokens", "4", "--json", data=data_dir)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["quantized_layers"] == 15 and (out / "chatbot-quantized.json").is_file()
    rows = result["comparison"]["models"]
    assert set(rows) == {"fp32", "int8"} and rows["int8"]["model"] == str(out)
    for row in rows.values():
        assert row["ttft_ms"] > 0 and row["decode_tokens_per_s"] > 0 and row["prompts"] == 2
        assert row["perplexity"] > 1 and row["n_model"] >= 0
        assert {"grounded_rate", "fallback_rate", "rouge_l_generated"} <= set(row)
    assert rows["int8"]["memory_mb"] < rows["fp32"]["memory_mb"]
    assert result["comparison"]["cases"] == 2

    again = run_cli("model", "quantize", "--model", str(tiny_model), "--output", str(out),
                    "--no-compare", data=data_dir)
    assert_user_error(again, "not empty")
    twice = run_cli("model", "quantize", "--model", str(out), "--output", str(tmp_path / "x"),
                    "--no-compare", data=data_dir)
    assert_user_error(twice, "already int8-quantized")
    trained = run_cli("train", "--base", str(out), "--max-steps", "1", data=data_dir)
    assert_user_error(trained, "int8 copy made for serving")


@pytest.mark.slow
def test_the_bundled_model_quantized_serves_a_few_tokens(tmp_path: Path):
    import torch

    from chatbot.generation import quantize as q
    from chatbot.generation.local import LocalGenerator, load_pretrained, repetition_kwargs

    tokenizer, fp32 = load_pretrained("bundled", dtype=torch.float32)
    int8 = q.quantize(fp32)
    assert q.quantized_layers(int8) == 30 * 7 + 1  # SmolLM2-135M: 30 blocks and lm_head
    out = q.save_quantized(int8, tokenizer, tmp_path / "smollm2-int8", base="bundled",
                           keep_lm_head=False)
    assert q.folder_megabytes(out) < 0.6 * q.parameter_megabytes(fp32)
    served = LocalGenerator(str(out))
    params = GenerationParams(max_new_tokens=4, temperature=0.0)
    text = "".join(served.stream(MESSAGES, params))
    assert text.strip()
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    with torch.inference_mode():
        direct = int8.generate(**ids, max_new_tokens=4, do_sample=False,
                               **repetition_kwargs(1.1, ids["input_ids"].shape[1]))
    assert tokenizer.decode(direct[0, ids["input_ids"].shape[1]:], skip_special_tokens=True) == text
    assert served.tokenizer.chat_template == tokenizer.chat_template
