"""Chat examples to token ids, with the loss on the assistant's reply only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

IGNORE = -100  # label value the loss skips


def encode_chat(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input ids, labels) for a chat whose last message is the assistant's target.

    The prompt is tokenized exactly as serving tokenizes it (chat template with the generation
    prompt), and the target as the template continues it (the reply and its end-of-turn
    token); labels are ``IGNORE`` over the prompt, so only the reply is learned.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last message of a training chat must be the assistant's")
    prompt = tokenizer.apply_chat_template(
        list(messages[:-1]), add_generation_prompt=True, tokenize=False
    )
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside the full chat")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids + target_ids, [IGNORE] * len(prompt_ids) + target_ids


class Collator:
    """Pads a batch on the right; padding is masked out of attention and loss."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = pad_token_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids, labels, mask = [], [], []
        for f in features:
            gap = width - len(f["input_ids"])
            ids.append(f["input_ids"] + [self.pad] * gap)
            labels.append(f["labels"] + [IGNORE] * gap)
            mask.append([1] * len(f["input_ids"]) + [0] * gap)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }
