"""``Staff``: every staff-side service, built once per process on top of ``Services``."""

from __future__ import annotations

from dataclasses import dataclass

from chatbot.privacy.records import PrivacyRecords
from chatbot.services import Services
from chatbot.staff.accounts import Accounts
from chatbot.staff.analytics import Analytics
from chatbot.staff.audit import AuditLog
from chatbot.staff.handoffs import HandoffDesk
from chatbot.staff.kb_editor import KnowledgeEditor
from chatbot.staff.privacy import PrivacyDesk
from chatbot.staff.regression import RegressionSet
from chatbot.staff.transcripts import Transcripts
from chatbot.staff.unanswered import Unanswered


@dataclass
class Staff:
    accounts: Accounts
    audit: AuditLog
    kb: KnowledgeEditor
    regression: RegressionSet
    unanswered: Unanswered
    handoffs: HandoffDesk
    transcripts: Transcripts
    analytics: Analytics
    privacy: PrivacyDesk


def build_staff(services: Services) -> Staff:
    engine = services.engine
    audit = AuditLog(engine)
    regression = RegressionSet(engine, services.knowledge, services.chat, audit)
    editor = KnowledgeEditor(services.knowledge, services.retriever, services.chat, audit,
                             regression)
    return Staff(
        accounts=Accounts(engine, session_hours=services.settings.staff_session_hours),
        audit=audit,
        kb=editor,
        regression=regression,
        unanswered=Unanswered(engine, services.embedder, services.retriever, editor, audit,
                              services.chat.calibration_report),
        handoffs=HandoffDesk(engine, services.conversations, services.settings, audit),
        transcripts=Transcripts(engine, redactor=services.settings.redactor),
        analytics=Analytics(engine),
        privacy=PrivacyDesk(PrivacyRecords(engine), services.settings.retention_days),
    )
