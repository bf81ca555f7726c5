"""The prompt's prefill in bfloat16 on CPUs that multiply bfloat16 fast; decoding as before.

A turn's time to first token is the prefill: one forward pass over the ~270 prompt tokens the
prefix cache does not hold, matrix-matrix products that AMX runs several times faster in
bfloat16 than float32. Decoding is the opposite: a step is a matrix-vector product bound by
memory, where torch's bfloat16 kernel is slower than float32's (58 vs 47 ms a step) and int8
weights are faster still (``generation.int8_decode``). So ``BFloat16Prefill`` reads all of
the prompt but its last token with a *twin* of the decoder that runs wholly in bfloat16
(``bfloat16_twin``), into the key/value cache, and casts the cache to the model's dtype;
``generate`` then reads the last token and decodes as before. The output layer is not run:
the prompt's logits are not needed.

The twin shares the decoder's big tensors. With int8 decoding each layer already holds its
bfloat16 weight, packed in oneDNN's layout (``knowledge.packed_linear``), and the twin costs
nothing but the norms' small weights; with float32 decoding it holds a packed bfloat16 copy of
each linear weight (about 2 bytes a parameter: 212 MB for SmolLM2-135M). Running the whole
pass in bfloat16, attention and norms included, rather than casting float32 activations at
each layer, took the bundled model's 322-token prefill on 2 cores from 213 to 160 ms.

Greedy output can differ from an all-float32 run where two tokens are nearly tied, as any
change of kernel can; compare with ``CHATBOT_PREFILL_DTYPE=float32`` (``chatbot eval``) or
``bench/turn_latency.py --prefill-dtype float32``.
"""

from __future__ import annotations

import copy
from typing import Any

from knowledge import compute, packed_linear

# Below this many tokens the pass is too short for the faster kernel to matter.
MIN_TOKENS = 32


def resolve_prefill_dtype(setting: str, device: str) -> str:
    """The dtype a CHATBOT_PREFILL_DTYPE value means on ``device``: bfloat16 or float32.

    ``auto`` is bfloat16 on a CPU with AMX, where it was measured; on CUDA the model already
    runs in bfloat16 and on other CPUs bfloat16 is emulated or untested, so float32."""
    if not device.startswith("cpu"):
        return "float32"
    if setting == "auto":
        return "bfloat16" if compute.amx() else "float32"
    return setting


def _twin_embedding_class() -> type:
    import torch

    class TwinEmbedding(torch.nn.Module):
        """Token embeddings looked up from a shared table into bfloat16."""

        def __init__(self, weight: torch.Tensor) -> None:
            super().__init__()
            self.table = weight

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.embedding(ids, self.table).to(torch.bfloat16)

    return TwinEmbedding


def bfloat16_twin(decoder: Any) -> tuple[Any, int] | None:
    """A copy of ``decoder`` that runs wholly in bfloat16, and the bytes it holds of its own.

    It shares the decoder's big tensors: an int8-decoding layer (``MixedLinear``) lends its
    packed bfloat16 weight, token embeddings are looked up from the decoder's table; only a
    float32 linear layer gets a bfloat16 copy, and the norms' small weights. None where the
    decoder holds a layer with a matrix of another kind (a GPT-2 ``Conv1D``, say): the caller
    then reads prompts without the twin."""
    import torch

    from chatbot.generation.int8_decode import BFloat16Embedding, MixedLinear

    twin_linear, twin_embedding = packed_linear.layer_class(), _twin_embedding_class()
    memo: dict[int, Any] = {id(t): t for t in [*decoder.parameters(), *decoder.buffers()]}
    memo.update({id(m.packed): m.packed for m in decoder.modules()
                 if getattr(m, "packed", None) is not None})
    twin = copy.deepcopy(decoder, memo)  # the module tree; every tensor above stays shared
    own = 0
    for name, module in list(twin.named_modules()):
        replacement: Any = None
        if isinstance(module, MixedLinear):
            bias = module.bias.to(torch.bfloat16) if module.bias is not None else None
            replacement = twin_linear(module.bf16, bias, packed=module.packed)
        elif isinstance(module, torch.nn.Linear):
            weight = module.weight.detach().to(torch.bfloat16)
            bias = module.bias.detach().to(torch.bfloat16) if module.bias is not None else None
            replacement = twin_linear(weight, bias)
            own += weight.numel() * 2
        elif isinstance(module, torch.nn.Embedding | BFloat16Embedding):
            replacement = twin_embedding(module.weight)
        else:
            for key, param in list(module.named_parameters(recurse=False)):
                if param.dim() > 1:
                    return None  # a matrix this function does not know how to run
                # A new tensor in the twin; the decoder keeps its own.
                setattr(module, key, torch.nn.Parameter(param.detach().to(torch.bfloat16),
                                                        requires_grad=False))
                own += param.numel() * 2
        if replacement is not None:
            twin.set_submodule(name, replacement)
    return twin, own


class BFloat16Prefill:
    """Reads prompts into a key/value cache with a bfloat16 twin of the decoder."""

    def __init__(self, twin: Any, model: Any, *, own_bytes: int = 0,
                 min_tokens: int = MIN_TOKENS) -> None:
        self.twin = twin
        self.model = model
        self.own_bytes = own_bytes
        self.min_tokens = min_tokens

    @classmethod
    def for_model(cls, model: Any, *, min_tokens: int = MIN_TOKENS) -> BFloat16Prefill | None:
        """The prefill for ``model``, or None where its decoder has no bfloat16 twin."""
        made = bfloat16_twin(model.get_decoder())
        if made is None:
            return None
        twin, own = made
        return cls(twin, model, own_bytes=own, min_tokens=min_tokens)

    def megabytes(self) -> float:
        """What the twin holds beside the model's own tensors."""
        return round(self.own_bytes / 1e6, 1)

    def extend(self, cache: Any, ids: list[int]) -> Any:
        """``cache`` (a DynamicCache of a prefix of ``ids``, or None) extended to all of
        ``ids`` but the last token, which ``generate`` must still read, in the model's dtype.
        With fewer than ``min_tokens`` tokens left to read, ``cache`` is returned as is."""
        start = cache.get_seq_length() if cache is not None else 0
        if len(ids) - 1 - start < self.min_tokens:
            return cache
        return self.read(cache, ids[start:-1])

    def read(self, cache: Any, tokens: list[int]) -> Any:
        """``cache`` (or a new DynamicCache) extended by ``tokens``, in the model's dtype."""
        import torch
        from transformers import DynamicCache

        from chatbot.generation.prefix_cache import cache_kwarg

        cache = cache if cache is not None else DynamicCache()
        for layer in cache.layers:  # what is cached already, for the twin's attention
            layer.keys, layer.values = layer.keys.to(torch.bfloat16), layer.values.to(torch.bfloat16)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            self.twin(input_ids=torch.tensor([tokens], device=device), use_cache=True,
                      **{cache_kwarg(): cache})
        dtype = next(self.model.parameters()).dtype
        for layer in cache.layers:
            layer.keys, layer.values = layer.keys.to(dtype), layer.values.to(dtype)
        return cache
