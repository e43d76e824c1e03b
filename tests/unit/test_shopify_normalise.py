from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from samples import SHOPIFY_TOPICS, sample_event, sample_payload
from storewire.domain.events import (
    CustomerData,
    CustomerUpserted,
    OrderCancelled,
    OrderData,
    OrderPaymentReported,
    OrderPlaced,
    OrderUpdated,
    RefundData,
    RefundIssued,
    event_id,
    parse_event,
)
from storewire.domain.money import Money
from storewire.errors import MalformedPayload
from storewire.sources import Headers, get_source
from storewire.sources.shopify import ADAPTER, HANDLED_TOPICS

SHOP = "storewire-demo.myshopify.com"
ORDER_ID = f"shopify:{SHOP}:5745289347382"
CUSTOMER_ID = f"shopify:{SHOP}:customer:7234567890123"


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


def normalise(topic: str, **header_overrides: str) -> Any:
    event = sample_event(topic)
    headers = {**event["headers"], **header_overrides}
    return ADAPTER.normalise(Headers(headers), event["body"].encode())


def headers_for(topic: str, delivery_id: str = "d-1") -> Headers:
    return Headers(
        {
            "x-shopify-topic": topic,
            "x-shopify-shop-domain": SHOP,
            "x-shopify-webhook-id": delivery_id,
        }
    )


def test_given_orders_create_when_normalised_then_order_placed_carries_the_order() -> None:
    result = normalise("orders/create")

    (event,) = result.events
    assert isinstance(event, OrderPlaced)
    assert (event.source, event.shop, event.channel) == ("shopify", SHOP, "shopify")
    assert event.order_id == ORDER_ID
    assert event.external_order_id == "5745289347382"
    assert event.customer_id == CUSTOMER_ID
    assert event.correlation_id == ORDER_ID
    assert event.delivery_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert event.occurred_at == datetime(2026, 11, 20, 15, 15, 33, 401652, tzinfo=UTC)
    assert event.claim_check is None
    data = event.data
    assert isinstance(data, OrderData)
    assert data.order_number == "#1001"
    assert data.financial_status == "authorized"
    assert data.fulfillment_status is None
    assert [(line.sku, line.quantity, line.unit_price) for line in data.lines] == [
        ("SW-TEE-BLK-M", 2, usd("29.00")),
        ("SW-HOOD-GRY-L", 1, usd("79.00")),
        ("SW-MUG-WHT", 1, usd("18.50")),
    ]
    tee = data.lines[0]
    assert (tee.line_id, tee.product_id, tee.variant_id, tee.grams) == (
        "14123456700101",
        "8123456700001",
        "44123456700011",
        180,
    )
    assert data.totals.subtotal == usd("155.50")
    assert data.totals.shipping == usd("7.95")
    assert data.totals.tax == usd("14.51")
    assert data.totals.total == usd("177.96")
    assert data.customer is not None
    assert data.customer.email == "jane.doe@example.com"
    assert data.shipping_address is not None
    assert data.shipping_address.country_code == "US"
    assert data.created_at == datetime.fromisoformat("2026-11-20T10:15:32-05:00")
    assert data.updated_at == datetime.fromisoformat("2026-11-20T10:15:33-05:00")


def test_given_an_order_when_normalised_then_money_adds_up_exactly() -> None:
    data = normalise("orders/create").events[0].data

    line_total = sum((line.unit_price.amount * line.quantity for line in data.lines), Decimal(0))
    assert line_total == data.totals.subtotal.amount
    assert (
        data.totals.subtotal + data.totals.shipping + data.totals.tax - data.totals.discounts
        == data.totals.total
    )
    detail = json.loads(normalise("orders/create").events[0].model_dump_json())
    assert detail["data"]["totals"]["total"] == {"amount": "177.96", "currency": "USD"}


