"""Stripe webhooks through the ingestion service, exactly as Shopify's go (fakes, no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from ingest_fakes import Fakes
from samples import EVENTS_DIR
from storewire.domain.events import OrderPaymentReported, RefundIssued, parse_event
from storewire.errors import SignatureInvalid, StaleWebhook
from storewire.ingest import IngestResult, dedupe_key, ingest_webhook
from storewire.sources.stripe import StripeSource, signature_header

STRIPE_SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stripe-webhook"
WHSEC = "whsec_storewire_dev_secret"
SENT = 1763651735  # the samples' `created`: 2025-11-20T15:15:35Z


def payload(name: str) -> bytes:
    raw = json.loads((EVENTS_DIR / "payloads" / "stripe" / f"{name}.json").read_text())
    return json.dumps(raw, separators=(",", ":")).encode()


def stripe_fakes() -> Fakes:
    fakes = Fakes()
    fakes.secrets.stored[STRIPE_SECRET_ID] = {"current": WHSEC, "previous": ""}
    fakes.secrets.cached[STRIPE_SECRET_ID] = {"current": WHSEC, "previous": ""}
    fakes.clock.now = datetime.fromtimestamp(SENT + 2, tz=UTC)
    return fakes


def deliver(
    fakes: Fakes, body: bytes, *, signed_at: int = SENT, secret: str = WHSEC, now: int = SENT + 2
) -> IngestResult:
    headers = {
        "content-type": "application/json",
        "stripe-signature": signature_header(body, secret, timestamp=signed_at),
    }
    source = StripeSource(clock=lambda: float(now))
    deps: Any = fakes.deps(secret_ids={"stripe": STRIPE_SECRET_ID}, sources=lambda name: source)
    return ingest_webhook("stripe", headers, body, deps)


def test_given_a_signed_payment_intent_succeeded_when_ingested_then_one_report_published() -> None:
    fakes = stripe_fakes()

    result = deliver(fakes, payload("payment_intent_succeeded"))

    assert result.status == "accepted"
    assert result.delivery_id == "evt_3QStorewireSucceeded01"
    (entry,) = fakes.publisher.published
    assert entry["Source"] == "storewire.stripe"
    assert entry["DetailType"] == "OrderPaymentReported"
    event = parse_event(entry["Detail"])
    assert isinstance(event, OrderPaymentReported)
    assert fakes.dedupe is not None
    assert dedupe_key("stripe", "evt_3QStorewireSucceeded01") in fakes.dedupe.records


def test_given_the_same_stripe_event_twice_when_ingested_then_the_second_is_a_duplicate() -> None:
    fakes = stripe_fakes()
    body = payload("payment_intent_succeeded")

    first = deliver(fakes, body)
    # Stripe retries with a fresh timestamp and signature; the event id is the same.
    second = deliver(fakes, body, signed_at=SENT + 60, now=SENT + 61)

    assert (first.status, second.status) == ("accepted", "duplicate")
    assert len(fakes.publisher.published) == 1


def test_given_charge_refunded_when_ingested_then_refund_issued() -> None:
    fakes = stripe_fakes()

    deliver(fakes, payload("charge_refunded"))

    (entry,) = fakes.publisher.published
    assert isinstance(parse_event(entry["Detail"]), RefundIssued)


def test_given_a_bad_signature_when_ingested_then_401_and_nothing_stored() -> None:
    fakes = stripe_fakes()

    with pytest.raises(SignatureInvalid) as caught:
        deliver(fakes, payload("payment_intent_succeeded"), secret="whsec_wrong")

    assert caught.value.status_code == 401
    assert fakes.publisher.published == []
    assert fakes.dedupe is not None
    assert fakes.dedupe.records == {}


def test_given_a_timestamp_outside_the_tolerance_when_ingested_then_401_stale() -> None:
    fakes = stripe_fakes()

    with pytest.raises(StaleWebhook) as caught:
        deliver(fakes, payload("payment_intent_succeeded"), signed_at=SENT, now=SENT + 301)

    assert caught.value.status_code == 401
    assert fakes.publisher.published == []


def test_given_an_ignored_stripe_type_when_ingested_then_200_ignored() -> None:
    fakes = stripe_fakes()
    body = json.dumps(
        {
            "id": "evt_x",
            "object": "event",
            "type": "customer.created",
            "created": SENT,
            "data": {"object": {}},
        }
    ).encode()

    result = deliver(fakes, body)

    assert result.status == "ignored"
    assert result.body() == {"status": "ignored", "topic": "customer.created"}
    assert fakes.publisher.published == []


def test_given_a_stripe_secret_id_in_the_environment_when_read_then_stripe_is_verifiable() -> None:
    from storewire.config import IngestSettings

    base = {
        "EVENT_BUS_NAME": "bus",
        "DEDUPE_TABLE_NAME": "dedupe",
        "CLAIM_CHECK_BUCKET_NAME": "bucket",
        "SHOPIFY_WEBHOOK_SECRET_ID": "arn:shopify",
    }

    with_stripe = IngestSettings.from_env({**base, "STRIPE_WEBHOOK_SECRET_ID": STRIPE_SECRET_ID})
    without = IngestSettings.from_env(base)

    assert with_stripe.secret_ids() == {"shopify": "arn:shopify", "stripe": STRIPE_SECRET_ID}
    assert without.secret_ids() == {"shopify": "arn:shopify"}
