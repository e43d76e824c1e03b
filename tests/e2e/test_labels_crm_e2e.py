"""Labels, tracking and the CRM through the emulator over HTTP, as the storefront, Stripe and
EasyPost would drive them.

The emulator runs the real template.yaml with all its fakes (Stripe, Shopify Admin, EasyPost,
HubSpot; started by the emulator, reached through the *BaseUrl parameters). A placed order
(stock seeded, signed `orders/create`) that Stripe reports paid goes: stock reserved ->
payment confirmed -> stock committed -> label bought on the EasyPost fake -> LabelCreated ->
the HubSpot contact marked shipped. Each test uses its own order, SKUs and customer email, so
the module-scoped emulator is shared.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
EASYPOST_WEBHOOK_SECRET = "whsec_storewire_easypost_dev"
STOREFRONT_LOCATION = "gid://shopify/Location/1"
SHOP = "storewire-demo.myshopify.com"
TOTAL_CENTS = 17796  # the sample order's total_price, 177.96 USD
IDLE = 120


@dataclass(frozen=True)
class Order:
    order_id: str
    external: str
    email: str
    raw: dict[str, Any]


# --------------------------------------------------------------------------- helpers


def fakes(emulator: EmulatorHandle) -> dict[str, str]:
    urls: dict[str, str] = emulator.emu.info()["fakes"]
    assert {"stripe", "easypost", "hubspot"} <= set(urls), urls
    return urls


def fake_state(emulator: EmulatorHandle, name: str) -> dict[str, Any]:
    answer = httpx.get(f"{fakes(emulator)[name]}/_fake/state", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def fault(emulator: EmulatorHandle, name: str, spec: dict[str, Any]) -> None:
    httpx.post(f"{fakes(emulator)[name]}/_fake/faults", json=spec, timeout=10).raise_for_status()


def pending_faults(emulator: EmulatorHandle, name: str) -> list[Any]:
    answer = httpx.get(f"{fakes(emulator)[name]}/_fake/faults", timeout=10)
    return list(answer.json()["faults"])


def seed_stock(emulator: EmulatorHandle, sku: str, units: int = 10) -> None:
    emulator.client("dynamodb").put_item(
        TableName=emulator.resource("InventoryTable"),
        Item={
            "pk": {"S": f"STOCK#{sku}"},
            "sk": {"S": "LOC#default"},
            "sku": {"S": sku},
            "location": {"S": "default"},
            "on_hand": {"N": str(units)},
            "available": {"N": str(units)},
            "version": {"N": "1"},
        },
    )


def new_order(emulator: EmulatorHandle, *, email: str | None = None) -> Order:
    """The sample orders/create with a fresh id, fresh SKUs (stock seeded) and its own email."""
    raw = json.loads((PAYLOADS / "shopify" / "orders_create.json").read_text())
    external = str(random.randint(10**12, 10**13))
    suffix = uuid.uuid4().hex[:8]
    email = email or f"e2e-{suffix}@example.com"
    raw["id"] = int(external)
    raw["email"] = raw["contact_email"] = email
    raw["customer"] = {**raw["customer"], "id": random.randint(10**12, 10**13), "email": email}
    for line in raw["line_items"]:
        if line.get("sku"):
            line["sku"] = f"{line['sku']}-{suffix}"
            seed_stock(emulator, line["sku"])
    return Order(f"shopify:{SHOP}:{external}", external, email, raw)


def post_shopify(
    emulator: EmulatorHandle, topic: str, raw: dict[str, Any], webhook_id: str
) -> httpx.Response:
    body = json.dumps(raw, separators=(",", ":")).encode()
    headers = shopify_headers(topic, body, secret=SHOPIFY_SECRET, shop=SHOP, webhook_id=webhook_id)
    return emulator.http.post("/webhooks/shopify", content=body, headers=headers)


def place(emulator: EmulatorHandle, order: Order, *, times: int = 1, round_: int = 0) -> None:
    """orders/create, `times` deliveries with distinct webhook ids (so each is a new event).

    The storefront holds the order before it sends the webhook: the Shopify Admin fake is
    seeded with it first (its fulfillment order is where the label's tracking is pushed).
    """
    if round_ == 0:
        httpx.post(
            f"{fakes(emulator)['shopify_admin']}/_fake/orders", json=order.raw, timeout=10
        ).raise_for_status()
    for n in range(times):
        answer = post_shopify(
            emulator, "orders/create", order.raw, f"wh-create-{order.external}-{round_}-{n}"
        )
        assert answer.status_code == 200, answer.text


def create_intent(emulator: EmulatorHandle, order: Order) -> dict[str, Any]:
    answer = httpx.post(
        f"{fakes(emulator)['stripe']}/v1/payment_intents",
        headers={
            "Authorization": f"Bearer {STRIPE_KEY}",
            "Idempotency-Key": f"pay-{order.order_id}",
        },
        data={
            "amount": str(TOTAL_CENTS),
            "currency": "usd",
            "metadata[order_id]": order.order_id,
            "payment_method": "pm_card_visa",
            "confirm": "true",
        },
        timeout=10,
    )
    answer.raise_for_status()
    return dict(answer.json())


def pay(emulator: EmulatorHandle, order: Order, *, times: int = 1, round_: int = 0) -> None:
    """Stripe payment_intent.succeeded, `times` deliveries with distinct Stripe event ids."""
    from storewire_local.fakes.stripe import build_event, sign_payload

    intent = create_intent(emulator, order)
    for n in range(times):
        event_id = f"evt_e2e_{order.external}_{round_}_{n}"
        body = json.dumps(build_event("payment_intent.succeeded", intent, event_id=event_id))
        answer = emulator.http.post(
            "/webhooks/stripe",
            content=body.encode(),
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign_payload(body.encode(), STRIPE_SECRET, None),
            },
        )
        assert answer.status_code == 200, answer.text


def purchases(emulator: EmulatorHandle, order: Order) -> list[dict[str, Any]]:
    return [
        p for p in fake_state(emulator, "easypost")["purchases"] if p["reference"] == order.order_id
    ]


def contacts(emulator: EmulatorHandle, email: str) -> list[dict[str, Any]]:
    return [
        c
        for c in fake_state(emulator, "hubspot")["contacts"]
        if str(c["properties"].get("email", "")).lower() == email.lower()
    ]


def deals(emulator: EmulatorHandle, order: Order) -> list[dict[str, Any]]:
    return [
        d
        for d in fake_state(emulator, "hubspot")["deals"]
        if d["properties"].get("storewire_order_id") == order.order_id
    ]


def storefront_fulfilments(emulator: EmulatorHandle, order: Order) -> list[dict[str, Any]]:
    """The fulfilments the (fake) Shopify store holds for the order."""
    orders = fake_state(emulator, "shopify_admin")["orders"]
    (stored,) = [o for key, o in orders.items() if str(key).endswith(order.external)]
    return [f["view"] for f in stored["fulfillments"]]


def list_on_storefront(emulator: EmulatorHandle, state_dir: Path, sku: str) -> str:
    """Map `sku` to a fresh inventory item on the fake store, which shows 10 units as well."""
    item = f"gid://shopify/InventoryItem/{random.randint(10**9, 10**10)}"
    httpx.post(
        f"{fakes(emulator)['shopify_admin']}/_fake/inventory",
        json={"inventory_item_id": item, "location_id": STOREFRONT_LOCATION, "available": 10},
        timeout=10,
    ).raise_for_status()
    mapped = storewire(
        state_dir, "channel", "map", sku, "--location", "default",
        "--inventory-item-id", item, "--location-id", STOREFRONT_LOCATION,
    )  # fmt: skip
    assert mapped.exit_code == 0, mapped.output
    return item


def storefront_available(emulator: EmulatorHandle, item: str) -> int:
    inventory = fake_state(emulator, "shopify_admin")["inventory"]
    return int(inventory[item]["levels"][STOREFRONT_LOCATION])


def ledger_available(state_dir: Path, sku: str) -> int:
    shown = storewire(state_dir, "stock", "show", sku, "--json")
    return int(json.loads(shown.stdout)["available"])


def events_of(emulator: EmulatorHandle, order: Order, detail_type: str) -> list[dict[str, Any]]:
    return [
        e["detail"]
        for e in emulator.events(detail_type)
        if e["detail"].get("order_id") == order.order_id
    ]


@pytest.fixture(scope="module")
def state_dir(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local.json pointing at the module's emulator, as `storewire local up` writes it."""
    directory = tmp_path_factory.mktemp("labels-crm-state")
    write_state(directory, emulator.emu.info())
    return directory


def storewire(state_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app, [*args, "--state-dir", str(state_dir)], catch_exceptions=False, env=dict(os.environ)
    )


def order_view(state_dir: Path, order: Order) -> dict[str, Any]:
    result = storewire(state_dir, "order", "show", order.external, "--json")
    assert result.exit_code == 0, result.output
    view: dict[str, Any] = json.loads(result.output)
    return view


def placed_and_paid(emulator: EmulatorHandle, order: Order, *, times: int = 1) -> None:
    place(emulator, order, times=times)
    emulator.wait_idle(IDLE)
    pay(emulator, order, times=times)
    emulator.wait_idle(IDLE)


def dead_letters(emulator: EmulatorHandle, logical_id: str) -> list[dict[str, Any]]:
    """Every DLQ message with its attributes (received with visibility 0, so left in place)."""
    sqs = emulator.client("sqs")
    url = emulator.queue_url(logical_id)
    found: dict[str, dict[str, Any]] = {}
    for _ in range(10):
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            found[message["MessageId"]] = message
    return list(found.values())


# --------------------------------------------------------------------------- tests


def test_given_a_paid_order_then_one_label_one_contact_and_replays_change_nothing(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    order = new_order(emulator)
    sku = order.raw["line_items"][0]["sku"]
    item = list_on_storefront(emulator, state_dir, sku)

    # When the order is placed and paid, every webhook delivered three times (new ids)
    placed_and_paid(emulator, order, times=3)

    # Then exactly one label was bought at the carrier, for this order
    bought = purchases(emulator, order)
    assert len(bought) == 1, bought
    shipment = fake_state(emulator, "easypost")["shipments"][bought[0]["shipment_id"]]
    assert len(events_of(emulator, order, "StockCommitted")) >= 1
    assert {e["event_id"] for e in events_of(emulator, order, "LabelCreated")} != set()
    assert len({e["event_id"] for e in events_of(emulator, order, "LabelCreated")}) == 1

    # And the order record shows it (through `storewire order show --json`)
    view = order_view(state_dir, order)
    label = view["shipment"]
    assert label["status"] == "label_created"
    assert label["carrier"] == shipment["selected_rate"]["carrier"]
    assert label["service"] == shipment["selected_rate"]["service"]
    assert label["tracking_number"] == shipment["tracking_code"]
    assert label["label_url"] == shipment["postage_label"]["label_url"]
    assert label["cost"] == {"amount": shipment["selected_rate"]["rate"], "currency": "USD"}

    # And the fulfilment with its tracking number is on the storefront, once
    (fulfilment,) = storefront_fulfilments(emulator, order)
    assert [t["number"] for t in fulfilment["trackingInfo"]] == [shipment["tracking_code"]]

    # And the storefront shows the ledger's new available quantity
    assert storefront_available(emulator, item) == ledger_available(state_dir, sku) < 10

    # And one HubSpot contact with the right totals, and one deal for the order
    found = contacts(emulator, order.email)
    assert len(found) == 1, found
    props = found[0]["properties"]
    assert props["storewire_order_count"] == "1"
    assert props["storewire_total_spent"] == "177.96"
    assert props["storewire_total_spent_currency"] == "USD"
    assert props["storewire_last_order_status"] == "shipped"
    assert props["storewire_last_order_number"] == order.raw["name"]
    assert len(deals(emulator, order)) == 1
    assert view["crm"]["status"] == "synced"
    assert view["crm"]["contact_id"] == found[0]["id"]
    human = storewire(state_dir, "order", "show", order.external).output
    assert f"shipment  label_created ({label['carrier']}" in human
    assert shipment["tracking_code"] in human
    assert f"crm       synced (contact {found[0]['id']})" in human

    # When every webhook of it is delivered three more times (new delivery ids)
    before = (view["shipment"], props, len(deals(emulator, order)))
    place(emulator, order, times=3, round_=1)
    emulator.wait_idle(IDLE)
    pay(emulator, order, times=3, round_=1)
    emulator.wait_idle(IDLE)

    # Then nothing changed: one label, one contact with the same totals, one deal
    assert len(purchases(emulator, order)) == 1
    again = contacts(emulator, order.email)
    assert len(again) == 1
    after_view = order_view(state_dir, order)
    assert (after_view["shipment"], again[0]["properties"], len(deals(emulator, order))) == before
    assert after_view["crm"]["contact_id"] == found[0]["id"]
    assert len(storefront_fulfilments(emulator, order)) == 1
    assert storefront_available(emulator, item) == ledger_available(state_dir, sku)
    assert len({e["event_id"] for e in events_of(emulator, order, "LabelCreated")}) == 1
    assert [
        b for b in emulator.peek_bodies("LabelCreationDeadLetterQueue") if order.order_id in str(b)
    ] == []
    assert [
        b for b in emulator.peek_bodies("CrmSyncDeadLetterQueue") if order.order_id in str(b)
    ] == []


def test_given_the_carrier_failing_with_500_when_the_label_is_bought_then_retried_and_one_label(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    order = new_order(emulator)
    place(emulator, order)
    emulator.wait_idle(IDLE)
    fault(emulator, "easypost", {"mode": "status", "status": 500, "count": 2, "path": "/v2/"})

    pay(emulator, order)
    emulator.wait_idle(IDLE)

    assert pending_faults(emulator, "easypost") == []  # both 500s were served
    assert len(purchases(emulator, order)) == 1
    assert order_view(state_dir, order)["shipment"]["status"] == "label_created"


def test_given_hubspot_answering_429_when_the_contact_is_synced_then_retried_and_one_contact(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    order = new_order(emulator)
    fault(
        emulator,
        "hubspot",
        {
            "mode": "429",
            "retry_after": 1,
            "count": 1,
            "path": "/crm/v3/objects/contacts/batch/upsert",
        },
    )

    place(emulator, order)
    emulator.wait_idle(IDLE)

    assert pending_faults(emulator, "hubspot") == []  # the 429 was served
    found = contacts(emulator, order.email)
    assert len(found) == 1
    assert found[0]["properties"]["storewire_order_count"] == "1"
    assert found[0]["properties"]["storewire_total_spent"] == "177.96"
    crm = order_view(state_dir, order)["crm"]
    assert (crm["status"], crm["contact_id"]) == ("synced", found[0]["id"])


def test_given_a_malformed_email_when_synced_with_others_then_only_it_is_dead_lettered(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    # `@localhost` passes Storewire's plausibility check; HubSpot refuses it (207, INVALID_EMAIL)
    good = [new_order(emulator), new_order(emulator)]
    bad = new_order(emulator, email=f"bad-{uuid.uuid4().hex[:6]}@localhost")

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda o: place(emulator, o), [good[0], bad, good[1]]))
    emulator.wait_idle(IDLE)

    # The good ones went on
    for order in good:
        found = contacts(emulator, order.email)
        assert len(found) == 1
        assert found[0]["properties"]["storewire_order_count"] == "1"
        assert order_view(state_dir, order)["crm"]["status"] == "synced"
    # The bad one alone is in the CRM DLQ, with its reason, and its order says so
    assert contacts(emulator, bad.email) == []
    dead = [
        m for m in dead_letters(emulator, "CrmSyncDeadLetterQueue") if bad.order_id in m["Body"]
    ]
    assert len(dead) == 1
    attributes = dead[0]["MessageAttributes"]
    assert attributes["storewire-error-type"]["StringValue"] == "InvalidContact"
    assert "INVALID_EMAIL" in attributes["storewire-reason"]["StringValue"]
    assert bad.email not in attributes["storewire-reason"]["StringValue"]
    assert all(
        good_order.order_id not in m["Body"]
        for m in dead_letters(emulator, "CrmSyncDeadLetterQueue")
        for good_order in good
    )
    assert order_view(state_dir, bad)["crm"]["status"] == "failed"


def test_given_signed_tracking_webhooks_then_delivered_and_never_rolled_back(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    order = new_order(emulator)
    placed_and_paid(emulator, order)
    (bought,) = purchases(emulator, order)
    easypost = fakes(emulator)["easypost"]
    tracker = fake_state(emulator, "easypost")["shipments"][bought["shipment_id"]]["tracker"]
    httpx.post(
        f"{easypost}/_fake/webhooks",
        json={"url": f"{emulator.api_url}/webhooks/easypost", "secret": EASYPOST_WEBHOOK_SECRET},
        timeout=10,
    ).raise_for_status()
    t0 = datetime.now(UTC).replace(microsecond=0)

    def move(status: str, at: datetime, times: int = 3) -> list[int | None]:
        answer = httpx.post(
            f"{easypost}/_fake/trackers/{tracker['id']}",
            json={"status": status, "updated_at": at.isoformat(), "times": times},
            timeout=60,
        )
        answer.raise_for_status()
        return list(answer.json()["deliveries"])

    # When the carrier reports in transit, then delivered (each delivered three times)
    assert move("in_transit", t0 + timedelta(hours=1)) == [200, 200, 200]
    emulator.wait_idle(IDLE)
    assert order_view(state_dir, order)["shipment"]["status"] == "shipped"
    assert move("delivered", t0 + timedelta(hours=3)) == [200, 200, 200]
    emulator.wait_idle(IDLE)

    # And then late updates: one older than the delivery, one newer (after the terminal state)
    assert move("in_transit", t0 + timedelta(hours=2), times=1) == [200]
    assert move("in_transit", t0 + timedelta(hours=4), times=1) == [200]
    emulator.wait_idle(IDLE)

    # Then the order's shipment is delivered, and stays delivered
    view = order_view(state_dir, order)
    assert view["shipment"]["status"] == "delivered"
    assert view["shipment"]["tracking_status"] == "delivered"
    assert view["shipment"]["tracking_number"] == bought_tracking(emulator, bought)
    assert view["status"] == "delivered"
    tracking = [e for e in view["timeline"] if e["event_type"] == "ShipmentStatusChanged"]
    assert [e["summary"].split(":")[0] for e in tracking] == [
        "tracking in_transit",
        "tracking delivered",
    ]
    # One ShipmentStatusChanged per EasyPost Event (the repeats were duplicates)
    changes = [
        e
        for e in emulator.events("ShipmentStatusChanged")
        if e["detail"]["data"]["shipment_id"] == bought["shipment_id"]
    ]
    assert len(changes) == 4
    assert len({e["detail"]["event_id"] for e in changes}) == 4


def bought_tracking(emulator: EmulatorHandle, bought: dict[str, Any]) -> str:
    shipment = fake_state(emulator, "easypost")["shipments"][bought["shipment_id"]]
    return str(shipment["tracking_code"])


def test_given_a_bad_easypost_signature_when_posted_then_401_and_nothing_on_the_bus(
    emulator: EmulatorHandle,
) -> None:
    from storewire_local.fakes.easypost import sign_body

    body = (PAYLOADS / "easypost" / "tracker_updated.json").read_bytes()
    before = len(emulator.events())

    forged = emulator.http.post(
        "/webhooks/easypost",
        content=body,
        headers={"X-Hmac-Signature": sign_body(body, "whsec_not_the_secret")},
    )
    missing = emulator.http.post("/webhooks/easypost", content=body)

    assert (forged.status_code, missing.status_code) == (401, 401)
    assert forged.json()["error"]["type"] == "SignatureInvalid"
    assert len(emulator.events()) == before


def test_given_the_buy_answer_lost_when_the_label_is_bought_then_still_one_label(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    # The carrier sells the label, then the connection drops before the answer (as a crash
    # right after the buy call would look to the caller): the retry must not buy again.
    order = new_order(emulator)
    place(emulator, order)
    emulator.wait_idle(IDLE)
    fault(emulator, "easypost", {"mode": "drop", "count": 1, "path": "/v2/shipments/"})

    pay(emulator, order)
    emulator.wait_idle(IDLE)

    assert pending_faults(emulator, "easypost") == []
    (bought,) = purchases(emulator, order)
    shipment = order_view(state_dir, order)["shipment"]
    assert shipment["status"] == "label_created"
    assert shipment["shipment_id"] == bought["shipment_id"]