@pytest.mark.parametrize(
    ("topic", "model", "financial_status"),
    [
        ("orders/updated", OrderUpdated, "paid"),
        ("orders/paid", OrderPaymentReported, "paid"),
        ("orders/cancelled", OrderCancelled, "voided"),
    ],
)
def test_given_an_order_topic_when_normalised_then_its_event_type_follows(
    topic: str, model: type, financial_status: str
) -> None:
    (event,) = normalise(topic).events

    assert isinstance(event, model)
    assert event.data.financial_status == financial_status
    assert event.order_id == event.correlation_id


def test_given_orders_cancelled_when_normalised_then_the_reason_and_time_are_kept() -> None:
    data = normalise("orders/cancelled").events[0].data

    assert data.cancel_reason == "customer"
    assert data.cancelled_at == datetime.fromisoformat("2026-11-22T16:20:46-05:00")


def test_given_orders_updated_when_normalised_then_the_later_updated_at_is_kept() -> None:
    created = normalise("orders/create").events[0].data
    updated = normalise("orders/updated").events[0].data

    assert updated.updated_at > created.updated_at
    assert updated.fulfillment_status == "fulfilled"
    assert updated.tags == ("gift", "vip")


def test_given_refunds_create_when_normalised_then_lines_restock_flags_and_amounts_follow() -> None:
    (event,) = normalise("refunds/create").events

    assert isinstance(event, RefundIssued)
    assert event.order_id == ORDER_ID
    assert event.correlation_id == ORDER_ID
    data = event.data
    assert isinstance(data, RefundData)
    assert [(line.sku, line.quantity, line.restock, line.restock_type) for line in data.lines] == [
        ("SW-MUG-WHT", 1, True, "return"),
        ("SW-TEE-BLK-M", 1, False, "no_restock"),
    ]
    assert data.lines[0].subtotal == usd("18.50")
    assert data.lines[0].total_tax == usd("1.64")
    assert data.amount == usd("51.71")
    assert data.restock is True


def test_given_the_refund_sample_when_compared_with_the_order_sample_then_they_match() -> None:
    order = sample_payload("orders/create")
    refund = sample_payload("refunds/create")

    assert refund["order_id"] == order["id"]
    order_lines = {line["id"] for line in order["line_items"]}
    assert {line["line_item_id"] for line in refund["refund_line_items"]} <= order_lines


@pytest.mark.parametrize("topic", ["customers/create", "customers/update"])
def test_given_a_customer_topic_when_normalised_then_customer_upserted(topic: str) -> None:
    (event,) = normalise(topic).events

    assert isinstance(event, CustomerUpserted)
    assert event.order_id is None
    assert event.external_order_id is None
    assert event.customer_id == CUSTOMER_ID
    assert event.correlation_id == CUSTOMER_ID
    assert isinstance(event.data, CustomerData)
    assert event.data.email == "jane.doe@example.com"
    assert event.data.email_marketing_consent == "subscribed"


@pytest.mark.parametrize("topic", SHOPIFY_TOPICS)
def test_given_the_same_delivery_when_normalised_twice_then_the_events_are_identical(
    topic: str,
) -> None:
    first, second = normalise(topic), normalise(topic)

    assert first.events == second.events
    event = first.events[0]
    assert event.event_id == event_id("shopify", event.delivery_id, event.event_type, 0)


@pytest.mark.parametrize("topic", SHOPIFY_TOPICS)
def test_given_another_delivery_of_the_same_payload_when_normalised_then_ids_differ(
    topic: str,
) -> None:
    first = normalise(topic)
    second = normalise(topic, **{"x-shopify-webhook-id": "another-delivery"})

    assert first.events[0].event_id != second.events[0].event_id


@pytest.mark.parametrize("topic", SHOPIFY_TOPICS)
def test_given_an_event_when_serialised_then_parse_event_reads_it_back(topic: str) -> None:
    event = normalise(topic).events[0]

    assert parse_event(event.model_dump_json()) == event


def test_given_no_triggered_at_header_when_normalised_then_occurred_at_is_updated_at() -> None:
    event = sample_event("orders/paid")
    headers = {k: v for k, v in event["headers"].items() if k != "x-shopify-triggered-at"}

    (normalised,) = ADAPTER.normalise(Headers(headers), event["body"].encode()).events
    assert normalised.occurred_at == datetime.fromisoformat("2026-11-20T10:17:05-05:00")


