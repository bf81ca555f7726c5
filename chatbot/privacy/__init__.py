"""Privacy: personal data redacted before it is stored (``redaction``), conversations deleted
after ``CHATBOT_RETENTION_DAYS`` (``retention``), and one visitor's data exported or erased
(``records``; ``chatbot privacy export|delete --user ID`` and the staff API)."""
