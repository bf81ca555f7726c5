"""bfloat16 linear layers whose weights are laid out for oneDNN once, not on every call.

On the CPU, torch runs a bfloat16 ``nn.Linear`` through oneDNN, which first copies the weight
into the blocked layout its AMX kernel reads, on every call. For the short inputs of serving
(a 13-token query, a reply's sentences) that copy costs as much as the product itself: on one
core of this machine a 13x384 @ 384x1536 product takes 90 us, and 39 us with the weight
reordered in advance; a 1792-row batch on two cores 1055 -> 795 us (``_linear_pointwise``,
the op torch's own compiler emits for frozen CPU models). A query's vector comes out bit for
bit the same; in a batch oneDNN may add up a row's products in another order, and a vector
then moves within bfloat16's rounding (cosine >= 0.99998 to the unpacked one, where bfloat16
against float32 is 0.99997).

``pack_linears`` swaps a module's bfloat16 ``nn.Linear`` layers for packed ``BFloat16Linear``
ones (``layer_class``, which other modules build their own layers from) in place, after
checking on a small layer that this torch build has the ops and gives the same numbers; where
it does not, the module is left as it was. The packed layers are for inference only: they
hold no parameters, so nothing trains or saves them.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)


def _ops() -> Any:
    import torch

    return torch.ops.mkldnn


def _reorder(weight: Any) -> Any:
    import torch

    with torch.no_grad():
        return _ops()._reorder_linear_weight(weight.detach(), None)


def pack_weight(weight: Any) -> Any:
    """A bfloat16 CPU weight (out x in) in oneDNN's layout for ``linear``, or None where
    packing is not usable here."""
    import torch

    if not usable() or weight.dtype != torch.bfloat16 or weight.device.type != "cpu":
        return None
    return _reorder(weight)


def linear(x: Any, packed: Any, bias: Any = None) -> Any:
    """``F.linear(x, weight, bias)`` for a bfloat16 ``x`` and ``packed = pack_weight(weight)``."""
    return _ops()._linear_pointwise(x, packed, bias, "none", [], "")


def packed_bytes(module: Any) -> int:
    """The bytes of the packed weights held by ``module`` and its submodules: opaque oneDNN
    tensors, which neither ``parameters()``, ``buffers()`` nor ``state_dict()`` lists."""
    return sum(int(m.packed.numel()) * m.packed.element_size() for m in module.modules()
               if getattr(m, "packed", None) is not None)


@functools.cache
def layer_class() -> type:
    """The ``BFloat16Linear`` module class (built on first use: torch is imported lazily)."""
    import torch

    class BFloat16Linear(torch.nn.Module):
        """A bfloat16 linear layer for inference: its weight packed (``packed``, which may be
        shared with another module) or, where packing is not usable, plain (``weight``).
        Inputs of another dtype are cast to bfloat16; the output is bfloat16."""

        def __init__(self, weight: torch.Tensor | None, bias: torch.Tensor | None = None,
                     packed: torch.Tensor | None = None) -> None:
            super().__init__()
            self.packed = packed if packed is not None else (
                pack_weight(weight) if weight is not None else None)
            if self.packed is None and weight is None:
                raise ValueError("a BFloat16Linear needs a weight or a packed weight")
            self.weight = weight if self.packed is None else None
            self.bias = bias

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.to(torch.bfloat16)
            if self.packed is not None:
                return linear(x, self.packed, self.bias)
            return torch.nn.functional.linear(x, self.weight, self.bias)

        def extra_repr(self) -> str:
            return "packed" if self.packed is not None else "plain"

    return BFloat16Linear


_usable: bool | None = None


def usable() -> bool:
    """Whether this torch build packs bfloat16 weights and gives F.linear's exact numbers."""
    global _usable
    if _usable is not None:
        return _usable
    try:
        import torch

        if not torch.backends.mkldnn.is_available():
            raise RuntimeError("torch was built without oneDNN")
        probe = torch.nn.Linear(64, 48).to(torch.bfloat16)
        x = torch.randn(3, 5, 64, dtype=torch.bfloat16)
        with torch.inference_mode():
            same = torch.equal(linear(x, _reorder(probe.weight), probe.bias), probe(x))
        if not same:
            raise RuntimeError("packed products differ from F.linear")
        _usable = True
    except Exception as exc:  # a private op: any torch build may lack or change it
        log.info("bfloat16 weights stay unpacked: %s", exc)
        _usable = False
    return _usable


def pack_linears(module: Any) -> int:
    """Replace ``module``'s bfloat16 CPU ``nn.Linear`` layers by packed ones; the number
    replaced (0 where packing is not usable here)."""
    import torch

    if not usable():
        return 0
    targets = [
        (name, child)
        for name, child in module.named_modules()
        if type(child) is torch.nn.Linear
        and child.weight.dtype == torch.bfloat16
        and child.weight.device.type == "cpu"
    ]
    for name, child in targets:
        bias = child.bias.detach().clone() if child.bias is not None else None
        module.set_submodule(name, layer_class()(child.weight.detach(), bias))
    return len(targets)
