"""One error vocabulary for the whole product.

It lives in the lowest layer so that knowledge, chatbot and ui raise the same classes;
``chatbot.errors`` re-exports it for the layers above.

Messages are written for the person who sees them. Each edge (CLI, HTTP, Gradio) translates
these once: the CLI into a message and exit status, HTTP into the JSON error shape.
"""

from __future__ import annotations


class ChatbotError(Exception):
    """Base class: an expected failure with a message fit to show a user."""

    status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ChatbotError):
    status = 400
    exit_code = 2


class Unauthorized(ChatbotError):
    """No credentials, or ones that are not valid (a bad token, an expired staff session)."""

    status = 401
    exit_code = 2


class Forbidden(ChatbotError):
    """The request is understood but not allowed (a forged visitor signature, a refused origin)."""

    status = 403
    exit_code = 1


class NotFound(ChatbotError):
    status = 404
    exit_code = 2


class Conflict(ChatbotError):
    status = 409
    exit_code = 1


class ModelUnavailable(ChatbotError):
    status = 503
    exit_code = 1


class RateLimited(ChatbotError):
    status = 429
    exit_code = 1
