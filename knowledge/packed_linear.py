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

``pack_linears`` swaps a module's bfloat16 ``nn.Linear`` layers for packed ones in place,
after checking on a small layer that this torch build has the ops and gives the same numbers;
where it does not, the module is left as it was. The packed layers are for inference only:
they hold no parameters, so nothing trains or saves them.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def _ops() -> Any:
    import torch

    return torch.ops.mkldnn


def pack_weight(weight: Any) -> Any:
    """A bfloat16 CPU weight (out x in) in oneDNN's layout for ``linear``, or None where
    packing is not usable here."""
    import torch

    if not usable() or weight.dtype != torch.bfloat16 or weight.device.type != "cpu":
        return None
    with torch.no_grad():
        return _ops()._reorder_linear_weight(weight.detach(), None)


def linear(x: Any, packed: Any, bias: Any = None) -> Any:
    """``F.linear(x, weight, bias)`` for a bfloat16 ``x`` and ``packed = pack_weight(weight)``."""
    return _ops()._linear_pointwise(x, packed, bias, "none", [], "")


def nbytes(packed: Any) -> int:
    return int(packed.numel()) * packed.element_size()


def packed_linear_class() -> type:
    """The ``PackedLinear`` module class (built on first use: torch is imported lazily)."""
    import torch

    class _PackedLinear(torch.nn.Module):
        """``nn.Linear`` for bfloat16 inference with the weight in oneDNN's layout."""

        def __init__(self, module: torch.nn.Linear) -> None:
            super().__init__()
            self.in_features = module.in_features
            self.out_features = module.out_features
            with torch.no_grad():
                self.packed = _ops()._reorder_linear_weight(module.weight.detach(), None)
                self.bias = None if module.bias is None else module.bias.detach().clone()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return linear(x, self.packed, self.bias)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, packed"

    _PackedLinear.__name__ = _PackedLinear.__qualname__ = "PackedLinear"
    return _PackedLinear


_class: type | None = None
_usable: bool | None = None


def usable() -> bool:
    """Whether this torch build packs bfloat16 weights and gives F.linear's exact numbers."""
    global _class, _usable
    if _usable is not None:
        return _usable
    try:
        import torch

        if not torch.backends.mkldnn.is_available():
            raise RuntimeError("torch was built without oneDNN")
        _class = packed_linear_class()
        probe = torch.nn.Linear(64, 48).to(torch.bfloat16)
        x = torch.randn(3, 5, 64, dtype=torch.bfloat16)
        with torch.inference_mode():
            same = torch.equal(_class(probe)(x), probe(x))
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
    assert _class is not None
    targets = [
        (name, child)
        for name, child in module.named_modules()
        if type(child) is torch.nn.Linear
        and child.weight.dtype == torch.bfloat16
        and child.weight.device.type == "cpu"
    ]
    for name, child in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, _class(child))
    return len(targets)
