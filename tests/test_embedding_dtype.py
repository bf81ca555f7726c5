"""The embedding model: bfloat16 where the CPU has it natively, and the same vectors whichever
path a text takes through it."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.embeddings import Embedder, resolve_dtype

TEXTS = ["How long does delivery take?", "Can I return worn shoes?", "Do you ship to Iceland?"]


def test_bfloat16_gives_unit_vectors_close_to_float32(shared_embedding_model, monkeypatch):
    import sentence_transformers

    # Models of their own, not the session's shared one: converting weights to bfloat16 and
    # back rounds them, so the float32 side must never have been converted.
    real = type(Embedder()._model)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", real)
    full = Embedder(dtype="float32")
    half = Embedder(dtype="bfloat16")
    assert (full.dtype, half.dtype) == ("float32", "bfloat16")
    assert str(next(half._model.parameters()).dtype) == "torch.bfloat16"
    a, b = full.embed_sentences(TEXTS), half.embed_sentences(TEXTS)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.999
    # and bfloat16 still tells the texts apart as float32 does
    assert np.argmax(b @ a.T, axis=1).tolist() == [0, 1, 2]


def test_auto_is_float32_off_the_cpu_and_bad_values_are_refused():
    assert resolve_dtype("auto", "cuda") == "float32"
    assert resolve_dtype("float32", "cpu") == "float32"
    assert resolve_dtype("auto", "cpu") in ("float32", "bfloat16")
    with pytest.raises(ValueError, match="Unknown embedding dtype 'fp8'"):
        resolve_dtype("fp8", "cpu")


def test_the_setting_is_checked(monkeypatch):
    from pydantic import ValidationError

    from chatbot.settings import Settings

    monkeypatch.setenv("CHATBOT_EMBEDDING_DTYPE", "half")
    with pytest.raises(ValidationError, match="embedding_dtype"):
        Settings()


def test_a_few_texts_embed_as_encode_embeds_them_with_the_models_prompt(
    shared_embedding_model, monkeypatch
):
    import sentence_transformers

    real = type(Embedder()._model)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", real)
    embedder = Embedder(dtype="float32")  # its own model: the prompt below must not leak
    model = embedder._model
    texts = [*TEXTS, "ok", "x " * 400]  # one word, and one past the model's 256 tokens

    def encoded() -> np.ndarray:
        vectors = model.encode(texts, convert_to_numpy=True)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    np.testing.assert_allclose(embedder.embed_sentences(texts), encoded(), atol=1e-6)
    # A model that asks for a prompt in front of every text (E5's "query: ") gets it.
    plain = embedder.embed_sentences(texts)
    model.prompts = {"query": "query: "}
    model.default_prompt_name = "query"
    np.testing.assert_allclose(embedder.embed_sentences(texts), encoded(), atol=1e-6)
    assert (embedder.embed_sentences(texts) * plain).sum(axis=1).min() < 0.99


def test_packed_bfloat16_layers_embed_exactly_as_plain_ones(shared_embedding_model, monkeypatch):
    """bfloat16 linear layers hold their weights in oneDNN's layout (knowledge.packed_linear):
    queries and index batches must come out as with the plain layers."""
    import sentence_transformers
    import torch

    import knowledge.embeddings as embeddings
    from knowledge import packed_linear

    real = type(Embedder()._model)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", real)
    packed = Embedder(dtype="bfloat16")
    monkeypatch.setattr(embeddings, "pack_linears", lambda model: 0)
    plain = Embedder(dtype="bfloat16")
    linears = sum(isinstance(m, torch.nn.Linear) for m in plain._model.modules())
    assert linears > 30  # 6 layers of 6, and the pooler
    if packed_linear.usable():
        assert packed.packed_layers == linears
        assert not any(isinstance(m, torch.nn.Linear) for m in packed._model.modules())
    else:  # a torch build without the ops keeps the plain layers, and still embeds
        assert packed.packed_layers == 0
    few = [*TEXTS, "ok", "x " * 400]
    many = [f"{text} ({i})" for i in range(8) for text in TEXTS]  # past SMALL_BATCH: encode
    # The same products; oneDNN may split a batch's sums in another order (bfloat16 rounding).
    for a, b in [(packed.embed_sentences(few), plain.embed_sentences(few)),
                 (packed.embed_documents(many), plain.embed_documents(many))]:
        assert (a * b).sum(axis=1).min() > 0.9999


def test_pack_linears_replaces_only_bfloat16_cpu_layers():
    import torch

    from knowledge import packed_linear

    if not packed_linear.usable():
        pytest.skip("this torch build has no oneDNN bfloat16 weight packing")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32).to(torch.bfloat16),
        torch.nn.GELU(),
        torch.nn.Sequential(torch.nn.Linear(32, 8, bias=False).to(torch.bfloat16)),
    )
    keep = torch.nn.Linear(8, 4)  # float32 stays as it is
    model.append(torch.nn.Flatten())
    x = torch.randn(2, 5, 16, dtype=torch.bfloat16)
    with torch.inference_mode():
        before = model(x)
        assert packed_linear.pack_linears(model) == 2
        assert packed_linear.pack_linears(torch.nn.Sequential(keep)) == 0
        assert torch.equal(model(x), before)
    layer = packed_linear.layer_class()
    assert [type(m) for m in model][1:] == [torch.nn.GELU, torch.nn.Sequential, torch.nn.Flatten]
    assert type(model[0]) is layer and type(model[2][0]) is layer
    assert model[0].packed is not None and model[0].weight is None
    assert list(model.parameters()) == []  # nothing left to train or save by mistake
