"""The real template.yaml on the emulator: signed Shopify webhooks in, canonical events out."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from storewire_local.signing import shopify_headers
from storewire_local.testing import EmulatorHandle

pytestmark = pytest.mark.e2e

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads" / "shopify"
SECRET = "shpss_e2e_secret"  # the fixture seeds SHOPIFY_WEBHOOK_SECRET with it
SHOP = "storewire-demo.myshopify.com"


def payload(topic: str) -> bytes:
    return (PAYLOADS / f"{topic.replace('/', '_')}.json").read_bytes()


def post(
    emulator: EmulatorHandle, topic: str, body: bytes, webhook_id: str, *, tamper: bool = False
) -> httpx.Response:
    headers = shopify_headers(
        topic, body, secret=SECRET, shop=SHOP, webhook_id=webhook_id, tamper=tamper
    )
    return emulator.http.post("/webhooks/shopify", content=body, headers=headers)


def polled(emulator: EmulatorHandle, queue: str) -> bool:
    return any(p.source.queue_id == queue for p in emulator.emu.pollers)


def test_the_template_graph_is_created(emulator: EmulatorHandle) -> None:
    resources = emulator.emu.physical_resources()
    for logical_id in (
        "EventBus",
        "WebhookDedupeTable",
        "ClaimCheckBucket",
        "ShopifyWebhookSecret",
        "PaymentConfirmationQueue",
        "StockAdjustmentQueue",
        "LabelCreationQueue",
        "CrmSyncQueue",
    ):
        assert logical_id in resources, logical_id
    assert resources["EventBus"] == "storewire-local"
    secret = emulator.client("secretsmanager").get_secret_value(
        SecretId=resources["ShopifyWebhookSecret"]
    )
    assert json.loads(secret["SecretString"]) == {"current": SECRET, "previous": ""}
    routes = [r.route_key for r in emulator.emu.http.routes] if emulator.emu.http else []
    assert "POST /webhooks/{source}" in routes


def test_signed_order_becomes_events_once(emulator: EmulatorHandle) -> None:
    body = payload("orders/create")
    order_id = str(json.loads(body)["id"])
    webhook_id = str(uuid.uuid4())
    first = post(emulator, "orders/create", body, webhook_id)
    assert first.status_code == 200, first.text
    emulator.wait_idle()
    placed = [
        e for e in emulator.events("OrderPlaced") if e["detail"].get("delivery_id") == webhook_id
    ]
    assert len(placed) == 1
    detail = placed[0]["detail"]
    assert detail["order_id"] == f"shopify:{SHOP}:{order_id}"
    assert str(detail["external_order_id"]) == order_id
    assert placed[0]["source"] == "storewire.shopify"

    again = post(emulator, "orders/create", body, webhook_id)
    assert again.status_code == 200
    emulator.wait_idle()
    assert [e for e in emulator.events() if e["detail"].get("delivery_id") == webhook_id] == placed

    for queue in ("PaymentConfirmationQueue", "StockAdjustmentQueue", "CrmSyncQueue"):
        if polled(emulator, queue):
            continue  # a consumer drained it; its own tests cover what it did
        ids = [json.loads(m["body"])["detail"]["event_id"] for m in emulator.peek(queue)]
        assert detail["event_id"] in ids, queue


def test_bad_signature_is_refused_and_emits_nothing(emulator: EmulatorHandle) -> None:
    before = len(emulator.events())
    answer = post(
        emulator, "orders/create", payload("orders/create"), str(uuid.uuid4()), tamper=True
    )
    assert answer.status_code == 401
    assert len(emulator.events()) == before


def test_bus_failure_answers_5xx_and_the_senders_retry_succeeds(
    emulator: EmulatorHandle,
) -> None:
    body = payload("orders/paid")
    webhook_id = str(uuid.uuid4())
    emulator.fault("events", "PutEvents", status=500, count=None)  # outlasts SDK retries
    try:
        failed = post(emulator, "orders/paid", body, webhook_id)
    finally:
        emulator.clear_faults()
    assert failed.status_code >= 500, failed.text
    assert not [e for e in emulator.events() if e["detail"].get("delivery_id") == webhook_id]
    retried = post(emulator, "orders/paid", body, webhook_id)
    assert retried.status_code == 200, retried.text
    emulator.wait_idle()
    assert [e for e in emulator.events() if e["detail"].get("delivery_id") == webhook_id]
