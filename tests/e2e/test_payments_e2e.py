"""Payments through the emulator over HTTP: Stripe webhooks in, PaymentConfirmed out, once.

The emulator runs the real template.yaml with its Stripe and Shopify Admin fakes (started by
the emulator; the functions reach them through the StripeApiBaseUrl / ShopifyAdminBaseUrl
parameters). The Stripe webhook secret is the development default. Each test uses its own
order id, so the module-scoped emulator can be shared.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from storewire_local.signing import shopify_headers
from storewire_local.testing import EmulatorHandle

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads"
SHOPIFY_SECRET = "shpss_e2e_secret"
STRIPE_SECRET = "whsec_storewire_dev_secret"
STRIPE_KEY = "sk_test_storewire_dev"
SHOP = "storewire-demo.myshopify.com"


def fakes(emulator: EmulatorHandle) -> dict[str, str]:
    urls: dict[str, str] = emulator.emu.info()["fakes"]
    assert {"stripe", "shopify_admin"} <= set(urls), urls
    return urls


def shopify_webhook(emulator: EmulatorHandle, topic: str, external: str) -> httpx.Response:
    """POST a signed Shopify sample `topic` rewritten to the order `external`."""
    raw = json.loads((PAYLOADS / "shopify" / f"{topic.replace('/', '_')}.json").read_text())
    raw["id"] = int(external)
    body = json.dumps(raw, separators=(",", ":")).encode()
    headers = shopify_headers(
        topic, body, secret=SHOPIFY_SECRET, shop=SHOP, webhook_id=f"wh-{topic}-{external}"
    )
    return emulator.http.post("/webhooks/shopify", content=body, headers=headers)


def place_order(emulator: EmulatorHandle) -> tuple[str, str]:
    """POST a signed orders/create for a fresh order id; (canonical id, external id)."""
    external = str(random.randint(10**12, 10**13))
    answer = shopify_webhook(emulator, "orders/create", external)
    assert answer.status_code == 200, answer.text
    return f"shopify:{SHOP}:{external}", external


def create_intent(stripe_url: str, order_id: str, amount: int = 17796) -> dict[str, Any]:
    answer = httpx.post(
        f"{stripe_url}/v1/payment_intents",
        headers={"Authorization": f"Bearer {STRIPE_KEY}", "Idempotency-Key": f"pay-{order_id}"},
        data={
            "amount": str(amount),
            "currency": "usd",
            "metadata[order_id]": order_id,
            "payment_method": "pm_card_visa",
            "confirm": "true",
        },
    )
    answer.raise_for_status()
    return dict(answer.json())


def stripe_webhook(
    emulator: EmulatorHandle,
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str,
    secret: str = STRIPE_SECRET,
    signed_at: int | None = None,
) -> httpx.Response:
    from storewire_local.fakes.stripe import build_event, sign_payload

    body = json.dumps(build_event(event_type, obj, event_id=event_id)).encode()
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(body, secret, signed_at),
    }
    return emulator.http.post("/webhooks/stripe", content=body, headers=headers)


def outcomes(emulator: EmulatorHandle, order_id: str) -> list[str]:
    return [
        e["detail-type"]
        for e in emulator.events()
        if e["source"] == "storewire.payments" and e["detail"].get("order_id") == order_id
    ]


def test_given_a_placed_order_when_a_signed_stripe_webhook_arrives_then_confirmed_once(
    emulator: EmulatorHandle,
) -> None:
    stripe_url = fakes(emulator)["stripe"]
    order_id, _ = place_order(emulator)
    emulator.wait_idle(60)
    intent = create_intent(stripe_url, order_id)

    first = stripe_webhook(emulator, "payment_intent.succeeded", intent, event_id="evt_e2e_ok_1")
    again = stripe_webhook(emulator, "payment_intent.succeeded", intent, event_id="evt_e2e_ok_1")
    other = stripe_webhook(emulator, "payment_intent.succeeded", intent, event_id="evt_e2e_ok_2")
    emulator.wait_idle(60)

    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 200)
    assert again.json() == {"status": "duplicate"}
    assert outcomes(emulator, order_id) == ["PaymentConfirmed"]
    gets = [
        r
        for r in httpx.get(f"{stripe_url}/_fake/state").json()["requests"]
        if r["method"] == "GET" and r["path"].endswith(intent["id"])
    ]
    assert len(gets) == 2  # both reports were checked with Stripe; only one confirmed


def test_given_stripe_failing_twice_when_the_payment_is_checked_then_confirmed_once(
    emulator: EmulatorHandle,
) -> None:
    stripe_url = fakes(emulator)["stripe"]
    order_id, _ = place_order(emulator)
    emulator.wait_idle(60)
    intent = create_intent(stripe_url, order_id)
    httpx.post(
        f"{stripe_url}/_fake/faults",
        json={
            "mode": "status",
            "status": 500,
            "count": 2,
            "path": f"/v1/payment_intents/{intent['id']}",
        },
    ).raise_for_status()

    answer = stripe_webhook(emulator, "payment_intent.succeeded", intent, event_id="evt_e2e_500")
    emulator.wait_idle(60)

    assert answer.status_code == 200
    assert outcomes(emulator, order_id) == ["PaymentConfirmed"]


def test_given_the_wrong_amount_at_stripe_when_checked_then_mismatch_not_confirmed(
    emulator: EmulatorHandle,
) -> None:
    stripe_url = fakes(emulator)["stripe"]
    order_id, _ = place_order(emulator)
    emulator.wait_idle(60)
    intent = create_intent(stripe_url, order_id, amount=100)

    stripe_webhook(emulator, "payment_intent.succeeded", intent, event_id="evt_e2e_short")
    emulator.wait_idle(60)

    assert outcomes(emulator, order_id) == ["PaymentMismatch"]
    assert "StockCommitted" not in [
        e["detail-type"] for e in emulator.events() if e["detail"].get("order_id") == order_id
    ]


def test_given_a_declined_card_when_stripe_reports_the_failure_then_payment_failed(
    emulator: EmulatorHandle,
) -> None:
    stripe_url = fakes(emulator)["stripe"]
    order_id, _ = place_order(emulator)
    emulator.wait_idle(60)
    declined = httpx.post(
        f"{stripe_url}/v1/payment_intents",
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
        data={
            "amount": "17796",
            "currency": "usd",
            "metadata[order_id]": order_id,
            "payment_method": "pm_card_chargeDeclined",
            "confirm": "true",
        },
    )
    assert declined.status_code == 402
    intent = declined.json()["error"]["payment_intent"]

    stripe_webhook(emulator, "payment_intent.payment_failed", intent, event_id="evt_e2e_declined")
    emulator.wait_idle(60)

    assert outcomes(emulator, order_id) == ["PaymentFailed"]


def test_given_shopify_orders_paid_when_its_transactions_add_up_then_confirmed_once(
    emulator: EmulatorHandle,
) -> None:
    admin_url = fakes(emulator)["shopify_admin"]
    order_id, external = place_order(emulator)
    emulator.wait_idle(60)
    httpx.post(
        f"{admin_url}/_fake/orders",
        json={
            "id": int(external),
            "currency": "USD",
            "total_price": "177.96",
            "financial_status": "paid",
        },
    ).raise_for_status()

    assert shopify_webhook(emulator, "orders/paid", external).status_code == 200
    emulator.wait_idle(60)

    assert outcomes(emulator, order_id) == ["PaymentConfirmed"]


def test_given_a_bad_stripe_signature_when_posted_then_401_and_nothing_on_the_bus(
    emulator: EmulatorHandle,
) -> None:
    before = len(emulator.events())

    answer = stripe_webhook(
        emulator,
        "payment_intent.succeeded",
        {"id": "pi_x", "amount": 1, "currency": "usd", "status": "succeeded", "metadata": {}},
        event_id="evt_e2e_bad",
        secret="whsec_not_the_secret",
    )

    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "SignatureInvalid"
    assert len(emulator.events()) == before


@pytest.mark.parametrize("age", [301, 3600])
def test_given_a_stale_stripe_timestamp_when_posted_then_401(
    emulator: EmulatorHandle, age: int
) -> None:
    answer = stripe_webhook(
        emulator,
        "payment_intent.succeeded",
        {"id": "pi_x", "amount": 1, "currency": "usd", "status": "succeeded", "metadata": {}},
        event_id=f"evt_e2e_stale_{age}",
        signed_at=int(time.time()) - age,
    )

    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "StaleWebhook"
