"""The staff side: accounts and roles, the knowledge-base editor, unanswered questions, the
handoff inbox, transcripts and analytics.

Every public method takes the acting ``StaffUser`` first and checks its role itself
(``accounts.require``), so the console and the staff API, which both call these functions,
cannot differ in what they allow.
"""
