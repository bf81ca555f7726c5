"""The handoff webhook: another system is told when a conversation starts waiting for a person.

``POST CHATBOT_HANDOFF_WEBHOOK_URL`` with a JSON body::

    {"event": "conversation.waiting", "conversation_id", "reason", "summary",
     "waiting_since": ISO 8601, "console_path": "/staff", "api_path": "/api/v1/staff/handoffs/<id>"}

and the headers ``X-Chatbot-Timestamp: <unix seconds>`` and
``X-Chatbot-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with
CHATBOT_HANDOFF_WEBHOOK_SECRET>``. A receiver recomputes the HMAC over the raw body, compares
in constant time and refuses old timestamps (replays).

Calls are made by one background thread, so a customer's turn never waits for (or fails
because of) the receiver: each event is tried ``attempts`` times with a short timeout and a
growing pause, and a failure is logged, never raised. This module imports nothing from the
service layer (``chatbot.service`` imports it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import httpx

from chatbot.conversations import Conversation, ConversationStore, Feedback, Message
from chatbot.errors import InvalidInput
from chatbot.staff.summary import summarize

log = logging.getLogger(__name__)

EVENT = "conversation.waiting"
CONSOLE_PATH = "/staff"
API_PATH = "/api/v1/staff/handoffs/{id}"
MAX_QUEUED = 1000


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with the UTC offset (SQLite hands back naive UTC datetimes)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Chatbot-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def waiting_event(
    conversation: Conversation,
    messages: Sequence[Message],
    feedback: Mapping[int, Feedback] | None = None,
) -> dict[str, Any]:
    """The webhook's JSON body for a conversation that has just started waiting."""
    return {
        "event": EVENT,
        "conversation_id": conversation.id,
        "reason": conversation.handoff_reason,
        "summary": summarize(messages, feedback, reason=conversation.handoff_reason),
        "waiting_since": iso(conversation.waiting_since),
        "console_path": CONSOLE_PATH,
        "api_path": API_PATH.format(id=conversation.id),
    }


class HandoffWebhook:
    """Delivers events to one URL from a background thread (started on the first event)."""

    def __init__(
        self,
        url: str,
        secret: str = "",
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        pause: float = 0.5,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(
                f"CHATBOT_HANDOFF_WEBHOOK_URL must be an http:// or https:// URL (got {url!r})."
            )
        if not secret:
            log.warning("CHATBOT_HANDOFF_WEBHOOK_SECRET is empty: handoff webhook calls are "
                        "sent unsigned; set a secret so the receiver can check them.")
        self.url, self.secret = url, secret
        self.timeout, self.attempts, self.pause = timeout, max(1, attempts), pause
        self._queue: queue.Queue[bytes] = queue.Queue(MAX_QUEUED)
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0

    def notify(self, payload: Mapping[str, Any]) -> None:
        """Queue one event; returns at once."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.failed += 1
            log.error("handoff webhook: %d events already queued; dropped one for %s",
                      MAX_QUEUED, payload.get("conversation_id"))
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._run, name="handoff-webhook", daemon=True
                )
                self._worker.start()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered or given up on (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                self._deliver(body)
            except Exception:  # the worker must survive anything one event does
                self.failed += 1
                log.exception("handoff webhook: delivery failed unexpectedly")
            finally:
                self._queue.task_done()

    def _deliver(self, body: bytes) -> None:
        problem = ""
        for attempt in range(1, self.attempts + 1):
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Chatbot-Timestamp": timestamp,
                       "User-Agent": "support-chatbot-webhook"}
            if self.secret:
                headers["X-Chatbot-Signature"] = sign(self.secret, timestamp, body)
            try:
                response = httpx.post(self.url, content=body, headers=headers,
                                      timeout=self.timeout)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    self.delivered += 1
                    return
                problem = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver refuses this event; sending it again will not help
            if attempt < self.attempts:
                time.sleep(self.pause * 2 ** (attempt - 1))
        self.failed += 1
        log.error("handoff webhook: %s refused or unreachable (%s); gave up after %d attempt(s)",
                  self.url, problem, attempt)


def webhook_from(url: str, secret: str) -> HandoffWebhook | None:
    """The webhook for the settings, or None when no URL is configured."""
    return HandoffWebhook(url.strip(), secret) if url.strip() else None


def announce_waiting(webhook: HandoffWebhook | None, conversations: ConversationStore,
                     conversation_id: str) -> None:
    """Tell the webhook that ``conversation_id`` has just started waiting (if one is set).

    Never raises: a conversation that waits for a person must not fail the customer's turn
    because the notification could not be prepared.
    """
    if webhook is None:
        return
    try:
        event = waiting_event(
            conversations.get(conversation_id),
            conversations.messages(conversation_id),
            conversations.feedback(conversation_id),
        )
    except Exception:
        log.exception("handoff webhook: could not prepare the event for %s", conversation_id)
        return
    webhook.notify(event)
