"""`storewire dlq list|redrive` and `storewire replay` through the emulator, as an operator.

The emulator runs the real template.yaml with its fakes. A poison message (the Stripe fake
answers 401, a bad key: a permanent failure) lands in PaymentConfirmationDeadLetterQueue with
its reason; once the fault is cleared, `storewire dlq redrive` moves it back and it is
processed exactly once. Replaying an order's events changes nothing; replaying after a
consumer's effect was lost restores it.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from storewire_local.cli import app
from storewire_local.signing import shopify_headers
from storewire_local.state import write_state
from storewire_local.testing import EmulatorHandle
from typer.testing import CliRunner

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads"
SHOPIFY_SECRET = "shpss_e2e_secret"
STRIPE_SECRET = "whsec_storewire_dev_secret"
STRIPE_KEY = "sk_test_storewire_dev"
SHOP = "storewire-demo.myshopify.com"
TOTAL_CENTS = 17796  # the sample order's total_price, 177.96 USD
IDLE = 120
PAYMENT_DLQ = "PaymentConfirmationDeadLetterQueue"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def state_dir(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ops-state")
    write_state(directory, emulator.emu.info())
    return directory


def storewire(state_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app, [*args, "--state-dir", str(state_dir)], catch_exceptions=False, env=dict(os.environ)
    )


def fake_url(emulator: EmulatorHandle, name: str) -> str:
    return str(emulator.emu.info()["fakes"][name])


def fake_state(emulator: EmulatorHandle, name: str) -> dict[str, Any]:
    answer = httpx.get(f"{fake_url(emulator, name)}/_fake/state", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def new_order(emulator: EmulatorHandle) -> tuple[str, str, str, dict[str, Any]]:
    """(canonical id, storefront id, email, payload): the sample order, fresh ids, stock seeded."""
    raw = json.loads((PAYLOADS / "shopify" / "orders_create.json").read_text())
    external = str(random.randint(10**12, 10**13))
    suffix = uuid.uuid4().hex[:8]
    email = f"ops-{suffix}@example.com"
    raw["id"] = int(external)
    raw["email"] = raw["contact_email"] = email
    raw["customer"] = {**raw["customer"], "id": random.randint(10**12, 10**13), "email": email}
    for line in raw["line_items"]:
        if line.get("sku"):
            line["sku"] = f"{line['sku']}-{suffix}"
            emulator.client("dynamodb").put_item(
                TableName=emulator.resource("InventoryTable"),
                Item={
                    "pk": {"S": f"STOCK#{line['sku']}"},
                    "sk": {"S": "LOC#default"},
                    "sku": {"S": line["sku"]},
                    "location": {"S": "default"},
                    "on_hand": {"N": "10"},
                    "available": {"N": "10"},
                    "version": {"N": "1"},
                },
            )
    return f"shopify:{SHOP}:{external}", external, email, raw


def place(emulator: EmulatorHandle, raw: dict[str, Any]) -> None:
    httpx.post(
        f"{fake_url(emulator, 'shopify_admin')}/_fake/orders", json=raw, timeout=10
    ).raise_for_status()
    body = json.dumps(raw, separators=(",", ":")).encode()
    headers = shopify_headers(
        "orders/create", body, secret=SHOPIFY_SECRET, shop=SHOP, webhook_id=f"wh-{raw['id']}"
    )
    answer = emulator.http.post("/webhooks/shopify", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    emulator.wait_idle(IDLE)


def create_intent(emulator: EmulatorHandle, order_id: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{fake_url(emulator, 'stripe')}/v1/payment_intents",
        headers={"Authorization": f"Bearer {STRIPE_KEY}", "Idempotency-Key": f"pay-{order_id}"},
        data={
            "amount": str(TOTAL_CENTS),
            "currency": "usd",
            "metadata[order_id]": order_id,
            "payment_method": "pm_card_visa",
            "confirm": "true",
        },
        timeout=10,
    )
    answer.raise_for_status()
    return dict(answer.json())


def report_paid(emulator: EmulatorHandle, intent: dict[str, Any]) -> None:
    from storewire_local.fakes.stripe import build_event, sign_payload

    event = build_event("payment_intent.succeeded", intent, event_id=f"evt_ops_{uuid.uuid4().hex}")
    body = json.dumps(event).encode()
    answer = emulator.http.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(body, STRIPE_SECRET, None),
        },
    )
    assert answer.status_code == 200, answer.text
    emulator.wait_idle(IDLE)


def of_order(emulator: EmulatorHandle, order_id: str, detail_type: str) -> list[dict[str, Any]]:
    return [
        e["detail"] for e in emulator.events(detail_type) if e["detail"].get("order_id") == order_id
    ]


def purchases(emulator: EmulatorHandle, order_id: str) -> list[dict[str, Any]]:
    return [p for p in fake_state(emulator, "easypost")["purchases"] if p["reference"] == order_id]


def dlq_listing(state_dir: Path) -> dict[str, dict[str, Any]]:
    listed = storewire(state_dir, "dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    return {q["queue"]: q for q in json.loads(listed.stdout)}


def order_view(state_dir: Path, order: str) -> dict[str, Any]:
    shown = storewire(state_dir, "order", "show", order, "--json")
    assert shown.exit_code == 0, shown.output
    return dict(json.loads(shown.stdout))


# --------------------------------------------------------------------------- tests


def test_given_a_bad_gateway_key_then_dead_lettered_with_reason_and_redriven_once(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    order_id, external, _email, raw = new_order(emulator)
    place(emulator, raw)
    intent = create_intent(emulator, order_id)
    stripe = fake_url(emulator, "stripe")
    # Given the gateway refuses Storewire's key (401): a permanent failure
    httpx.post(
        f"{stripe}/_fake/faults",
        json={"mode": "status", "status": 401, "count": -1, "path": "/v1/payment_intents"},
        timeout=10,
    ).raise_for_status()
    try:
        report_paid(emulator, intent)
        # Then the report is in the payment DLQ with its reason, read without losing it
        for _ in range(2):
            listing = dlq_listing(state_dir)
            dlq = listing[PAYMENT_DLQ]
            mine = [m for m in dlq["messages"] if m["order_id"] == order_id]
            assert len(mine) == 1, dlq
            assert dlq["source"] == "PaymentConfirmationQueue"
        (poison,) = mine
        assert poison["detail_type"] == "OrderPaymentReported"
        assert poison["origin"] == "consumer"
        assert poison["error"].startswith("PermanentUpstreamError")
        assert poison["consumer"]
        assert set(listing) >= {"CrmSyncDeadLetterQueue", "LabelCreationDeadLetterQueue"}
        table = storewire(state_dir, "dlq", "list")
        assert table.exit_code == 0, table.output
        assert PAYMENT_DLQ in table.stdout
        assert "PermanentUpstreamError" in table.stdout
        assert of_order(emulator, order_id, "PaymentConfirmed") == []
    finally:
        # When the cause is fixed
        httpx.delete(f"{stripe}/_fake/faults", timeout=10).raise_for_status()

    # and the operator redrives that message (by the source queue's logical id)
    moved = storewire(
        state_dir, "dlq", "redrive", "PaymentConfirmationQueue", "--message", poison["message_id"]
    )
    assert moved.exit_code == 0, moved.output
    assert "1 messages moved" in moved.stdout
    emulator.wait_idle(IDLE)

    # Then it is processed once: one confirmation, one label, and the DLQ no longer holds it
    assert len(of_order(emulator, order_id, "PaymentConfirmed")) == 1
    assert len(purchases(emulator, order_id)) == 1
    assert order_view(state_dir, external)["payment"]["status"] == "confirmed"
    after = dlq_listing(state_dir)[PAYMENT_DLQ]
    assert [m for m in after["messages"] if m["order_id"] == order_id] == []

    # Redriving again moves nothing and changes nothing
    again = storewire(state_dir, "dlq", "redrive", PAYMENT_DLQ, "--all")
    assert again.exit_code == 0, again.output
    emulator.wait_idle(IDLE)
    assert len(of_order(emulator, order_id, "PaymentConfirmed")) == 1
    assert len(purchases(emulator, order_id)) == 1


def test_redrive_needs_all_or_message_and_a_known_queue(state_dir: Path) -> None:
    assert storewire(state_dir, "dlq", "redrive", PAYMENT_DLQ).exit_code == 2
    assert storewire(state_dir, "dlq", "redrive", "NoSuchQueue", "--all").exit_code == 2
    missing = storewire(state_dir, "dlq", "redrive", PAYMENT_DLQ, "--message", "nope")
    assert missing.exit_code == 1


def test_given_a_complete_order_when_replayed_then_nothing_changes(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    order_id, external, email, raw = new_order(emulator)
    place(emulator, raw)
    report_paid(emulator, create_intent(emulator, order_id))
    before = order_view(state_dir, external)
    human = storewire(state_dir, "order", "show", external)
    assert human.exit_code == 0, human.output
    for concern, event_type in (("payment", "PaymentConfirmed"), ("shipment", "LabelCreated")):
        assert any(concern in line and event_type in line for line in human.stdout.splitlines()), (
            human.stdout
        )
    assert before["payment"]["status"] == "confirmed"
    counts = {t: len(of_order(emulator, order_id, t)) for t in ("PaymentConfirmed", "LabelCreated")}
    assert counts == {"PaymentConfirmed": 1, "LabelCreated": 1}

    replayed = storewire(state_dir, "replay", external)
    assert replayed.exit_code == 0, replayed.output
    assert "events re-emitted" in replayed.stdout
    emulator.wait_idle(IDLE)

    after = order_view(state_dir, external)
    for concern in ("payment", "stock", "shipment", "crm"):
        assert after[concern]["status"] == before[concern]["status"], concern
    assert len(purchases(emulator, order_id)) == 1
    contacts = [
        c
        for c in fake_state(emulator, "hubspot")["contacts"]
        if str(c["properties"].get("email", "")).lower() == email
    ]
    assert len(contacts) == 1
    assert contacts[0]["properties"]["storewire_order_count"] == "1"
    # the replayed envelopes were put on the bus again, with the same event ids
    ids = [e["event_id"] for e in of_order(emulator, order_id, "PaymentConfirmed")]
    assert len(ids) == 2
    assert len(set(ids)) == 1


def test_replay_of_an_unknown_order_fails(state_dir: Path) -> None:
    assert storewire(state_dir, "replay", "no-such-order").exit_code == 1


def test_given_a_lost_crm_contact_when_replayed_then_it_is_restored(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    order_id, _external, email, raw = new_order(emulator)
    place(emulator, raw)
    report_paid(emulator, create_intent(emulator, order_id))
    hubspot = fake_url(emulator, "hubspot")

    def active() -> list[dict[str, Any]]:
        return [
            c
            for c in fake_state(emulator, "hubspot")["contacts"]
            if str(c["properties"].get("email", "")).lower() == email and not c.get("archived")
        ]

    (contact,) = active()
    # Given the CRM lost the contact (deleted by hand in HubSpot)
    httpx.delete(
        f"{hubspot}/crm/v3/objects/contacts/{contact['id']}",
        headers={"Authorization": "Bearer pat-na1-storewire-dev"},
        timeout=10,
    ).raise_for_status()
    assert active() == []

    # When the order's events are replayed
    replayed = storewire(state_dir, "replay", order_id)
    assert replayed.exit_code == 0, replayed.output
    emulator.wait_idle(IDLE)

    # Then the contact is back, once, and nothing else happened twice
    (restored,) = active()
    assert restored["properties"]["storewire_order_count"] == "1"
    assert len(purchases(emulator, order_id)) == 1
    assert len({e["event_id"] for e in of_order(emulator, order_id, "PaymentConfirmed")}) == 1
