"""Decode with int8 weights and read prompts with bfloat16 ones, keeping no float32 copy.

Serving held the decoder's linear weights twice: in float32 for decoding and in bfloat16 for
reading prompts (``generation.prefill``), 750 MB for SmolLM2-135M, most of the server's
memory. A decoding step is a matrix-vector product bound by memory, and torch's int8
weight-only kernel (``torch._weight_int8pack_mm``, bfloat16 activations, one scale per output
row) reads a quarter of float32's bytes: on this machine's 2 cores a 1536x576 layer takes
27 us for one token against 39 us in float32 and 64 us in bfloat16. From about 8 tokens on
(a prompt, a prompt-lookup draft of 10) bfloat16's matrix-matrix kernel is the fastest (AMX),
so each ``MixedLinear`` keeps both: int8 for up to ``INT8_ROWS`` tokens, bfloat16 above.
Activations, norms, attention and the key/value cache stay float32. The token embeddings
become a bfloat16 table, which a tied output layer shares as its bfloat16 weight (a
prompt-lookup draft's logits) beside its int8 rows (one token's). 404 MB in all for
SmolLM2-135M.

Rounding each weight row to 255 levels moves the logits slightly: greedy output can differ
from float32 where two tokens are nearly tied, as with any change of kernel; compare with
``CHATBOT_DECODE_WEIGHTS=float32`` in ``chatbot eval``. The kernel is a private torch op
that returns wrong numbers, or crashes, for some shapes (an input width not a multiple of
16), so such layers stay float32, and each other layer shape is checked against a reference
product once; a shape that fails stays float32 too.
"""

from __future__ import annotations

from typing import Any

import torch

from knowledge import compute, packed_linear

# Up to this many tokens in a pass the int8 kernel is faster than bfloat16's (measured on 2
# cores: 48 us against 68 us at 4 tokens, 90 us against 74 us at 8).
INT8_ROWS = 4


def int8_decode_available() -> bool:
    return hasattr(torch, "_weight_int8pack_mm")


def resolve_decode_weights(setting: str, device: str) -> str:
    """The weights a CHATBOT_DECODE_WEIGHTS value means on ``device``: int8 or float32.

    ``auto`` is int8 on a CPU with AMX, where the bfloat16 prompt pass it relies on was
    measured to be fast; on GPUs the model already runs in bfloat16."""
    if not device.startswith("cpu") or not int8_decode_available():
        return "float32"
    if setting == "auto":
        return "int8" if compute.amx() else "float32"
    return setting


def quantize_rows(weight: Any) -> tuple[Any, Any]:
    """(int8 weight, bfloat16 scale per row) with ``weight ~= int8 * scale[:, None]``."""
    weight = weight.detach().float()
    scale = (weight.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.bfloat16).tiny)
    scale = scale.to(torch.bfloat16)
    q = torch.round(weight / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def _kernel_agrees(q: Any, scale: Any) -> bool:
    """Whether the int8 kernel computes ``x @ (q * scale).T`` for a layer of this shape."""
    if q.shape[1] % 16:  # widths like these were seen to return garbage or crash the process
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(INT8_ROWS, q.shape[1], generator=generator).to(torch.bfloat16)
    reference = x.float() @ (q.float() * scale.float()[:, None]).T
    try:
        got = torch._weight_int8pack_mm(x, q, scale).float()
    except RuntimeError:
        return False
    return bool(torch.allclose(got, reference, rtol=0.02, atol=0.02 * reference.abs().max()))


class MixedLinear(torch.nn.Module):
    """A linear layer as int8 rows for passes over up to INT8_ROWS tokens and a bfloat16
    weight for longer ones. That weight is held in oneDNN's layout (``packed``,
    ``knowledge.packed_linear``: a pass over a prompt-lookup draft of 11 tokens takes half the
    time, a 270-token prompt a fifth less, with the same numbers) unless ``pack`` is False (a
    weight shared with a tied embedding table, which lookups read as is) or packing is not
    usable here; then it is the plain ``bf16`` buffer."""

    def __init__(self, linear: torch.nn.Linear, q: torch.Tensor, scale: torch.Tensor,
                 bf16: torch.Tensor, *, pack: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("int8", q)
        self.register_buffer("scale", scale)
        # Not a buffer: an opaque oneDNN tensor has no storage to save, move or share.
        self.packed = packed_linear.pack_weight(bf16) if pack else None
        self.register_buffer("bf16", bf16 if self.packed is None else None)
        bias = linear.bias
        self.register_buffer("bias", bias.detach().float() if bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        flat = x.reshape(rows, x.shape[-1]).to(torch.bfloat16)
        if rows <= INT8_ROWS:
            out = torch._weight_int8pack_mm(flat, self.int8, self.scale)
        elif self.packed is not None:
            out = packed_linear.linear(flat, self.packed)
        else:
            out = torch.nn.functional.linear(flat, self.bf16)
        out = out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 + bf16"


class BFloat16Embedding(torch.nn.Module):
    """A token embedding table kept in bfloat16, looked up into float32."""

    def __init__(self, weight: torch.Tensor, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight.shape
        self.padding_idx = padding_idx
        self.register_buffer("weight", weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(ids, self.weight).float()


def convert(model: Any) -> dict[str, int]:
    """Swap ``model``'s float32 linear layers (decoder and output layer) for ``MixedLinear``
    ones and its token embeddings for a bfloat16 table, in place; a tied output layer shares
    that table as its bfloat16 weight. The float32 weights are freed once nothing else holds
    them. Returns how many linear layers were converted and how many kept in float32."""
    agrees: dict[tuple[int, int], bool] = {}
    counts = {"converted": 0, "kept_float32": 0}
    inputs, output = model.get_input_embeddings(), model.get_output_embeddings()
    table = None
    if isinstance(inputs, torch.nn.Embedding) and inputs.weight.dtype == torch.float32:
        table = inputs.weight.detach().to(torch.bfloat16)
        model.set_input_embeddings(BFloat16Embedding(table, inputs.padding_idx))
    tied = table is not None and output is not None and output.weight is inputs.weight
    names = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.float32]
    for name in names:
        linear = model.get_submodule(name)
        q, scale = quantize_rows(linear.weight)
        shape = tuple(q.shape)
        if shape not in agrees:
            agrees[shape] = _kernel_agrees(q, scale)
        if not agrees[shape]:
            counts["kept_float32"] += 1
            continue
        shared = tied and linear is output
        bf16 = table if shared else linear.weight.detach().to(torch.bfloat16)
        model.set_submodule(name, MixedLinear(linear, q, scale, bf16, pack=not shared))
        counts["converted"] += 1
    # The tied weights were the two modules just replaced; re-tying them would undo it.
    model.config.tie_word_embeddings = False
    return counts


def megabytes(model: Any) -> float:
    """The bytes the model's parameters, buffers and packed weights hold, each storage once,
    in MB."""
    seen: dict[int, int] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return round((sum(seen.values()) + packed_linear.packed_bytes(model)) / 1e6, 1)
