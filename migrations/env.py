"""Alembic environment: runs against the engine the app passes in (``config.attributes``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import chatbot.models
import knowledge.models

config = context.config
target_metadata = [knowledge.models.Base.metadata, chatbot.models.Base.metadata]


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite can only alter tables by copying them
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()
