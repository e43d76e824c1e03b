"""Shopify's mandatory compliance webhooks: verified, normalised to ids and emails only."""

from __future__ import annotations

import json

import pytest
from samples import DEV_SECRET, sample_event, sample_payload
from storewire.domain.events import (
    CustomerDataRequested,
    CustomerRedactionRequested,
    ShopRedactionRequested,
    parse_event,
)
from storewire.errors import MalformedPayload, SignatureInvalid
from storewire.sources import Headers, WebhookSecrets
from storewire.sources.shopify import ADAPTER, PRIVACY_TOPICS


def normalise(topic: str, payload: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    event = sample_event(topic)
    body = event["body"].encode() if payload is None else json.dumps(payload).encode()
    return ADAPTER.normalise(Headers(event["headers"]), body)


def test_the_three_compliance_topics_are_handled() -> None:
    assert {"customers/data_request", "customers/redact", "shop/redact"} == PRIVACY_TOPICS


def test_a_data_request_carries_ids_and_the_email_only() -> None:
    (event,) = normalise("customers/data_request").events

    assert isinstance(event, CustomerDataRequested)
    assert event.customer_id == "shopify:storewire-demo.myshopify.com:customer:7234567890123"
    assert event.data is not None
    assert event.data.external_customer_id == "7234567890123"
    assert event.data.email == "jane.doe@example.com"
    assert event.data.external_order_ids == ("5745289347382",)
    assert event.data.data_request_id == "9999"
    assert "6135550199" not in event.model_dump_json()  # the phone is not needed: not kept
    assert parse_event(event.model_dump_json()) == event


def test_a_redaction_request_names_the_orders_to_redact() -> None:
    (event,) = normalise("customers/redact").events

    assert isinstance(event, CustomerRedactionRequested)
    assert event.data is not None
    assert event.data.external_order_ids == ("5745289347382",)
    assert "6135550199" not in event.model_dump_json()


def test_a_redaction_with_only_an_email_is_accepted() -> None:
    payload = sample_payload("customers/redact")
    payload["customer"] = {"email": "only@example.com"}
    (event,) = normalise("customers/redact", payload).events

    assert event.customer_id is None
    assert event.data is not None
    assert event.data.email == "only@example.com"


def test_a_redaction_naming_nobody_is_malformed() -> None:
    payload = sample_payload("customers/redact")
    payload["customer"] = {}
    with pytest.raises(MalformedPayload):
        normalise("customers/redact", payload)


def test_a_shop_redaction_names_the_shop() -> None:
    (event,) = normalise("shop/redact").events

    assert isinstance(event, ShopRedactionRequested)
    assert event.data is not None
    assert event.data.shop_domain == "storewire-demo.myshopify.com"
    assert event.data.shop_id == "954889"


@pytest.mark.parametrize("topic", sorted(PRIVACY_TOPICS))
def test_a_compliance_webhook_with_a_bad_signature_is_refused(topic: str) -> None:
    event = sample_event(topic)
    body = event["body"].encode()
    ADAPTER.verify(Headers(event["headers"]), body, WebhookSecrets(current=DEV_SECRET))
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(Headers(event["headers"]), body + b" ", WebhookSecrets(current=DEV_SECRET))
