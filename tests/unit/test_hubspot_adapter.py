"""The HubSpot adapter on the real HTTP layer, over httpx.MockTransport (no sockets)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from storewire.adapters.hubspot_crm import HubSpotCrm, describe_hubspot_error
from storewire.domain.crm import CrmInput
from storewire.errors import PermanentUpstreamError, RetryableUpstreamError
from storewire.http import Deadline, HttpClient, RetryPolicy

TOKEN = "pat-na1-storewire-dev"
BASE = "https://api.hubapi.test"
RATE_LIMITED = (
    429,
    {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
        "policyName": "TEN_SECONDLY_ROLLING",
    },
    {"Retry-After": "2"},
)


class Script:
    """Answers requests in order (the last answer repeats) and keeps them."""

    def __init__(self, *answers: tuple[int, dict[str, Any]] | tuple[int, Any, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        headers = answer[2] if len(answer) > 2 else {}
        return httpx.Response(answer[0], json=answer[1], headers=headers)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def adapter(
    script: Script, sleeps: list[float] | None = None, deadline: Deadline | None = None
) -> HubSpotCrm:
    http = HttpClient(
        httpx.Client(transport=httpx.MockTransport(script)),
        service="hubspot",
        policy=RetryPolicy(max_attempts=4, base_delay=0.1),
        deadline=deadline,
        describe_error=describe_hubspot_error,
        sleep=(sleeps if sleeps is not None else []).append,
        rand=lambda: 0.5,
    )
    return HubSpotCrm(http, TOKEN, base_url=BASE)


def upserted(*results: dict[str, Any], errors: list[dict[str, Any]] | None = None) -> Any:
    body: dict[str, Any] = {"status": "COMPLETE", "results": list(results)}
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
    return (207 if errors else 200, body)


def contact(trace: str, contact_id: str, email: str, new: bool = True) -> dict[str, Any]:
    return {
        "id": contact_id,
        "properties": {"email": email},
        "new": new,
        "objectWriteTraceId": trace,
        "archived": False,
    }


def test_given_contacts_then_one_batch_upsert_by_email_with_bearer_auth() -> None:
    script = Script(upserted(contact("0", "101", "ann@example.com")))

    outcome = adapter(script).upsert_contacts(
        [CrmInput(key="ann@example.com", properties={"email": "ann@example.com"})]
    )

    (request,) = script.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/crm/v3/objects/contacts/batch/upsert"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert script.bodies()[0] == {
        "inputs": [
            {
                "idProperty": "email",
                "id": "ann@example.com",
                "objectWriteTraceId": "0",
                "properties": {"email": "ann@example.com"},
            }
        ]
    }
    assert outcome.ids == {"ann@example.com": "101"}
    assert outcome.created == frozenset({"ann@example.com"})


def test_given_a_207_then_the_refused_input_is_named_and_the_others_succeed() -> None:
    refusal = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "Property values were not valid",
        "context": {"objectWriteTraceId": ["1"], "ids": ["jane@example"]},
        "errors": [{"message": "Email address jane@example is invalid", "code": "INVALID_EMAIL"}],
    }
    script = Script(upserted(contact("0", "101", "ann@example.com"), errors=[refusal]))

    outcome = adapter(script).upsert_contacts(
        [
            CrmInput(key="ann@example.com", properties={}),
            CrmInput(key="jane@example", properties={}),
        ]
    )

    assert outcome.ids == {"ann@example.com": "101"}
    assert list(outcome.errors) == ["jane@example"]
    assert outcome.errors["jane@example"].code == "INVALID_EMAIL"
    assert outcome.errors["jane@example"].category == "VALIDATION_ERROR"


def test_given_an_error_without_trace_ids_then_it_is_matched_by_the_ids_in_its_context() -> None:
    refusal = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "invalid",
        "context": {"ids": ["Jane@Example"]},
        "errors": [{"message": "invalid", "code": "INVALID_EMAIL"}],
    }
    script = Script(upserted(errors=[refusal]))

    outcome = adapter(script).upsert_contacts([CrmInput(key="jane@example", properties={})])

    assert list(outcome.errors) == ["jane@example"]


def test_given_a_429_with_retry_after_then_it_waits_that_long_and_succeeds() -> None:
    sleeps: list[float] = []
    script = Script(RATE_LIMITED, upserted(contact("0", "101", "ann@example.com")))

    outcome = adapter(script, sleeps).upsert_contacts(
        [CrmInput(key="ann@example.com", properties={})]
    )

    assert outcome.ids == {"ann@example.com": "101"}
    assert sleeps == [2.0]
    assert len(script.requests) == 2


def test_given_a_429_longer_than_the_time_left_then_it_fails_at_once_as_retryable() -> None:
    sleeps: list[float] = []
    deadline = Deadline(clock=lambda: 0.0)
    deadline.reset(1.0)
    script = Script(RATE_LIMITED)

    with pytest.raises(RetryableUpstreamError) as raised:
        adapter(script, sleeps, deadline).upsert_contacts(
            [CrmInput(key="ann@example.com", properties={})]
        )

    assert raised.value.status == 429
    assert raised.value.code == "RATE_LIMIT"
    assert raised.value.retry_after == 2.0
    assert sleeps == []
    assert len(script.requests) == 1


def test_given_a_5xx_then_the_idempotent_upsert_is_retried() -> None:
    sleeps: list[float] = []
    script = Script(
        (502, {"status": "error", "message": "Bad gateway", "category": "INTERNAL_ERROR"}),
        upserted(contact("0", "101", "ann@example.com")),
    )

    outcome = adapter(script, sleeps).upsert_contacts(
        [CrmInput(key="ann@example.com", properties={})]
    )

    assert outcome.ids == {"ann@example.com": "101"}
    assert len(script.requests) == 2


def test_given_a_bad_token_then_a_permanent_error_with_hubspots_category() -> None:
    script = Script(
        (
            401,
            {
                "status": "error",
                "message": "Authentication credentials not found.",
                "correlationId": "x",
                "category": "INVALID_AUTHENTICATION",
            },
        )
    )

    with pytest.raises(PermanentUpstreamError) as raised:
        adapter(script).upsert_contacts([CrmInput(key="ann@example.com", properties={})])

    assert raised.value.status == 401
    assert raised.value.code == "INVALID_AUTHENTICATION"


def test_given_deals_then_they_upsert_on_the_unique_order_id_property() -> None:
    script = Script(
        upserted(
            {
                "id": "9001",
                "properties": {"storewire_order_id": "shopify:s:1"},
                "new": True,
                "objectWriteTraceId": "0",
            }
        )
    )

    outcome = adapter(script).upsert_deals(
        [CrmInput(key="shopify:s:1", properties={"dealname": "Order #1"})]
    )

    assert str(script.requests[0].url) == f"{BASE}/crm/v3/objects/deals/batch/upsert"
    assert script.bodies()[0]["inputs"][0]["idProperty"] == "storewire_order_id"
    assert outcome.ids == {"shopify:s:1": "9001"}


def test_given_deal_contact_pairs_then_one_default_association_batch() -> None:
    script = Script(
        (
            200,
            {
                "status": "COMPLETE",
                "results": [
                    {
                        "from": {"id": "9001"},
                        "to": {"id": "101"},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": 3,
                        },
                    }
                ],
            },
        )
    )

    outcome = adapter(script).associate_deals([("9001", "101")])

    assert str(script.requests[0].url) == (
        f"{BASE}/crm/v4/associations/deals/contacts/batch/associate/default"
    )
    assert script.bodies()[0] == {"inputs": [{"from": {"id": "9001"}, "to": {"id": "101"}}]}
    assert outcome.ids == {"9001": "101"}
    assert outcome.errors == {}


def test_given_nothing_to_send_then_no_request_is_made() -> None:
    script = Script(upserted())

    crm = adapter(script)

    assert crm.upsert_contacts([]).ids == {}
    assert crm.associate_deals([]).ids == {}
    assert script.requests == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "error", "message": "m", "errorType": "RATE_LIMIT"}, ("RATE_LIMIT", "m")),
        (
            {"status": "error", "message": "v", "category": "VALIDATION_ERROR"},
            ("VALIDATION_ERROR", "v"),
        ),
        ("plain", (None, "HTTP 400")),
    ],
)
def test_hubspot_errors_are_described_by_their_type(body: Any, expected: tuple[Any, str]) -> None:
    response = httpx.Response(400, json=body)

    assert describe_hubspot_error(response) == expected
