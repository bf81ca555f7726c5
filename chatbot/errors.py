"""The product's error vocabulary (defined in ``knowledge.errors``, the lowest layer)."""

from knowledge.errors import (
    ChatbotError,
    Conflict,
    Forbidden,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
)

__all__ = [
    "ChatbotError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "ModelUnavailable",
    "NotFound",
    "RateLimited",
    "Unauthorized",
]
