"""Shopify webhooks through the emulator over HTTP, as a storefront would send them.

The emulator runs the real template.yaml with SHOPIFY_WEBHOOK_SECRET=shpss_e2e_secret. Every test
uses fresh webhook ids and looks for its own delivery id on the bus and in the queues, so the
module-scoped emulator can be shared.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from storewire_local.emulator import Emulator
from storewire_local.signing import shopify_headers
from storewire_local.testing import EmulatorHandle

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads" / "shopify"
REAL_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
SECRET = "shpss_e2e_secret"
SHOP = "storewire-demo.myshopify.com"
CONSUMER_QUEUES = (
    "PaymentConfirmationQueue",
    "StockAdjustmentQueue",
    "LabelCreationQueue",
    "CrmSyncQueue",
)
# The routing table of docs/architecture.md: which consumer queues each event must reach.
# Label creation takes the order events for its shipping snapshot (docs/labels.md).
ROUTES = {
    "OrderPlaced": {
        "PaymentConfirmationQueue",
        "StockAdjustmentQueue",
        "LabelCreationQueue",
        "CrmSyncQueue",
    },
    "OrderUpdated": {"LabelCreationQueue", "CrmSyncQueue"},
    "OrderPaymentReported": {"PaymentConfirmationQueue"},
    "OrderCancelled": {"StockAdjustmentQueue", "LabelCreationQueue", "CrmSyncQueue"},
    "RefundIssued": {"PaymentConfirmationQueue", "StockAdjustmentQueue", "CrmSyncQueue"},
    "CustomerUpserted": {"CrmSyncQueue"},
}
TOPICS = {
    "orders/create": "OrderPlaced",
    "orders/updated": "OrderUpdated",
    "orders/paid": "OrderPaymentReported",
    "orders/cancelled": "OrderCancelled",
    "refunds/create": "RefundIssued",
    "customers/create": "CustomerUpserted",
    "customers/update": "CustomerUpserted",
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The real template.yaml with its SQS pollers off: these tests watch the consumer queues
    themselves, so no consumer may take the messages first."""
    emu = Emulator(
        REAL_TEMPLATE,
        port=0,
        state_dir=tmp_path_factory.mktemp("storewire-routing"),
        env={"SHOPIFY_WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        fire_schedules=False,
        pollers=False,
    )
    emu.start()
    handle = EmulatorHandle(emu)
    try:
        yield handle
    finally:
        handle.http.close()
        emu.stop()


def payload(topic: str) -> bytes:
    raw = json.loads((PAYLOADS / f"{topic.replace('/', '_')}.json").read_text())
    return json.dumps(raw, separators=(",", ":")).encode()


def post(
    emulator: EmulatorHandle,
    topic: str,
    body: bytes,
    webhook_id: str,
    *,
    secret: str = SECRET,
    tamper: bool = False,
) -> httpx.Response:
    headers = shopify_headers(
        topic, body, secret=secret, shop=SHOP, webhook_id=webhook_id, tamper=tamper
    )
    return emulator.http.post("/webhooks/shopify", content=body, headers=headers)


def bus_events(emulator: EmulatorHandle, webhook_id: str) -> list[dict[str, Any]]:
    return [e for e in emulator.events() if e["detail"].get("delivery_id") == webhook_id]


def queues_holding(emulator: EmulatorHandle, webhook_id: str) -> dict[str, list[str]]:
    """Per consumer queue, the detail-types of the messages from this delivery."""
    found: dict[str, list[str]] = {}
    for queue in CONSUMER_QUEUES:
        for body in emulator.peek_bodies(queue):
            if body["detail"].get("delivery_id") == webhook_id:
                found.setdefault(queue, []).append(body["detail-type"])
    return found


def dedupe_records(emulator: EmulatorHandle, webhook_id: str) -> list[dict[str, Any]]:
    table = emulator.resource("WebhookDedupeTable")
    items = emulator.client("dynamodb").scan(TableName=table)["Items"]
    return [item for item in items if webhook_id in item["pk"]["S"]]


def nothing_happened(emulator: EmulatorHandle, webhook_id: str) -> bool:
    return (
        not bus_events(emulator, webhook_id)
        and not queues_holding(emulator, webhook_id)
        and not dedupe_records(emulator, webhook_id)
    )


@pytest.mark.parametrize(("topic", "event_type"), sorted(TOPICS.items()))
def test_a_signed_webhook_becomes_one_event_in_exactly_its_consumer_queues(
    emulator: EmulatorHandle, topic: str, event_type: str
) -> None:
    # Given a webhook signed with the secret from SHOPIFY_WEBHOOK_SECRET
    webhook_id = str(uuid.uuid4())

    # When Shopify posts it
    response = post(emulator, topic, payload(topic), webhook_id)
    emulator.wait_idle()

    # Then it is accepted, one canonical event is on the bus, and exactly its consumers got it
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    events = bus_events(emulator, webhook_id)
    assert [e["detail-type"] for e in events] == [event_type]
    assert events[0]["source"] == "storewire.shopify"
    assert events[0]["detail"]["event_id"] in response.json()["events"]
    routed = queues_holding(emulator, webhook_id)
    assert set(routed) == ROUTES[event_type]
    assert all(kinds == [event_type] for kinds in routed.values())


def test_a_webhook_delivered_many_times_is_one_event(emulator: EmulatorHandle) -> None:
    # Given one orders/create delivery
    webhook_id = str(uuid.uuid4())
    body = payload("orders/create")

    # When Shopify delivers it three times in a row, then five times at once
    answers = [post(emulator, "orders/create", body, webhook_id) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers += list(
            pool.map(lambda _: post(emulator, "orders/create", body, webhook_id), [0] * 5)
        )
    emulator.wait_idle()

    # Then the first is accepted, the rest are duplicates (or, racing, told to retry), and the bus
    # and every consumer queue hold exactly one event
    statuses = [a.json().get("status") for a in answers if a.status_code == 200]
    assert statuses.count("accepted") == 1
    assert all(a.status_code in (200, 409) for a in answers)
    assert len(bus_events(emulator, webhook_id)) == 1
    assert all(len(kinds) == 1 for kinds in queues_holding(emulator, webhook_id).values())
    assert len(queues_holding(emulator, webhook_id)) == len(ROUTES["OrderPlaced"])


def test_a_tampered_webhook_is_refused_and_changes_nothing(emulator: EmulatorHandle) -> None:
    webhook_id = str(uuid.uuid4())

    response = post(emulator, "orders/create", payload("orders/create"), webhook_id, tamper=True)
    emulator.wait_idle()

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "SignatureInvalid"
    assert nothing_happened(emulator, webhook_id)


def test_a_webhook_signed_with_another_secret_is_refused(emulator: EmulatorHandle) -> None:
    # The development default is not the secret this emulator was given in the environment
    webhook_id = str(uuid.uuid4())

    response = post(
        emulator,
        "orders/create",
        payload("orders/create"),
        webhook_id,
        secret="shpss_storewire_dev_secret",
    )

    assert response.status_code == 401
    assert nothing_happened(emulator, webhook_id)


def test_a_malformed_body_is_a_400_and_changes_nothing(emulator: EmulatorHandle) -> None:
    webhook_id = str(uuid.uuid4())

    response = post(emulator, "orders/create", b'{"id": 1, "line_items": [', webhook_id)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "MalformedPayload"
    assert nothing_happened(emulator, webhook_id)


def test_a_body_that_does_not_fit_the_topic_is_a_400(emulator: EmulatorHandle) -> None:
    webhook_id = str(uuid.uuid4())

    response = post(
        emulator, "orders/create", b'{"id": "not-a-number", "line_items": 7}', webhook_id
    )

    assert response.status_code == 400
    assert nothing_happened(emulator, webhook_id)


def test_an_oversized_body_is_a_413_and_changes_nothing(emulator: EmulatorHandle) -> None:
    webhook_id = str(uuid.uuid4())
    body = b'{"id": 1, "note": "' + b"x" * (4 * 1024 * 1024) + b'"}'

    response = post(emulator, "orders/create", body, webhook_id)

    assert response.status_code == 413
    assert response.json()["error"]["type"] == "PayloadTooLarge"
    assert nothing_happened(emulator, webhook_id)


def test_an_unhandled_topic_is_acknowledged_and_ignored(emulator: EmulatorHandle) -> None:
    webhook_id = str(uuid.uuid4())

    response = post(emulator, "products/update", b'{"id": 632910392}', webhook_id)
    emulator.wait_idle()

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert not bus_events(emulator, webhook_id)
    assert not queues_holding(emulator, webhook_id)


def test_when_the_bus_refuses_the_sender_gets_a_5xx_and_its_retry_succeeds_once(
    emulator: EmulatorHandle,
) -> None:
    # Given the bus refuses every PutEvents (the SDK's own retries are exhausted too)
    webhook_id = str(uuid.uuid4())
    body = payload("orders/create")
    emulator.fault("events", "PutEvents", status=500, count=None)

    # When Shopify delivers, the bus recovers, and Shopify retries the same delivery
    try:
        refused = post(emulator, "orders/create", body, webhook_id)
    finally:
        emulator.clear_faults()
    retried = post(emulator, "orders/create", body, webhook_id)
    emulator.wait_idle()

    # Then the first answer is a 5xx that leaves the sender free to retry, and the retry yields
    # exactly one event
    assert 500 <= refused.status_code < 600
    assert retried.status_code == 200
    assert retried.json()["status"] == "accepted"
    assert len(bus_events(emulator, webhook_id)) == 1
    assert len(queues_holding(emulator, webhook_id)) == len(ROUTES["OrderPlaced"])


def test_an_order_too_large_for_the_bus_travels_as_a_claim_check(emulator: EmulatorHandle) -> None:
    # Given a 300-line order, whose event is larger than EventBridge's 256 KB entry limit
    order = json.loads(payload("orders/create"))
    template_line = order["line_items"][0]
    order["line_items"] = [
        {
            **template_line,
            "id": 9_000_000 + n,
            "sku": f"SW-BULK-{n:03d}",
            "title": f"Bulk item {n} " + "with a long personalised engraving " * 25,
        }
        for n in range(300)
    ]
    order["id"] = 7_000_000_000_001
    body = json.dumps(order).encode()
    webhook_id = str(uuid.uuid4())

    # When it is delivered
    response = post(emulator, "orders/create", body, webhook_id)
    emulator.wait_idle()

    # Then the bus carries a reference, and the stored payload holds all 300 lines
    assert response.status_code == 200, response.text
    (event,) = bus_events(emulator, webhook_id)
    detail = event["detail"]
    assert detail["data"] is None
    ref = detail["claim_check"]
    stored = emulator.client("s3").get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read()
    assert len(json.loads(stored)["lines"]) == 300
    assert set(queues_holding(emulator, webhook_id)) == ROUTES["OrderPlaced"]
