"""Int8 decoding with bfloat16 prompt passes (``chatbot.generation.int8_decode``).

The kernel is real (torch's int8 weight-only matrix product), the models are a tiny random
Llama and the bundled SmolLM2; nothing is faked."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import save_tiny_llama

from chatbot.generation import int8_decode
from chatbot.generation.base import GenerationParams

pytestmark = pytest.mark.skipif(not int8_decode.int8_decode_available(),
                                reason="this torch has no int8 weight-only kernel")
GREEDY = GenerationParams(max_new_tokens=12, temperature=0.0, repetition_penalty=1.0)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def test_rows_are_quantized_to_their_own_scale() -> None:
    weight = torch.tensor([[1.27, -0.6, 0.0], [-254.0, 127.0, 2.0]])
    q, scale = int8_decode.quantize_rows(weight)
    assert q.dtype == torch.int8 and scale.dtype == torch.bfloat16
    assert q.tolist() == [[127, -60, 0], [-127, 64, 1]]  # each row's largest value is 127
    assert scale.float().tolist() == pytest.approx([0.01, 2.0], rel=0.01)
    zeros, zero_scale = int8_decode.quantize_rows(torch.zeros(2, 3))
    assert zeros.abs().sum() == 0 and bool((zero_scale > 0).all())  # no division by zero


@pytest.mark.parametrize("rows", [1, 3, int8_decode.INT8_ROWS + 5])
def test_a_mixed_layer_computes_the_linear_layer(rows: int) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=True)
    q, scale = int8_decode.quantize_rows(linear.weight)
    mixed = int8_decode.MixedLinear(linear, q, scale, linear.weight.detach().to(torch.bfloat16))
    x = torch.randn(1, rows, 64)
    with torch.inference_mode():
        got, want = mixed(x), linear(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert torch.allclose(got, want, atol=0.03 * want.abs().max().item())


def test_the_bfloat16_weight_is_packed_and_computes_as_the_plain_one() -> None:
    from knowledge import packed_linear

    if not packed_linear.usable():
        pytest.skip("this torch build has no oneDNN bfloat16 weight packing")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=True)
    q, scale = int8_decode.quantize_rows(linear.weight)
    bf16 = linear.weight.detach().to(torch.bfloat16)
    packed = int8_decode.MixedLinear(linear, q, scale, bf16)
    plain = int8_decode.MixedLinear(linear, q, scale, bf16, pack=False)
    assert packed.packed is not None and packed.bf16 is None
    assert plain.packed is None and plain.bf16 is bf16
    x = torch.randn(2, int8_decode.INT8_ROWS + 7, 64)
    with torch.inference_mode():
        assert torch.equal(packed(x), plain(x))
        assert torch.equal(packed(x[:, :1]), plain(x[:, :1]))  # one token: int8 in both


def test_a_model_decodes_with_int8_and_keeps_no_float32_copy(tiny_model: Path) -> None:
    from chatbot.generation.local import load_model

    model = load_model(str(tiny_model), dtype=torch.float32).eval()
    before = int8_decode.megabytes(model)
    ids = torch.randint(0, model.config.vocab_size, (1, 20),
                        generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        plain, plain_step = model(ids).logits, model(ids[:, -1:]).logits
    counts = int8_decode.convert(model)
    assert counts == {"converted": 2 * 7 + 1, "kept_float32": 0}  # 7 per layer + output layer
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # only the norms are left
    # float32 (4 bytes) became int8 + bfloat16 (3 bytes), the embeddings bfloat16 (2 bytes).
    assert int8_decode.megabytes(model) < 0.8 * before
    with torch.inference_mode():
        prompt = model(ids).logits  # 20 rows: the bfloat16 weights
        step = model(ids[:, -1:]).logits  # 1 row: the int8 ones
    assert (prompt.argmax(-1) == plain.argmax(-1)).float().mean() >= 0.9
    assert torch.allclose(prompt.softmax(-1), plain.softmax(-1), atol=0.02)
    assert torch.allclose(step.softmax(-1), plain_step.softmax(-1), atol=0.02)


def test_layers_of_a_width_the_kernel_gets_wrong_stay_float32() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(24, 32), torch.nn.Linear(32, 8))
    model.config = type("Config", (), {"tie_word_embeddings": False})()
    model.get_input_embeddings = lambda: None
    model.get_output_embeddings = lambda: None
    assert int8_decode.convert(model) == {"converted": 1, "kept_float32": 1}
    assert isinstance(model[0], torch.nn.Linear)  # 24 inputs: not a multiple of 16
    assert isinstance(model[1], int8_decode.MixedLinear)


def test_the_setting_resolves_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from knowledge import compute

    assert int8_decode.resolve_decode_weights("int8", "cuda") == "float32"
    assert int8_decode.resolve_decode_weights("int8", "cpu") == "int8"
    assert int8_decode.resolve_decode_weights("float32", "cpu") == "float32"
    monkeypatch.setattr(compute, "amx", lambda: True)
    assert int8_decode.resolve_decode_weights("auto", "cpu") == "int8"
    monkeypatch.setattr(compute, "amx", lambda: False)
    assert int8_decode.resolve_decode_weights("auto", "cpu") == "float32"


def test_int8_with_a_float32_prefill_is_refused() -> None:
    from pydantic import ValidationError

    from chatbot.settings import Settings

    with pytest.raises(ValidationError, match="CHATBOT_DECODE_WEIGHTS=int8 reads prompts"):
        Settings(decode_weights="int8", prefill_dtype="float32")
    assert Settings(decode_weights="int8").decode_weights == "int8"


def test_a_generator_serves_with_int8_weights(tiny_model: Path) -> None:
    from chatbot.generation.local import LocalGenerator

    lm = LocalGenerator(str(tiny_model), device="cpu", decode_weights="int8")
    assert lm.decode_weights == "int8" and lm.prefill_dtype == "bfloat16"
    # The prompt is read by a bfloat16 twin of the decoder that shares the int8 layers'
    # bfloat16 weights: it holds only the norms' own (a few kB here).
    assert lm.prefill is not None and lm.prefill.megabytes() < 0.1
    messages = [{"role": "system", "content": "You answer from the passages. " * 8},
                {"role": "user", "content": "Can I get it delivered to Canada?"}]
    streamed = "".join(lm.stream(messages, GREEDY))  # from the prefix cache, 1 row a step
    inputs = lm.prompt_ids(messages)
    with torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=12, do_sample=False)
    plain = lm.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert streamed.strip() == plain.strip()
    assert LocalGenerator(str(tiny_model), device="cpu",
                          prefill_dtype="float32").decode_weights == "float32"  # auto follows


def _answer_nll(model: Any, tokenizer: Any, entries: list[dict[str, Any]]) -> tuple[float, float]:
    """(mean negative log-likelihood per answer token, share of answer tokens predicted)."""
    total = hits = count = 0.0
    for entry in entries:
        messages = [{"role": "system", "content": f"Answer from the passage.\n{entry['answer']}"},
                    {"role": "user", "content": entry["question"]}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)["input_ids"]
        answer = tokenizer(entry["answer"], add_special_tokens=False,
                           return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            logits = model(torch.cat([prompt, answer], 1)).logits[0, prompt.shape[1] - 1:-1]
        total += torch.nn.functional.cross_entropy(logits, answer[0], reduction="sum").item()
        hits += (logits.argmax(-1) == answer[0]).sum().item()
        count += answer.shape[1]
    return total / count, hits / count


def test_the_bundled_model_reads_its_answers_as_well_with_int8(bundled_float32_model) -> None:
    from chatbot.generation.local import load_tokenizer

    tokenizer = load_tokenizer("bundled")
    lines = (REPO / "knowledge" / "demo" / "faq.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines[:8]]
    plain_nll, plain_hits = _answer_nll(bundled_float32_model, tokenizer, entries)
    model = copy.deepcopy(bundled_float32_model)
    assert int8_decode.convert(model)["kept_float32"] == 0
    assert model.model.embed_tokens.weight is model.lm_head.bf16  # the tied table, shared
    assert model.lm_head.packed is None
    nll, hits = _answer_nll(model, tokenizer, entries)
    assert math.exp(nll) == pytest.approx(math.exp(plain_nll), rel=0.03)
    assert hits >= plain_hits - 0.02


def test_the_bfloat16_twin_shares_the_int8_models_weights_and_reads_as_float32_does(
    bundled_float32_model,
) -> None:
    from chatbot.generation.prefill import BFloat16Prefill, bfloat16_twin

    model = copy.deepcopy(bundled_float32_model)
    int8_decode.convert(model)
    prefill = BFloat16Prefill.for_model(model)
    assert prefill is not None
    assert prefill.megabytes() < 1  # the norms' weights; every matrix is the model's own
    layer, own = prefill.twin.layers[0].self_attn.q_proj, model.model.layers[0].self_attn.q_proj
    assert layer.packed is own.packed and (layer.packed is not None or layer.weight is own.bf16)
    assert prefill.twin.embed_tokens.table is model.model.embed_tokens.weight
    from chatbot.generation.local import load_tokenizer

    text = (REPO / "knowledge" / "demo" / "faq.jsonl").read_text(encoding="utf-8")[:1500]
    ids = load_tokenizer("bundled")(text)["input_ids"]  # real text: a peaked next token
    with torch.inference_mode():
        cache = prefill.extend(None, ids)
        assert cache.get_seq_length() == len(ids) - 1
        assert all(layer.keys.dtype == torch.float32 for layer in cache.layers)
        fast = model(input_ids=torch.tensor([ids[-1:]]), cache=cache).logits[0, -1]
        plain = bundled_float32_model(input_ids=torch.tensor([ids])).logits[0, -1]
    assert fast.argmax() == plain.argmax()
    assert torch.allclose(fast.softmax(-1), plain.softmax(-1), atol=0.02)
    # A decoder holding a matrix the twin cannot run in bfloat16 gets none.
    odd = torch.nn.Module()
    odd.conv = torch.nn.Module()
    odd.conv.weight = torch.nn.Parameter(torch.ones(4, 4))
    assert bfloat16_twin(odd) is None
