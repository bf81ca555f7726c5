"""Dialogue manager: intents, follow-up queries and the answer / clarify / hand-off decision."""
