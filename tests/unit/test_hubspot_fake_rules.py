"""The HubSpot fake's rules, driven in process through `dispatch` (no server, no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from storewire_local.fakes.base import FakeRequest
from storewire_local.fakes.hubspot import DEFAULT_ACCESS_TOKEN, HubSpotFake

UPSERT_CONTACTS = "/crm/v3/objects/contacts/batch/upsert"
UPSERT_DEALS = "/crm/v3/objects/deals/batch/upsert"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(
    fake: HubSpotFake,
    method: str,
    path: str,
    body: Any = None,
    token: str = DEFAULT_ACCESS_TOKEN,
    query: str = "",
) -> tuple[int, Any, dict[str, str]]:
    request = FakeRequest(
        method=method,
        path=path,
        query=query,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        body=b"" if body is None else json.dumps(body).encode(),
    )
    response, dropped = fake.dispatch(request)
    assert response is not None
    assert not dropped
    return response.status, response.body, response.headers


def contact_inputs(*emails: str, **props: str) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "idProperty": "email",
                "id": email,
                "objectWriteTraceId": str(i),
                "properties": {"email": email, **props},
            }
            for i, email in enumerate(emails)
        ]
    }


def test_given_new_emails_then_contacts_are_created_and_an_upsert_again_updates_them() -> None:
    fake = HubSpotFake()

    status, first, _ = call(fake, "POST", UPSERT_CONTACTS, contact_inputs("Ann@Example.com"))
    _, second, _ = call(
        fake, "POST", UPSERT_CONTACTS, contact_inputs("ann@example.com", firstname="Ann")
    )

    assert status == 200
    assert first["status"] == "COMPLETE"
    assert first["results"][0]["new"] is True
    assert second["results"][0]["new"] is False
    assert second["results"][0]["id"] == first["results"][0]["id"]
    assert second["results"][0]["properties"]["firstname"] == "Ann"
    assert len(fake.contacts()) == 1


def test_given_one_invalid_email_then_207_refuses_only_that_input_in_hubspots_shape() -> None:
    fake = HubSpotFake()

    status, body, _ = call(
        fake, "POST", UPSERT_CONTACTS, contact_inputs("ann@example.com", "jane@example")
    )

    assert status == 207
    assert [r["properties"]["email"] for r in body["results"]] == ["ann@example.com"]
    (error,) = body["errors"]
    assert error["status"] == "error"
    assert error["category"] == "VALIDATION_ERROR"
    assert error["context"]["objectWriteTraceId"] == ["1"]
    assert error["errors"][0]["code"] == "INVALID_EMAIL"
    assert body["numErrors"] == 1
    assert fake.contact("jane@example") is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"inputs": []},
        {"inputs": [{"idProperty": "email", "properties": {}}]},
        {"inputs": [{"idProperty": "firstname", "id": "a@b.co", "properties": {}}]},
        contact_inputs("a@b.co", "A@B.co"),
        contact_inputs(*(f"u{i}@b.co" for i in range(101))),
    ],
)
def test_given_a_malformed_batch_then_400_validation_error(body: dict[str, Any]) -> None:
    status, answer, _ = call(HubSpotFake(), "POST", UPSERT_CONTACTS, body)

    assert status == 400
    assert answer["status"] == "error"
    assert answer["category"] == "VALIDATION_ERROR"
    assert "correlationId" in answer


def test_given_a_wrong_token_then_401_in_hubspots_shape() -> None:
    status, body, _ = call(
        HubSpotFake(), "POST", UPSERT_CONTACTS, contact_inputs("a@b.co"), token="pat-wrong"
    )

    assert status == 401
    assert body["category"] == "INVALID_AUTHENTICATION"


def test_given_190_requests_in_10_seconds_then_the_191st_is_429_with_retry_after() -> None:
    clock = Clock()
    fake = HubSpotFake(clock=clock)
    for i in range(190):
        clock.now += 0.01
        status, _, headers = call(fake, "GET", f"/crm/v3/objects/contacts/{i}")
        assert status == 404
    assert headers["X-HubSpot-RateLimit-Remaining"] == "0"

    status, body, headers = call(fake, "GET", "/crm/v3/objects/contacts/x")

    assert status == 429
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert int(headers["Retry-After"]) >= 1
    assert headers["X-HubSpot-RateLimit-Max"] == "190"


def test_given_the_window_slides_then_requests_are_admitted_again() -> None:
    clock = Clock()
    fake = HubSpotFake(clock=clock, rate_limit=2, window_seconds=10)
    call(fake, "GET", "/crm/v3/objects/contacts/1")
    clock.now += 6
    call(fake, "GET", "/crm/v3/objects/contacts/2")
    assert call(fake, "GET", "/crm/v3/objects/contacts/3")[0] == 429

    clock.now += 4.5  # the first request left the window; the second has not
    assert call(fake, "GET", "/crm/v3/objects/contacts/4")[0] == 404
    assert call(fake, "GET", "/crm/v3/objects/contacts/5")[0] == 429


def test_given_deals_then_upsert_on_the_unique_order_id_and_associate_to_a_contact() -> None:
    fake = HubSpotFake()
    _, contacts, _ = call(fake, "POST", UPSERT_CONTACTS, contact_inputs("ann@example.com"))
    contact_id = contacts["results"][0]["id"]
    deal = {
        "inputs": [
            {
                "idProperty": "storewire_order_id",
                "id": "shopify:s:1",
                "properties": {"dealname": "Order #1", "amount": "177.96"},
            }
        ]
    }
    _, first, _ = call(fake, "POST", UPSERT_DEALS, deal)
    _, again, _ = call(fake, "POST", UPSERT_DEALS, deal)
    deal_id = first["results"][0]["id"]

    status, linked, _ = call(
        fake,
        "POST",
        "/crm/v4/associations/deals/contacts/batch/associate/default",
        {"inputs": [{"from": {"id": deal_id}, "to": {"id": contact_id}}]},
    )

    assert again["results"][0]["id"] == deal_id
    assert status == 200
    assert linked["results"][0]["associationSpec"]["associationTypeId"] == 3
    assert fake.associated("contacts", contact_id, "deals") == [deal_id]
    _, listed, _ = call(fake, "GET", f"/crm/v4/objects/deals/{deal_id}/associations/contacts")
    assert [r["toObjectId"] for r in listed["results"]] == [int(contact_id)]


def test_given_a_deal_with_a_non_numeric_amount_then_only_it_is_refused() -> None:
    fake = HubSpotFake()
    body = {
        "inputs": [
            {"idProperty": "storewire_order_id", "id": "o1", "properties": {"amount": "x"}},
            {"idProperty": "storewire_order_id", "id": "o2", "properties": {"amount": "1.00"}},
        ]
    }

    status, answer, _ = call(fake, "POST", UPSERT_DEALS, body)

    assert status == 207
    assert answer["errors"][0]["errors"][0]["code"] == "INVALID_DECIMAL"
    assert fake.deal("o2") is not None


def test_given_an_archived_contact_then_it_is_gone_and_its_email_makes_a_new_one() -> None:
    fake = HubSpotFake()
    _, created, _ = call(fake, "POST", UPSERT_CONTACTS, contact_inputs("ann@example.com"))
    contact_id = created["results"][0]["id"]

    status, _, _ = call(fake, "DELETE", f"/crm/v3/objects/contacts/{contact_id}")
    assert status == 204
    assert call(fake, "GET", f"/crm/v3/objects/contacts/{contact_id}")[0] == 404

    _, again, _ = call(fake, "POST", UPSERT_CONTACTS, contact_inputs("ann@example.com"))
    assert again["results"][0]["new"] is True
    assert again["results"][0]["id"] != contact_id


def test_given_a_lookup_by_email_then_the_contact_is_found() -> None:
    fake = HubSpotFake()
    call(fake, "POST", UPSERT_CONTACTS, contact_inputs("ann@example.com"))

    status, found, _ = call(
        fake, "GET", "/crm/v3/objects/contacts/ANN@example.com", query="idProperty=email"
    )

    assert status == 200
    assert found["properties"]["email"] == "ann@example.com"


def test_given_an_injected_429_fault_then_hubspots_body_with_the_fault_retry_after() -> None:
    fake = HubSpotFake()
    fake.add_fault({"mode": "429", "retry_after": 3, "count": 1})

    status, body, headers = call(fake, "POST", UPSERT_CONTACTS, contact_inputs("a@b.co"))

    assert status == 429
    assert body["errorType"] == "RATE_LIMIT"
    assert headers["Retry-After"] == "3"
    assert call(fake, "POST", UPSERT_CONTACTS, contact_inputs("a@b.co"))[0] == 200


def test_given_the_rate_limit_control_then_it_changes_and_reset_restores_it() -> None:
    fake = HubSpotFake()

    status, body, _ = call(fake, "POST", "/_fake/rate_limit", {"max": 5, "window_seconds": 1})
    assert (status, body) == (200, {"max": 5, "window_seconds": 1.0})

    fake.reset()
    assert fake.rate_limit == 190
