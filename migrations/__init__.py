"""Alembic migrations: the only way a table changes. ``chatbot.db.upgrade`` applies them."""
