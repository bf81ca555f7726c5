"""Settings: one typed object, every field an environment variable with prefix ``CHATBOT_``.

Every field has a default and a one-line description; ``tests/test_docs.py`` fails when a
setting is missing from the README. Nothing is read at import: call ``Settings()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from chatbot.privacy.redaction import Redactor

BUNDLED = "bundled"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATBOT_", extra="ignore")

    # Where things live.
    data_dir: Path = Field(
        Path("data"), description="Folder for the database, FAISS index, models and logs."
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means sqlite:///<data dir>/chatbot.db."
    )
    kb_poll_seconds: float = Field(
        2.0, ge=0,
        description="Seconds between checks for a KB version published by another server "
        "sharing the database (its index is then built in the background); 0: no checks.",
    )

    # Serving.
    host: str = Field("127.0.0.1", description="Address the web server listens on.")
    port: int = Field(7860, ge=1, le=65535, description="Port the web server listens on.")
    demo_kb: bool = Field(
        True, description="Import the built-in demo shop knowledge base when the KB is empty."
    )
    shop_name: str = Field(
        "Northwind Outfitters",
        max_length=80,
        description="Shop name in the chat page's title (the demo shop's by default).",
    )
    allowed_origins: str = Field(
        "", description="Comma-separated origins that may embed the widget (empty: any)."
    )
    widget_secret: str = Field("", description="HMAC key for signed visitor identity.")
    rate_limit: int = Field(
        60, ge=0, description="Customer-API requests per minute per client; 0 turns limits off."
    )
    rate_limit_store: Literal["auto", "memory", "database"] = Field(
        "auto",
        description="Where rate-limit counts are kept: memory (each server process its own) or "
        "database (shared by every process on it); auto: database on PostgreSQL, else memory.",
    )
    max_message_chars: int = Field(
        4000, ge=1, description="Longest customer message accepted, in characters."
    )
    rate_limit_per_ip: int = Field(
        300, ge=0,
        description="Customer-API requests per minute from one IP address, all its conversations "
        "together; 0: no per-address limit.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest customer-API request body accepted, in bytes."
    )
    max_conversation_turns: int = Field(
        200, ge=1,
        description="Customer messages one conversation may hold; then a new one must be started.",
    )

    # Privacy.
    redact_pii: str = Field(
        "all",
        description="Personal data replaced by placeholders in stored messages, logs, exports and "
        "training data: all, off, or a list of email, phone, card, iban, national_id.",
    )
    retention_days: int = Field(
        0, ge=0,
        description="Conversations inactive for more days are deleted by a job in the server "
        "(hourly); 0 keeps them.",
    )

    # Moderation.
    moderation: bool = Field(
        True,
        description="Check customer messages and generated replies against word lists and "
        "patterns (prompt injection, harmful requests, insults, unstated promises).",
    )
    moderation_file: str = Field(
        "", description="JSON file with extra moderation patterns and words (README, Moderation)."
    )

    # Logs.
    log_format: Literal["json", "text"] = Field(
        "json", description="Server log lines on stderr: json (one object a line) or text."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level of server log lines (info logs one line per request)."
    )

    metrics_token: str = Field(
        "", description="Bearer token /metrics requires; empty: /metrics is open (keep it internal)."
    )

    # Staff console.
    staff_session_hours: float = Field(
        12.0, gt=0, le=720, description="Hours a staff console sign-in lasts."
    )
    secure_cookies: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Mark staff session cookies Secure: auto (when the request came over HTTPS), "
        "always, or never.",
    )
    handoff_webhook_url: str = Field(
        "", description="URL notified (POST, JSON) when a conversation starts waiting for a person."
    )
    handoff_webhook_secret: str = Field(
        "", description="HMAC-SHA256 key that signs handoff webhook calls (X-Chatbot-Signature)."
    )

    # Models.
    model: str = Field(
        BUNDLED,
        description="Answer model: Hugging Face id, local folder, GGUF file, or 'bundled' "
        "(SmolLM2-135M-Instruct).",
    )
    embedding_model: str = Field(
        BUNDLED,
        description="sentence-transformers model id or folder, 'bundled' (all-MiniLM-L6-v2) or "
        "'mpnet' (all-mpnet-base-v2, from the mpnet install extra).",
    )
    embedding_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Precision of the embedding model: auto (bfloat16 on CPUs with AMX, where it "
        "is 1.5-2.4x faster with the same vectors to 4 decimals; float32 elsewhere), float32 or "
        "bfloat16.",
    )
    generator: Literal["local", "openai", "scripted"] = Field(
        "local", description="Generation backend: local transformers, OpenAI-compatible HTTP, "
        "or scripted (tests)."
    )
    openai_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible server."
    )
    openai_api_key: str = Field("", description="API key sent to the OpenAI-compatible server.")
    openai_model: str = Field(
        "", description="Model name sent to the OpenAI-compatible server (default: CHATBOT_MODEL)."
    )
    device: str = Field("auto", description="Torch device: auto, cpu, cuda, cuda:N or mps.")
    torch_threads: int = Field(0, ge=0, description="CPU threads for torch; 0 keeps torch's choice.")
    prefix_cache: bool = Field(
        True, description="Reuse the model's key/value cache of the prompt prefix every turn "
        "shares (chat template and system prompt) instead of recomputing it each turn."
    )
    prefill_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Precision in which the local model reads a turn's prompt before it "
        "answers in float32: auto (bfloat16 on CPUs with AMX, where the first token comes "
        "about twice as fast; float32 elsewhere and on GPUs), float32 or bfloat16.",
    )
    decode_weights: Literal["auto", "float32", "int8"] = Field(
        "auto",
        description="Weights the local model decodes with on a CPU: auto (int8 on CPUs with "
        "AMX, where prompts are read with bfloat16 weights and no float32 copy is kept: for "
        "SmolLM2-135M about 350 MB less memory and a 64-token answer about 20% sooner; float32 "
        "elsewhere, on GPUs and with CHATBOT_PREFILL_DTYPE=float32), float32 or int8 (one "
        "scale per weight row; prompts are then read with bfloat16 weights).",
    )
    prompt_lookup_tokens: int | None = Field(
        None, ge=0, le=64,
        description="Prompt lookup decoding: tokens drafted by copying from the prompt and "
        "checked in one forward pass; helps models that quote their passages. Unset: the "
        "model's own generation config decides (a model from 'chatbot train' drafts 10, the "
        "bundled model none); 0 turns it off.",
    )
    generation_queue_timeout: float = Field(
        10.0, gt=0,
        description="Most seconds a turn waits for the local model while it answers other "
        "customers; a turn that would wait longer is answered from the knowledge base.",
    )

    # Sampling defaults (each can be overridden per request).
    max_new_tokens: int = Field(128, ge=1, le=4096, description="Most tokens generated per answer.")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="Sampling temperature; 0 is greedy.")
    top_k: int = Field(0, ge=0, description="Top-k sampling; 0 disables it.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling probability mass.")
    repetition_penalty: float = Field(
        1.1, ge=1.0, le=3.0,
        description="Penalty for tokens the reply has already used (the prompt's are exempt, so "
        "answers may quote passages); 1 disables it.",
    )
    num_beams: int = Field(1, ge=1, le=8, description="Beam search width; 1 disables beams.")
    seed: int = Field(0, ge=0, description="Random seed for sampling.")

    # Retrieval and decisions (scores are calibrated probabilities in [0, 1]).
    retrieval_top_k: int = Field(5, ge=1, le=50, description="Passages retrieved per turn.")
    fast_path_threshold: float = Field(
        0.75,
        ge=0.0,
        description="Score at or above which the entry's own answer is returned without the "
        "model; above 1 disables the fast path.",
    )
    answer_threshold: float = Field(
        0.3, ge=0.0, le=1.0, description="Lowest top score that may be answered."
    )
    clarify_threshold: float = Field(
        0.2, ge=0.0, le=1.0, description="Lowest top score worth a clarifying question."
    )
    calibrate: bool = Field(
        True,
        description="Fit the score calibration to each published KB version (held-out "
        "paraphrases and unanswerable messages); false keeps the built-in one.",
    )
    answer_precision: float = Field(
        0.75, ge=0.0, le=1.0,
        description="Answer precision the answer threshold is raised to reach on each KB's "
        "calibration cases (never above 0.6); 0 keeps CHATBOT_ANSWER_THRESHOLD as it is.",
    )
    clarify_margin: float = Field(
        0.005, ge=0.0, le=1.0,
        description="Candidates within this score of the best one make a question ambiguous.",
    )
    max_clarifications: int = Field(
        2, ge=1, description="Clarifying questions in a row before handing off to a person."
    )
    history_turns: int = Field(6, ge=0, description="Most recent messages shown to the model.")
    context_tokens: int = Field(
        1536, ge=256, description="Token budget of the prompt (system, passages and history)."
    )
    grounding_threshold: float = Field(
        0.6, ge=0.0, le=1.0,
        description="Lowest support a generated sentence needs from the passages.",
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("redact_pii")
    @classmethod
    def _kinds(cls, v: str) -> str:
        from chatbot.privacy.redaction import Redactor

        Redactor.from_setting(v)  # ValueError naming the unknown kind
        return v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.clarify_threshold > self.answer_threshold:
            raise ValueError(
                "CHATBOT_CLARIFY_THRESHOLD must not exceed CHATBOT_ANSWER_THRESHOLD"
            )
        if self.decode_weights == "int8" and self.prefill_dtype == "float32":
            raise ValueError(
                "CHATBOT_DECODE_WEIGHTS=int8 reads prompts with bfloat16 weights, so it cannot "
                "be combined with CHATBOT_PREFILL_DTYPE=float32; set one of them to auto"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'chatbot.db').resolve()}"

    @property
    def shared_rate_limits(self) -> bool:
        """Whether rate limits are counted in the database (``CHATBOT_RATE_LIMIT_STORE``)."""
        if self.rate_limit_store == "auto":
            from sqlalchemy.engine import make_url

            return make_url(self.resolved_database_url).get_backend_name() != "sqlite"
        return self.rate_limit_store == "database"

    @property
    def redactor(self) -> Redactor:
        from chatbot.privacy.redaction import Redactor

        return Redactor.from_setting(self.redact_pii)

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for docs and --help."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        rows.append((f"CHATBOT_{name.upper()}", str(default), field.description or ""))
    return rows
