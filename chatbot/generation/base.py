"""The generation protocol and sampling parameters shared by every backend."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol

from chatbot.errors import InvalidInput

ChatMessages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 means greedy
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    num_beams: int = 1
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: Any) -> GenerationParams:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    def merged(self, overrides: Mapping[str, Any] | None) -> GenerationParams:
        """A copy with per-request overrides, each checked like the settings are."""
        if not overrides:
            return self
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise InvalidInput(
                f"Unknown generation parameter(s): {', '.join(unknown)}. "
                f"Known: {', '.join(known)}."
            )
        clean: dict[str, Any] = {}
        for name, value in overrides.items():
            if value is None:
                continue
            want = int if known[name] in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"'{name}' must be a number.")
            clean[name] = want(value)
        params = replace(self, **clean)
        params.check()
        return params

    def check(self) -> None:
        rules = [
            (1 <= self.max_new_tokens <= 4096, "max_new_tokens must be between 1 and 4096"),
            (0 <= self.temperature <= 5, "temperature must be between 0 and 5"),
            (self.top_k >= 0, "top_k must be 0 or more"),
            (0 < self.top_p <= 1, "top_p must be above 0 and at most 1"),
            (1 <= self.repetition_penalty <= 3, "repetition_penalty must be between 1 and 3"),
            (1 <= self.num_beams <= 8, "num_beams must be between 1 and 8"),
            (self.seed >= 0, "seed must be 0 or more"),
        ]
        for ok, message in rules:
            if not ok:
                raise InvalidInput(message + ".")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Generator(Protocol):
    """Streams the assistant's reply to a chat (a ``messages`` list) as text pieces."""

    name: str

    def stream(self, messages: ChatMessages, params: GenerationParams) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...
