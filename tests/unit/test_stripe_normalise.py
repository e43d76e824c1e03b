"""Stripe events -> canonical events: which order, what report, what is ignored."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from payment_fakes import ORDER_EXTERNAL_ID, ORDER_ID, SHOP, intent, stripe_event
from storewire.domain.events import OrderPaymentReported, RefundIssued, event_id
from storewire.domain.payments import PaymentReport
from storewire.errors import MalformedPayload
from storewire.sources import Headers, get_source
from storewire.sources.stripe import StripeSource, order_ref

SOURCE = StripeSource()


def normalise(event: dict[str, object]):  # type: ignore[no-untyped-def]
    return SOURCE.normalise(Headers({}), json.dumps(event).encode())


def test_given_payment_intent_succeeded_when_normalised_then_an_unverified_report() -> None:
    result = normalise(stripe_event("payment_intent.succeeded", intent(), evt="evt_1A"))

    (event,) = result.events
    assert isinstance(event, OrderPaymentReported)
    assert result.delivery_id == "evt_1A"
    assert result.topic == "payment_intent.succeeded"
    assert event.event_id == event_id("stripe", "evt_1A", "OrderPaymentReported", 0)
    assert event.source == "stripe"
    assert event.order_id == ORDER_ID
    assert event.external_order_id == ORDER_EXTERNAL_ID
    assert event.shop == SHOP
    assert event.channel == "shopify"
    assert isinstance(event.data, PaymentReport)
    assert event.data.reference == "pi_3Q0storewire"
    assert event.data.status == "succeeded"
    assert event.data.amount.amount == Decimal("177.96")
    assert event.data.amount.currency == "USD"


def test_given_payment_failed_when_normalised_then_a_failed_report() -> None:
    failed = intent(
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )

    (event,) = normalise(stripe_event("payment_intent.payment_failed", failed)).events

    assert isinstance(event.data, PaymentReport)
    assert event.data.status == "failed"


def test_given_a_zero_decimal_currency_when_normalised_then_minor_units_are_whole_yen() -> None:
    (event,) = normalise(
        stripe_event("payment_intent.succeeded", intent(amount=1500, currency="jpy"))
    ).events

    assert event.data.amount.amount == Decimal("1500")
    assert event.data.amount.currency == "JPY"


def test_given_charge_refunded_when_normalised_then_refund_issued_without_lines() -> None:
    charge = {
        "id": "ch_3Q0storewire",
        "object": "charge",
        "amount": 17796,
        "amount_refunded": 5000,
        "currency": "usd",
        "payment_intent": "pi_3Q0storewire",
        "refunded": False,
        "metadata": {"order_id": ORDER_ID},
        "refunds": {
            "data": [{"id": "re_1", "amount": 5000, "currency": "usd", "status": "succeeded"}]
        },
    }

    (event,) = normalise(stripe_event("charge.refunded", charge)).events

    assert isinstance(event, RefundIssued)
    assert event.data is not None
    assert event.data.refund_id == "re_1"
    assert event.data.amount.amount == Decimal("50.00")
    assert event.data.lines == ()
    assert event.data.restock is False


def test_given_a_refund_without_a_canonical_order_when_normalised_then_ignored() -> None:
    charge = {
        "id": "ch_1",
        "amount": 100,
        "amount_refunded": 100,
        "currency": "usd",
        "metadata": {"order_id": "1001"},
    }

    result = normalise(stripe_event("charge.refunded", charge))

    assert result.ignored
    assert result.events == ()


def test_given_no_order_id_in_metadata_when_normalised_then_ignored() -> None:
    result = normalise(stripe_event("payment_intent.succeeded", intent(metadata={})))

    assert result.ignored
    assert result.delivery_id == "evt_1storewire"


@pytest.mark.parametrize(
    "event_type", ["customer.created", "payment_intent.created", "charge.succeeded"]
)
def test_given_an_unhandled_event_type_when_normalised_then_ignored(event_type: str) -> None:
    result = normalise(stripe_event(event_type, {"id": "x"}))

    assert result.ignored
    assert result.topic == event_type


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"id": "evt_1"}', b'{"id": "x", "type": "t", "created": 1, "data": {}}'],
)
def test_given_a_malformed_body_when_normalised_then_malformed_payload(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        SOURCE.normalise(Headers({}), body)


def test_given_an_intent_without_amount_when_normalised_then_malformed_payload() -> None:
    broken = intent()
    del broken["amount"]

    with pytest.raises(MalformedPayload, match="amount"):
        normalise(stripe_event("payment_intent.succeeded", broken))


@pytest.mark.parametrize(
    ("metadata", "order_id", "external", "shop"),
    [
        ({"order_id": ORDER_ID}, ORDER_ID, ORDER_EXTERNAL_ID, SHOP),
        ({"order_id": "1001", "shop": SHOP}, f"shopify:{SHOP}:1001", "1001", SHOP),
        (
            {"order_id": "77", "shop": "x.example", "channel": "woocommerce"},
            "woocommerce:x.example:77",
            "77",
            "x.example",
        ),
        ({"order_id": "1001"}, None, "1001", None),
    ],
)
def test_given_metadata_when_the_order_is_referenced_then_canonical_when_possible(
    metadata: dict[str, str], order_id: str | None, external: str, shop: str | None
) -> None:
    ref = order_ref(metadata)

    assert ref is not None
    assert (ref.order_id, ref.external_order_id, ref.shop) == (order_id, external, shop)


def test_given_only_the_storefront_id_when_normalised_then_the_consumer_resolves_it() -> None:
    (event,) = normalise(
        stripe_event("payment_intent.succeeded", intent(metadata={"order_id": "5745289347382"}))
    ).events

    assert event.order_id is None
    assert event.external_order_id == "5745289347382"
    assert event.correlation_id == "5745289347382"


def test_given_the_registry_when_asked_for_stripe_then_the_stripe_adapter() -> None:
    assert get_source("stripe").name == "stripe"
