"""Schemathesis fuzzes every operation of the app's OpenAPI document (issue 8, point 3).

One real app under uvicorn (``LiveServer``) on a copy of the tiny shop KB, with the scripted
generator (no language model) and staff accounts; requests go over real HTTP with the admin's
bearer token, so the staff routes get past authentication. Each operation is fuzzed with
valid (positive) and invalid (negative) data, once with generated path parameters (mostly
unknown ids) and once with the ids of seeded things (a conversation waiting for a person, a
KB entry, a document, version 1, a regression case), so the routes' real work runs too.
Every response must not be a server error and must match the document: status code,
content type, headers and body schema.

Rate limits are set out of reach: the fuzzer is one client sending thousands of requests,
and the limits have their own tests (``tests/test_limits.py``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from api_helpers import LiveServer, assert_error, module_services
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from staff_helpers import add_staff_accounts, staff_user

from chatbot.staff.services import build_staff
from ui.app import create_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Per operation, mode and choice of path parameters; hypothesis stops earlier when an
# operation has fewer distinct inputs (no parameters, enums only, fixed ids).
EXAMPLES = 12
MIN_CASES = 1000


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template):
    with module_services(
        tmp_path_factory.mktemp("fuzz") / "data",
        kb_template,
        rate_limit=1_000_000,
        rate_limit_per_ip=1_000_000,
    ) as services:
        yield services


@pytest.fixture(scope="module")
def staff(services):
    return build_staff(services)


@pytest.fixture(scope="module")
def admin_headers(staff):
    return add_staff_accounts(staff).headers("admin")


@pytest.fixture(scope="module")
def seeded(services, staff, admin_headers) -> dict[str, Any]:
    """Path parameters that name things that exist."""
    chat = services.chat
    waiting = chat.start_conversation(history=[])
    chat.send_message(waiting, "How long do I have to return an item?")
    chat.request_handoff(waiting)
    case = staff.regression.add(
        staff_user(staff, "admin"),
        {"query": "Can I send my order back?", "expected_id": "returns-window"},
    )
    return {
        "conversation_id": waiting,
        "entry_id": "returns-window",
        "document_id": "care-guide",
        "version": 1,
        "case_id": case["id"],
    }


@pytest.fixture(scope="module")
def server(services, staff):
    with LiveServer(create_app(services, staff)) as live:
        yield live


def fuzz(strategy: Any, headers: dict[str, str], base_url: str) -> int:
    """Sends each generated case and runs the checks on its response; how many were sent."""
    sent = 0

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:
        pass  # no invalid input exists for it (no parameters, or only fixed ones)
    return sent


def test_every_operation_answers_as_documented(server, admin_headers, seeded):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    cases: Counter[str] = Counter()
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        known = {name: seeded[name] for name in names if name in seeded}
        assert known.keys() == names, f"seed an id for {operation.label}: {names - known.keys()}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for fixed in ([None, known] if known else [None]):
                strategy = operation.as_strategy(mode, path_parameters=fixed)
                label = f"{operation.label} ({mode.value}{', seeded ids' if fixed else ''})"
                try:
                    cases[operation.label] += fuzz(strategy, admin_headers, server.url)
                except (Exception, FailureGroup) as exc:  # every operation runs; all are reported
                    failures[label] = str(exc)[:3000]
    total = sum(cases.values())
    print(f"schemathesis: {total} cases on {len(cases)} operations, {len(failures)} failing")
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert not [label for label, n in cases.items() if n == 0], cases
    assert total >= MIN_CASES, cases


def test_every_operation_documents_its_answers(server):
    """What the fuzzer relies on: a schema for each 200 body, and errors documented as JSON
    (a text route once claimed its errors were text, and routes without a response model
    documented an anything-goes body)."""
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if status.startswith("2"):
                    assert content, where
                    for media_type, body in content.items():
                        schema = body.get("schema") or {}
                        assert "$ref" in schema or "type" in schema, (where, media_type, schema)
                else:
                    assert set(content) == {"application/json"}, (where, status, set(content))


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/conversations/{conversation_id}/feedback",
         {"message_id": 2**70, "rating": "up"}, "message_id"),
        ("POST", "/api/v1/staff/unanswered/dismiss", {"message_ids": [2**63]}, "message_ids.0"),
        ("POST", "/api/v1/staff/rollback", {"version": 2**40}, "version"),
        ("POST", "/api/v1/staff/privacy/purge", {"days": 10**7}, "days"),
        ("GET", "/api/v1/staff/export?version=99999999999999999999", None, "version"),
        ("GET", "/api/v1/staff/diff?from=99999999999999999999&to=1", None, "from"),
        ("GET", "/api/v1/staff/conversations?page=99999999999999999999", None, "page"),
        ("DELETE", "/api/v1/staff/regression/99999999999999999999", None, "case_id"),
    ],
)
def test_numbers_no_row_can_have_are_refused_by_name(server, admin_headers, seeded,
                                                     method, path, body, field):
    """Found by the fuzzer: each was a 500 (SQLite OverflowError, or a date before year 1)."""
    url = server.url + path.format(**seeded)
    response = httpx.request(method, url, json=body, headers=admin_headers)
    assert_error(response, 422, f"'{field}'")
