"""Prometheus metrics and readiness: what ``/metrics`` and ``/readyz`` report.

``Metrics`` owns its own registry (one per ``build_services``, so tests and several apps in one
process never share counts). The service reports each turn, handoff and generation failure;
the HTTP edge reports requests and rate-limit refusals. Names (all prefixed ``chatbot_``):

- ``turns_total{decision}``, ``turn_latency_seconds{decision}`` (histogram): every customer
  turn; decision ``answer`` / ``clarify`` / ``handoff``;
- ``answers_total{source}``: ``fast_path`` (the entry's own answer), ``generated`` (grounded
  model text), ``fallback`` (model text replaced by the KB's), ``kb_only`` (no model);
- ``generated_tokens_total``: tokens the language model produced (kept or withdrawn);
- ``generation_failures_total``: the model raised or was unavailable mid-turn (the customer got
  the knowledge base's text);
- ``handoffs_total{reason}``: conversations that started waiting for a person;
- ``rate_limited_total{limit}``: requests refused with 429 (``conversation``, ``ip``, ``client``);
- ``http_requests_total{method,route,status}``, ``http_request_duration_seconds{method,route}``;
- ``http_errors_total{route}``: 5xx answers;
- ``moderated_total{direction,category}``: customer messages and generated sentences that
  moderation flagged (``chatbot.moderation``);
- ``kb_version``: the knowledge-base version the server answers from.

``readiness(services)`` checks what serving needs without building anything: the database
answers ``SELECT 1``, the embedding model is loaded, the search index is in memory, and the
answer model is loaded (or the server answers from the knowledge base only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import text

if TYPE_CHECKING:
    from chatbot.services import Services
    from chatbot.turns import TurnResult

TURN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.turns = Counter("chatbot_turns_total", "Customer turns by decision.", ["decision"],
                             registry=r)
        self.turn_latency = Histogram(
            "chatbot_turn_latency_seconds", "Time from the customer's message to the stored reply.",
            ["decision"], buckets=TURN_BUCKETS, registry=r)
        self.answers = Counter("chatbot_answers_total", "Answers by where their text came from.",
                               ["source"], registry=r)
        self.tokens = Counter("chatbot_generated_tokens_total",
                              "Tokens produced by the language model.", registry=r)
        self.generation_failures = Counter(
            "chatbot_generation_failures_total",
            "Turns whose model failed; the customer got the knowledge base's text.", registry=r)
        self.handoffs = Counter("chatbot_handoffs_total",
                                "Conversations that started waiting for a person.", ["reason"],
                                registry=r)
        self.rate_limited = Counter("chatbot_rate_limited_total",
                                    "Customer-API requests refused with 429.", ["limit"],
                                    registry=r)
        self.requests = Counter("chatbot_http_requests_total", "HTTP requests.",
                                ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram(
            "chatbot_http_request_duration_seconds", "HTTP request time until the response starts "
            "(streams: until the first bytes).", ["method", "route"], buckets=HTTP_BUCKETS,
            registry=r)
        self.http_errors = Counter("chatbot_http_errors_total", "HTTP answers with status 5xx.",
                                   ["route"], registry=r)
        self.moderated = Counter("chatbot_moderated_total",
                                 "Messages (input) and generated sentences (output) moderation "
                                 "flagged.", ["direction", "category"], registry=r)
        self.kb_version = Gauge("chatbot_kb_version",
                                "Knowledge-base version the server answers from.", registry=r)

    def track_kb_version(self, version: Callable[[], float]) -> None:
        self.kb_version.set_function(version)

    def turn(self, result: TurnResult) -> None:
        self.turns.labels(result.decision).inc()
        self.turn_latency.labels(result.decision).observe(result.latency_ms / 1000)
        if result.tokens:
            self.tokens.inc(result.tokens)
        if result.origin:
            self.answers.labels(result.origin).inc()

    def handoff(self, reason: str) -> None:
        self.handoffs.labels(reason or "unknown").inc()

    def generation_failed(self) -> None:
        self.generation_failures.inc()

    def limited(self, limit: str) -> None:
        self.rate_limited.labels(limit).inc()

    def http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)
        if status >= 500:
            self.http_errors.labels(route).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        return [f"{name}: {state}" for name, state in self.checks.items()
                if not state.startswith("ok")]


def readiness(services: Services) -> Readiness:
    checks: dict[str, str] = {}
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = f"unreachable ({type(exc).__name__})"
    embedder: Any = services.embedder
    checks["embedding_model"] = f"ok ({embedder.name})" if getattr(embedder, "dim", 0) else "not loaded"
    retriever = services.retriever
    checks["index"] = (f"ok (version {retriever.version})" if retriever.loaded
                       else "not loaded yet")
    generator = services.chat.generator
    checks["answer_model"] = (f"ok ({generator.name})" if generator is not None
                              else "ok (none: answers from the knowledge base only)")
    ready = all(state.startswith("ok") for state in checks.values())
    return Readiness(ready, checks)
