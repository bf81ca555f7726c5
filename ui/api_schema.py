"""What the OpenAPI document promises beyond the models: bounded numbers and text answers.

- **Bounded numbers.** Integer columns are 32-bit on PostgreSQL (64-bit on SQLite). A larger
  id names no row, but handing it to the database fails (SQLite: ``OverflowError``;
  PostgreSQL: "integer out of range"), which would be a 500 instead of a 404. Ids and
  versions are therefore bounded where they enter, and a 422 names the field.
- **Text answers** (exports, CSV, metrics). FastAPI documents a route's error responses with
  the route's own media type, so an export declared as ``PlainTextResponse`` would claim its
  JSON errors are text. ``text_response(...)`` gives the media type to 200 only; errors stay
  JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.responses import Response
from pydantic import Field

DB_INT_MAX = 2**31 - 1

RowId = Annotated[int, Field(ge=1, le=DB_INT_MAX)]
VersionNumber = Annotated[int, Field(ge=0, le=DB_INT_MAX)]


def text_response(media_type: str, description: str) -> dict[str, Any]:
    """Route keywords for a route whose answer is text (``@r.get(path, **text_response(...))``)."""
    return {
        "response_class": Response,
        "responses": {
            200: {
                "description": description,
                "content": {media_type: {"schema": {"type": "string"}}},
            }
        },
    }