def test_given_nanosecond_triggered_at_when_normalised_then_it_is_parsed() -> None:
    result = normalise(
        "orders/create", **{"x-shopify-triggered-at": "2026-11-20T15:15:33.401652987Z"}
    )

    assert result.events[0].occurred_at == datetime(2026, 11, 20, 15, 15, 33, 401652, tzinfo=UTC)


@pytest.mark.parametrize("topic", ["products/update", "app/uninstalled", "some/new_topic"])
def test_given_an_unhandled_topic_when_normalised_then_it_is_ignored_without_parsing(
    topic: str,
) -> None:
    result = ADAPTER.normalise(headers_for(topic), b"not even json")

    assert result.ignored is True
    assert result.events == ()
    assert result.topic == topic


def test_given_a_body_that_is_not_json_when_normalised_then_malformed() -> None:
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        ADAPTER.normalise(headers_for("orders/create"), b"{not json")
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        ADAPTER.normalise(headers_for("orders/create"), b"\xff\xfe")
    with pytest.raises(MalformedPayload, match="JSON object"):
        ADAPTER.normalise(headers_for("orders/create"), b"[1, 2]")


def test_given_the_wrong_shape_when_normalised_then_malformed_names_the_bad_fields() -> None:
    payload = sample_payload("orders/create")
    del payload["line_items"][0]["id"]
    payload["line_items"][1]["price"] = 79.0  # a float where Shopify sends a string
    del payload["total_price"]

    with pytest.raises(MalformedPayload) as caught:
        ADAPTER.normalise(headers_for("orders/create"), json.dumps(payload).encode())

    assert set(caught.value.fields) == {"line_items.0.id", "line_items.1.price", "total_price"}
    assert "line_items.1.price" in caught.value.message
    assert "orders/create" in caught.value.message


def test_given_a_customer_payload_on_an_order_topic_when_normalised_then_malformed() -> None:
    body = json.dumps(sample_payload("customers/create")).encode()

    with pytest.raises(MalformedPayload) as caught:
        ADAPTER.normalise(headers_for("orders/create"), body)
    assert "line_items" in caught.value.fields


def test_given_a_refund_with_float_only_amounts_when_normalised_then_malformed() -> None:
    payload = sample_payload("refunds/create")
    for line in payload["refund_line_items"]:
        del line["subtotal_set"]  # only the float `subtotal` is left

    with pytest.raises(MalformedPayload) as caught:
        ADAPTER.normalise(headers_for("refunds/create"), json.dumps(payload).encode())
    assert "refund_line_items.0.subtotal_set" in caught.value.fields


@pytest.mark.parametrize(
    "missing", ["x-shopify-topic", "x-shopify-shop-domain", "x-shopify-webhook-id"]
)
def test_given_a_required_header_missing_when_normalised_then_malformed(missing: str) -> None:
    event = sample_event("orders/create")
    headers = {k: v for k, v in event["headers"].items() if k != missing}

    with pytest.raises(MalformedPayload, match="missing"):
        ADAPTER.normalise(Headers(headers), event["body"].encode())


def test_given_the_registry_when_asked_for_shopify_then_it_handles_every_topic() -> None:
    assert get_source("shopify") is ADAPTER
    assert set(SHOPIFY_TOPICS) == HANDLED_TOPICS


def test_given_a_guest_checkout_when_normalised_then_the_customer_is_absent() -> None:
    payload = sample_payload("orders/create")
    payload["customer"] = None

    (event,) = ADAPTER.normalise(headers_for("orders/create"), json.dumps(payload).encode()).events
    assert event.customer_id is None
    assert event.data.customer is None
    assert isinstance(event, OrderPlaced)


def test_given_the_registry_when_looked_up_by_type_then_each_event_has_one_current_model() -> None:
    from storewire.domain.events import EVENT_MODELS, EVENT_TYPES

    assert set(EVENT_TYPES) == {t for t, _ in EVENT_MODELS}
    assert EVENT_TYPES["RefundIssued"] is RefundIssued
