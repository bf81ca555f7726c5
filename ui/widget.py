"""``GET /widget.js``: the embeddable chat widget (``ui/static/widget.js``).

A site embeds it with one tag, ``<script src="https://chat.example.com/widget.js" async>``;
the script derives the API's address from its own ``src``. The script itself is served to
any page (it holds nothing secret): ``CHATBOT_ALLOWED_ORIGINS`` is enforced where it matters,
on the customer API the widget calls, which refuses other origins with 403 and the widget then
says "This site is not allowed to use the chat".

The file is read once, when the route is registered. Responses carry a strong ``ETag`` (a
content hash) and a short ``max-age``, so browsers revalidate and a new version reaches every
page within minutes; ``If-None-Match`` is answered with 304. Browsers that accept gzip get
the file compressed once at start (about a third of its size).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response

if TYPE_CHECKING:
    from chatbot.services import Services

WIDGET_JS = Path(__file__).parent / "static" / "widget.js"
MEDIA_TYPE = "application/javascript; charset=utf-8"
CACHE_CONTROL = "public, max-age=300"


def register_widget(app: FastAPI, services: Services | None = None) -> None:
    """Add ``GET /widget.js``. Call it before the Gradio app is mounted at ``/``.

    ``services`` is accepted like every other route builder's; the script does not need them.
    """
    body = WIDGET_JS.read_bytes()
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    etags = {etag, etag[:-1] + '-gz"'}  # one strong tag per representation
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        # Pages on any origin may load it; some (with crossorigin=anonymous) ask for CORS.
        "Access-Control-Allow-Origin": "*",
    }

    @app.get("/widget.js", include_in_schema=False)
    def widget_js(request: Request) -> Response:
        tags = request.headers.get("if-none-match", "")
        gz = "gzip" in request.headers.get("accept-encoding", "")
        tag = etag[:-1] + '-gz"' if gz else etag
        own = {**headers, "ETag": tag, **({"Content-Encoding": "gzip"} if gz else {})}
        if etags & {t.strip().removeprefix("W/") for t in tags.split(",")} or tags.strip() == "*":
            own.pop("Content-Encoding", None)
            return Response(status_code=304, headers=own)
        return Response(packed if gz else body, media_type=MEDIA_TYPE, headers=own)
