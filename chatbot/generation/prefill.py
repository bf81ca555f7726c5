"""The prompt's prefill in bfloat16, its decoding in float32, on CPUs that multiply bfloat16.

A turn's time to first token is the prefill: one forward pass over the ~270 prompt tokens the
prefix cache does not hold, matrix-matrix products that AMX runs about twice as fast in
bfloat16 (bundled model, 2 cores: 420-540 ms in float32, 165-280 ms with bfloat16 weights).
Decoding is the opposite: a step is a matrix-vector product bound by memory, and torch's
bfloat16 kernel for it is slower than float32's (58 vs 47 ms a step). So ``BFloat16Prefill``
keeps a bfloat16 copy of the decoder's linear weights (about 2 bytes a parameter: 212 MB for
SmolLM2-135M), runs all of the prompt but its last token through the decoder with them
(``torch.func.functional_call`` swaps them in; embeddings and norms stay float32) into the
key/value cache, and casts the cache back to the model's float32; ``generate`` then reads the
last token and decodes in float32 as before. ``torch.autocast`` alone does not help: it casts
every weight on every pass, which costs what the faster kernels save (measured: no gain). The
output layer is not run at all: the prompt's logits are not needed.

Greedy output can differ from an all-float32 run where two tokens are nearly tied, as any
change of kernel can; compare with ``CHATBOT_PREFILL_DTYPE=float32`` (``chatbot eval``) or
``bench/turn_latency.py --prefill-dtype float32``.
"""

from __future__ import annotations

from typing import Any

from knowledge import compute

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


class BFloat16Prefill:
    """Reads prompts into a key/value cache with bfloat16 copies of the decoder's weights."""

    def __init__(self, model: Any, *, min_tokens: int = MIN_TOKENS) -> None:
        import torch

        self.model = model
        self.decoder = model.get_decoder()
        self.min_tokens = min_tokens
        self.weights = {
            f"{name}.weight": module.weight.detach().to(torch.bfloat16)
            for name, module in self.decoder.named_modules()
            if isinstance(module, torch.nn.Linear)
        }

    def megabytes(self) -> float:
        return round(sum(w.numel() * w.element_size() for w in self.weights.values()) / 1e6, 1)

    def extend(self, cache: Any, ids: list[int]) -> Any:
        """``cache`` (a DynamicCache of a prefix of ``ids``, or None) extended to all of
        ``ids`` but the last token, which ``generate`` must still read, in the model's dtype.
        With fewer than ``min_tokens`` tokens left to read, ``cache`` is returned as is."""
        import torch
        from transformers import DynamicCache

        from chatbot.generation.prefix_cache import cache_kwarg

        start = cache.get_seq_length() if cache is not None else 0
        rest = ids[start:-1]
        if len(rest) < self.min_tokens:
            return cache
        cache = cache if cache is not None else DynamicCache()
        device = next(self.model.parameters()).device
        # Autocast casts the float32 activations at each linear layer, whose weights are
        # already bfloat16, and keeps the norms and softmax in float32.
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            torch.func.functional_call(
                self.decoder, self.weights, args=(),
                kwargs={"input_ids": torch.tensor([rest], device=device),
                        cache_kwarg(): cache, "use_cache": True},
                strict=False,
            )
        dtype = next(self.model.parameters()).dtype
        for layer in cache.layers:
            layer.keys, layer.values = layer.keys.to(dtype), layer.values.to(dtype)
        return cache
