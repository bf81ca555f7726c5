"""Everything a process needs, built once: database, stores, models, the chat service.

``build_services(settings)`` migrates the database, opens the stores and loads the embedding
and language models; the CLI, the web app, benchmarks and tests all start from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from chatbot.conversations import ConversationStore
from chatbot.db import make_engine, upgrade
from chatbot.dialogue.decision import Thresholds
from chatbot.generation import GenerationParams, Generator, make_generator
from chatbot.memory import limit_onednn_primitive_cache
from chatbot.moderation import Moderator
from chatbot.monitoring import Metrics
from chatbot.service import ChatService
from chatbot.settings import Settings
from chatbot.staff.questions import out_of_scope_texts
from chatbot.staff.webhook import webhook_from
from knowledge import compute
from knowledge.embeddings import Embedder
from knowledge.retrieval import Retriever
from knowledge.store import KnowledgeStore


@dataclass
class Services:
    settings: Settings
    engine: Engine
    knowledge: KnowledgeStore
    conversations: ConversationStore
    embedder: Embedder
    retriever: Retriever
    chat: ChatService
    metrics: Metrics


def thresholds_from(settings: Settings) -> Thresholds:
    return Thresholds(
        answer=settings.answer_threshold,
        clarify=settings.clarify_threshold,
        margin=settings.clarify_margin,
        fast_path=settings.fast_path_threshold,
        max_clarifications=settings.max_clarifications,
    )


def build_services(
    settings: Settings,
    *,
    generator: Generator | None = None,
    load_generator: bool = True,
    migrate: bool = True,
) -> Services:
    """Everything a process needs, built once. ``load_generator=False`` skips the LM."""
    # Before any model loads here: a thread that once ran torch kernels on two cores keeps an
    # OpenMP team, and with it beside the compute thread's libgomp stops spinning, so every
    # parallel region of a generation waits for a sleeping thread (knowledge.compute).
    compute.single_threaded()
    limit_onednn_primitive_cache()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    if migrate:
        upgrade(engine)
    knowledge = KnowledgeStore(engine)
    conversations = ConversationStore(engine, redactor=settings.redactor)
    embedder = Embedder(settings.embedding_model, engine=engine, dtype=settings.embedding_dtype)
    sessions = sessionmaker(engine)

    def marked_out_of_scope() -> list[str]:
        with sessions() as session:
            return out_of_scope_texts(session)

    retriever = Retriever(
        knowledge, embedder, settings.data_dir / "index", calibrate=settings.calibrate,
        unanswerable=marked_out_of_scope,
    )
    if generator is None and load_generator:
        generator = make_generator(settings)
    chat = ChatService(
        settings=settings,
        conversations=conversations,
        retriever=retriever,
        generator=generator,
        thresholds=thresholds_from(settings),
        params=GenerationParams.from_settings(settings),
        embedder=embedder,
        webhook=webhook_from(settings.handoff_webhook_url, settings.handoff_webhook_secret),
        moderator=Moderator.from_settings(settings.moderation, settings.moderation_file),
    )
    metrics = Metrics()
    metrics.track_kb_version(lambda: retriever.version)
    chat.metrics = metrics
    return Services(settings, engine, knowledge, conversations, embedder, retriever, chat, metrics)
