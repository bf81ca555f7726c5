"""One FastAPI app: the Gradio chat page at ``/`` and HTTP routes beside it."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Header
from fastapi.responses import Response
from pydantic import BaseModel, Field

from chatbot.errors import Unauthorized
from chatbot.monitoring import CONTENT_TYPE, readiness
from chatbot.privacy.records import RetentionJob
from chatbot.staff.kb_live import VersionWatcher
from ui.api import customer_api
from ui.api_schema import text_response
from ui.chat_page import mount_chat_page
from ui.errors import ErrorBody, error_response, install_error_handlers
from ui.limits import RequestLimits, limiter_for
from ui.observability import Observability
from ui.openai_api import openai_api
from ui.origins import OriginGuard
from ui.staff_api import staff_api
from ui.staff_console import mount_staff_console
from ui.widget import register_widget

if TYPE_CHECKING:
    from chatbot.services import Services
    from chatbot.staff.services import Staff


class Ready(BaseModel):
    ok: bool = True
    checks: dict[str, str] = Field(
        description="database, embedding_model, index, answer_model: 'ok (...)' or the problem."
    )


def create_app(services: Services, staff: Staff | None = None) -> FastAPI:
    """The whole web app; ``staff`` defaults to the staff services built on ``services``."""
    from chatbot.staff.services import build_staff

    staff = staff or build_staff(services)
    app = FastAPI(title="Support Chatbot", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        """The process serves (liveness)."""
        return {"ok": True}

    @app.get("/readyz", response_model=Ready,
             responses={503: {"model": ErrorBody, "description": "Not ready"}})
    def readyz() -> Any:
        """Ready to answer customers: database reachable, models and search index loaded."""
        state = readiness(services)
        if not state.ready:
            return error_response(503, "Not ready: " + "; ".join(state.problems()) + ".")
        return {"ok": True, "checks": state.checks}

    metrics_doc = text_response(CONTENT_TYPE, "Prometheus text format")
    metrics_doc["responses"][401] = {"model": ErrorBody, "description": "CHATBOT_METRICS_TOKEN "
                                     "is set and the bearer token is missing or wrong"}

    @app.get("/metrics", **metrics_doc)
    def metrics(authorization: str | None = Header(None)) -> Response:
        """Prometheus metrics (text format); with CHATBOT_METRICS_TOKEN, a bearer token."""
        token = services.settings.metrics_token
        if token and not hmac.compare_digest(authorization or "", f"Bearer {token}"):
            raise Unauthorized("Send 'Authorization: Bearer <CHATBOT_METRICS_TOKEN>'.")
        return Response(services.metrics.render(), media_type=CONTENT_TYPE)

    # Conversations past CHATBOT_RETENTION_DAYS are deleted at start and then every hour.
    retention = RetentionJob(staff.privacy.records, services.settings.retention_days)
    app.router.add_event_handler("startup", retention.start)
    app.router.add_event_handler("shutdown", retention.stop)
    app.state.retention = retention
    # Other servers sharing the database publish too: build their versions' index here early.
    watcher = VersionWatcher(staff.kb.warmer, services.settings.kb_poll_seconds)
    app.router.add_event_handler("startup", watcher.start)
    app.router.add_event_handler("shutdown", watcher.stop)
    app.state.kb_watcher = watcher

    register_widget(app, services)
    install_error_handlers(app)
    app.include_router(customer_api(services.chat))
    app.include_router(openai_api(services.chat))
    app.include_router(staff_api(staff))
    mount_staff_console(app, staff, services.settings)  # before the chat page's mount at /
    settings = services.settings
    app.add_middleware(
        RequestLimits,
        limiter=limiter_for(
            settings.rate_limit,
            settings.rate_limit_per_ip,
            services.engine if settings.shared_rate_limits else None,
        ),
        max_body_bytes=settings.max_body_bytes,
        on_limited=lambda verdict: services.metrics.limited((verdict.key or "").partition(":")[0]),
    )
    app.add_middleware(OriginGuard, allowed=settings.origins)  # CORS before the limits
    # Outermost: every answer, refusals included, has a request id, a log line and metrics.
    app.add_middleware(Observability, metrics=services.metrics, origins=settings.origins)
    return mount_chat_page(app, services.chat)
