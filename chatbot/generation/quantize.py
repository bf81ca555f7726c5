"""Int8 dynamic quantization of the local answer model, for CPU serving.

``quantize`` replaces the model's ``nn.Linear`` layers by dynamically quantized ones
(``torch.ao.quantization.quantize_dynamic``, qint8 weights; activations are quantized on the
fly per batch), which is what PyTorch offers on CPU without extra packages. PyTorch 2.13
marks these quantized tensors deprecated in favour of ``torchao``, whose CPU int8 path needs
``torch.compile`` to be fast; the folder format carries ``METHOD`` so a torchao variant can be
added beside this one. Embeddings and norms stay fp32. ``keep_lm_head`` leaves the
output projection (for SmolLM2 tied to the embeddings, a fifth of the weights) in fp32.

A quantized model is saved as a folder that ``CHATBOT_MODEL=DIR`` serves: ``config.json``,
``generation_config.json`` and the tokenizer (chat template included) as ``save_pretrained``
writes them, the quantized state dict in ``quantized-int8.pt``, and ``MARKER``
(``chatbot-quantized.json``: method, base model, which layers). Loading builds the fp32
architecture from the config, applies the same quantization (so the modules match) and loads
the state dict: nothing is re-quantized from fp32 weights, and the folder holds no fp32 copy.
The model runs on CPU only (dynamic quantized kernels are CPU kernels).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from chatbot.errors import InvalidInput, ModelUnavailable

MARKER = "chatbot-quantized.json"
WEIGHTS = "quantized-int8.pt"
METHOD = "torch-dynamic-int8"
FORMAT = 1


def is_quantized(source: str | Path) -> bool:
    """Whether ``source`` is a folder written by ``save_quantized``."""
    return (Path(source).expanduser() / MARKER).is_file()


def _spec(model: Any, keep_lm_head: bool) -> set[Any] | dict[str, Any]:
    import torch

    if not keep_lm_head:
        return {torch.nn.Linear}
    qconfig = torch.ao.quantization.default_dynamic_qconfig
    return {name: qconfig for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name != "lm_head"}


def quantize(model: Any, *, keep_lm_head: bool = False) -> Any:
    """A copy of ``model`` (fp32, CPU) with int8 dynamic-quantized Linear layers."""
    import torch

    model = model.to("cpu", dtype=torch.float32).eval()
    with warnings.catch_warnings():  # torch.ao.quantization announces torchao as its successor
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return torch.ao.quantization.quantize_dynamic(
            model, _spec(model, keep_lm_head), dtype=torch.qint8, inplace=False)


def quantized_layers(model: Any) -> int:
    """How many layers of ``model`` are dynamic-quantized Linear layers."""
    import torch

    kind = torch.ao.nn.quantized.dynamic.Linear
    return sum(isinstance(m, kind) for m in model.modules())


def save_quantized(
    model: Any, tokenizer: Any, folder: Path, *, base: str, keep_lm_head: bool
) -> Path:
    """Write a quantized model as a folder that ``load_quantized`` (and CHATBOT_MODEL) reads."""
    import torch

    folder = Path(folder).expanduser()
    if folder.exists() and any(folder.iterdir()) and not is_quantized(folder):
        raise InvalidInput(f"{folder} exists and is not empty; choose a new folder for the "
                           "quantized model.")
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(model.state_dict(), folder / WEIGHTS)
    marker = {"format": FORMAT, "method": METHOD, "base_model": base, "dtype": "qint8",
              "layers": "nn.Linear" + (" except lm_head" if keep_lm_head else ""),
              "keep_lm_head": keep_lm_head, "quantized_layers": quantized_layers(model),
              "torch": torch.__version__, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime())}
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return folder


def load_quantized(folder: str | Path) -> Any:
    """The quantized causal LM saved in ``folder`` (on CPU, in eval mode)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    folder = Path(folder).expanduser()
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        if marker.get("method") != METHOD or marker.get("format") != FORMAT:
            raise ValueError(f"unknown quantization {marker.get('method')!r} "
                             f"(format {marker.get('format')!r})")
        config = AutoConfig.from_pretrained(folder)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model = quantize(model, keep_lm_head=bool(marker.get("keep_lm_head")))
        # The state dict holds packed int8 weights (torch objects, not plain tensors); it was
        # written by save_quantized on this server, like any model folder CHATBOT_MODEL names.
        with warnings.catch_warnings():  # packed params still use TypedStorage
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=False)
        model.load_state_dict(state)
        if (folder / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(folder)
    except Exception as exc:
        raise ModelUnavailable(f"Could not load the quantized model in {folder}: {exc}. Quantize "
                               "it again with 'chatbot model quantize'.") from exc
    return model.eval()


def folder_megabytes(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6, 1)


def parameter_megabytes(model: Any) -> float:
    """Bytes of the model's tensors in memory: fp32 parameters, packed int8 weights, or
    int8 rows beside packed bfloat16 weights."""
    total, seen = 0, set()
    for value in model.state_dict().values():
        tensors = value if isinstance(value, tuple) else (value,)
        for t in tensors:
            if not hasattr(t, "element_size"):
                continue
            key = (t.data_ptr(), t.numel())  # tied weights (embeddings, lm_head) count once
            if key not in seen:
                seen.add(key)
                total += t.numel() * t.element_size()
    # Weights packed for oneDNN (generation.int8_decode) are attributes, not state.
    from knowledge import packed_linear

    total += packed_linear.packed_bytes(model)
    return round(total / 1e6, 1)
