"""Bad input gets a clear answer and changes nothing (DESIGN.md invariant 5), fuzzed.

Against the emulator running the real template, over HTTP: hypothesis builds unsigned,
mis-signed, stale, wrong-topic, wrong-shape and wrong-route requests for every source (each
knowing the answer it must get), a few oversized bodies go through, and schemathesis fuzzes
the published description of the API (docs/openapi/webhooks.yaml), negative data included.
Afterwards every table, queue and bucket of the stack and the bus must be as they were.

`STOREWIRE_RELIABILITY=small` (default, part of `make test`) or `full` (a few thousand
requests). The tests of this module run in order and share one emulator and one ledger.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from fuzz_support import (
    SECRETS,
    SOURCES,
    BadRequest,
    Signer,
    StackState,
    bad_requests,
    check_answer,
    fingerprint,
    oversized,
    sample,
    signature_header,
    stack_state,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from storewire_local.testing import EmulatorHandle

pytestmark = pytest.mark.e2e

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "webhooks.yaml"


@dataclass(frozen=True)
class Profile:
    examples: int  # hypothesis-built bad requests
    schemathesis: int  # schemathesis cases (negative and positive, never validly signed)
    oversized: int
    min_distinct: int


PROFILES = {
    "small": Profile(examples=240, schemathesis=50, oversized=4, min_distinct=200),
    "full": Profile(examples=3000, schemathesis=600, oversized=12, min_distinct=3000),
}
PROFILE_NAME = os.environ.get("STOREWIRE_RELIABILITY", "small")
PROFILE = PROFILES[PROFILE_NAME]


@dataclass
class Ledger:
    """What the module sent: distinct requests per category, and the stack before it all."""

    before: StackState
    distinct: set[str] = field(default_factory=set)
    per_category: Counter[str] = field(default_factory=Counter)
    answers: Counter[int] = field(default_factory=Counter)

    def record(self, category: str, key: str, status: int) -> None:
        if key not in self.distinct:
            self.distinct.add(key)
            self.per_category[category] += 1
        self.answers[status] += 1


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(SECRETS)


@pytest.fixture(scope="module")
def ledger(emulator: EmulatorHandle) -> Ledger:
    emulator.wait_idle()
    return Ledger(before=stack_state(emulator))


def send(emulator: EmulatorHandle, ledger: Ledger, request: BadRequest) -> None:
    """Send one bad request and fail, naming it, unless it got its answer."""
    response = emulator.http.request(
        request.method, request.url_path, headers=request.headers, content=request.body
    )
    ledger.record(request.category, request.fingerprint(), response.status_code)
    problem = check_answer(request, response.status_code, response.text)
    assert problem is None, f"{problem}\n  request: {request.describe()}"


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def test_given_bad_requests_for_every_source_when_posted_then_each_gets_its_answer(
    emulator: EmulatorHandle, ledger: Ledger, signer: Signer
) -> None:
    @_settings(PROFILE.examples)
    @given(request=bad_requests(signer))
    def one(request: BadRequest) -> None:
        send(emulator, ledger, request)

    one()

    for category in ("unsigned", "mis-signed", "stale", "wrong-topic", "wrong-shape"):
        assert ledger.per_category[category] >= PROFILE.examples // 20, (
            f"too few distinct {category} requests: {dict(ledger.per_category)}"
        )


def test_given_bodies_over_the_limit_when_posted_then_413(
    emulator: EmulatorHandle, ledger: Ledger, signer: Signer
) -> None:
    for request in oversized(signer, PROFILE.oversized):
        send(emulator, ledger, request)


def _signature_junk() -> st.SearchStrategy[dict[str, str]]:
    value = st.text(
        st.characters(codec="ascii", min_codepoint=32, max_codepoint=126), min_size=1, max_size=90
    ).map(str.strip)
    return st.one_of(
        st.just({}),
        st.builds(lambda source, v: {signature_header(source): v}, st.sampled_from(SOURCES), value),
    )


def test_given_the_published_openapi_when_schemathesis_fuzzes_it_then_unsigned_is_refused(
    emulator: EmulatorHandle, ledger: Ledger
) -> None:
    schema = schemathesis.openapi.from_path(str(OPENAPI))
    operation = schema["/webhooks/{source}"]["POST"]
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
    )
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    @_settings(PROFILE.schemathesis)
    @given(case=cases, signature=_signature_junk())
    def one(case: Any, signature: dict[str, str]) -> None:
        response = case.call(base_url=emulator.api_url, headers=signature)
        sent = response.request
        body = sent.body or b""
        body = body.encode() if isinstance(body, str) else body
        key = fingerprint(str(sent.method), urlsplit(str(sent.url)).path, sent.headers, body)
        ledger.record("schemathesis", key, response.status_code)
        described = f"{sent.method} {sent.url} headers={dict(sent.headers)!r} body={body[:300]!r}"
        # Nothing schemathesis sends is validly signed: a 401, or 404/413 before the check.
        assert response.status_code in (401, 404, 413), (
            f"answered {response.status_code} {response.text[:300]}\n  request: {described}"
        )
        answer = json.loads(response.text)
        if response.status_code == 401:
            assert answer.get("error", {}).get("type") == "SignatureInvalid", (
                f"{answer}\n  request: {described}"
            )
        case.validate_response(response, checks=checks)

    one()


def test_given_all_that_bad_input_when_the_stack_is_scanned_then_nothing_changed(
    emulator: EmulatorHandle, ledger: Ledger
) -> None:
    emulator.wait_idle()
    after = stack_state(emulator)

    changes = after.changes_since(ledger.before)

    assert changes == [], "bad requests changed the stack:\n  " + "\n  ".join(changes)
    dedupe = emulator.resource("WebhookDedupeTable")
    assert after.items[dedupe] == [], f"dedupe claims left behind: {after.items[dedupe][:5]}"
    assert len(ledger.distinct) >= PROFILE.min_distinct, (
        f"only {len(ledger.distinct)} distinct requests were sent "
        f"(profile {PROFILE_NAME} wants {PROFILE.min_distinct}): {dict(ledger.per_category)}"
    )
    assert not any(status >= 500 for status in ledger.answers), dict(ledger.answers)
    print(
        f"\nwebhook fuzz ({PROFILE_NAME}): {len(ledger.distinct)} distinct requests "
        f"{dict(ledger.per_category)}; answers {dict(sorted(ledger.answers.items()))}"
    )


def test_given_one_valid_delivery_when_the_stack_is_scanned_then_the_scan_sees_it(
    emulator: EmulatorHandle, ledger: Ledger, signer: Signer
) -> None:
    """The control: the scan above would have seen an accepted delivery (claim and events)."""
    payload = sample("shopify", "orders_create")
    payload["id"] = int(time.time() * 1000)
    body = json.dumps(payload).encode()
    headers = signer.valid("shopify", body, topic="orders/create")

    response = emulator.http.post("/webhooks/shopify", headers=headers, content=body)
    emulator.wait_idle()

    assert response.status_code == 200, response.text
    changes = stack_state(emulator).changes_since(ledger.before)
    assert any(
        line.startswith(f"table {emulator.resource('WebhookDedupeTable')}") for line in changes
    )
    assert any(line.startswith("bus:") for line in changes), changes
