"""`make demo`: the whole graph on the local emulator, shown as a timeline.

Starts the emulator on the real ``template.yaml`` (with its Stripe, Shopify Admin, EasyPost and
HubSpot fakes), puts stock on the shelf, lists one SKU on the storefront, then tells three
orders' stories as the storefront, the gateway and the carrier would send them:

- order #1001 is placed (and its webhook delivered twice), paid through Shopify, edited, gets
  its label and tracking (in transit, delivered) and is partly refunded with restock;
- order #1002 is placed and cancelled;
- order #1003 is placed and paid through Stripe;

plus a tampered signature, a malformed body, a topic Storewire does not handle and a forged
Stripe webhook. It waits for the graph to settle, then prints what each delivery was answered,
the events on the bus, each order's record and the stock levels. The demo checks its own story:
it exits non-zero if any of it did not happen as described.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from storewire_local.emulator import Emulator
from storewire_local.signing import DEFAULT_SHOPIFY_SECRET, shopify_headers

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = ROOT / "events" / "payloads" / "shopify"
SHOP = "storewire-demo.myshopify.com"
STRIPE_WEBHOOK_SECRET = "whsec_storewire_dev_secret"  # noqa: S105 - the public dev default
STRIPE_API_KEY = "sk_test_storewire_dev"
EASYPOST_WEBHOOK_SECRET = "whsec_storewire_easypost_dev"  # noqa: S105 - the public dev default
LISTED_SKU = "SW-TEE-BLK-M"
STOREFRONT_ITEM = "gid://shopify/InventoryItem/43729076"
STOREFRONT_LOCATION = "gid://shopify/Location/1"
SHELF = {"SW-TEE-BLK-M": 10, "SW-HOOD-GRY-L": 5, "SW-MUG-WHT": 8}
ORDER_PAID_BY_SHOPIFY = 5745289347382  # the sample order (#1001)
ORDER_CANCELLED = 5745301126454  # the sample cancelled order (#1002)
ORDER_PAID_BY_STRIPE = 5745289347399  # the sample order again, as #1003


@dataclass(frozen=True)
class Delivery:
    """One webhook the demo posts, and the answer the story expects."""

    label: str
    source: str
    topic: str
    body: bytes
    headers: dict[str, str]
    expected_status: int
    expected_outcome: str


def _compact(raw: Any) -> bytes:
    return json.dumps(raw, separators=(",", ":")).encode()


def _payload(topic: str, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((PAYLOADS / f"{topic.replace('/', '_')}.json").read_text())
    raw.update(overrides)
    return raw


class Story:
    """Builds the deliveries: Shopify ones signed with the Shopify secret, Stripe ones likewise."""

    def __init__(self, shopify_secret: str, stripe_url: str) -> None:
        self.shopify_secret = shopify_secret
        self.stripe_url = stripe_url

    def shopify(
        self,
        label: str,
        topic: str,
        body: bytes,
        expected: tuple[int, str] = (200, "accepted"),
        *,
        webhook_id: str | None = None,
        tamper: bool = False,
    ) -> Delivery:
        headers = shopify_headers(
            topic, body, secret=self.shopify_secret, shop=SHOP,
            webhook_id=webhook_id or str(uuid.uuid4()), tamper=tamper,
        )  # fmt: skip
        return Delivery(label, "shopify", topic, body, headers, *expected)

    def stripe(
        self,
        label: str,
        event_type: str,
        intent: dict[str, Any],
        expected: tuple[int, str] = (200, "accepted"),
        *,
        secret: str = STRIPE_WEBHOOK_SECRET,
    ) -> Delivery:
        from storewire_local.fakes.stripe import build_event, sign_payload

        body = _compact(build_event(event_type, intent, event_id=f"evt_{uuid.uuid4().hex[:24]}"))
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(body, secret),
        }
        return Delivery(label, "stripe", event_type, body, headers, *expected)

    def stripe_payment(self, order_id: str, amount_minor: int) -> dict[str, Any]:
        """A PaymentIntent paid at the (fake) gateway, as the storefront's checkout would."""
        answer = httpx.post(
            f"{self.stripe_url}/v1/payment_intents",
            headers={"Authorization": f"Bearer {STRIPE_API_KEY}"},
            data={
                "amount": str(amount_minor), "currency": "usd", "confirm": "true",
                "payment_method": "pm_card_visa", "metadata[order_id]": order_id,
            },
        )  # fmt: skip
        answer.raise_for_status()
        return dict(answer.json())


def _outcome(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:60]
    if isinstance(body, dict):
        if "status" in body:
            return str(body["status"])
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("type"))
    return json.dumps(body)[:60]


def _canonical(external_id: int) -> str:
    return f"shopify:{SHOP}:{external_id}"


def _post_all(
    emulator: Emulator, deliveries: list[Delivery], table: Table, failures: list[str]
) -> None:
    with httpx.Client(base_url=emulator.api_url, timeout=60.0) as http:
        for delivery in deliveries:
            response = http.post(
                f"/webhooks/{delivery.source}", content=delivery.body, headers=delivery.headers
            )
            outcome = _outcome(response)
            expected = (delivery.expected_status, delivery.expected_outcome)
            ok = (response.status_code, outcome) == expected
            if not ok:
                failures.append(
                    f"{delivery.label}: expected {expected[0]} {expected[1]}, "
                    f"got {response.status_code} {outcome}"
                )
            style = "green" if response.status_code < 300 else "yellow"
            table.add_row(
                str(table.row_count + 1), delivery.label, f"{delivery.source} {delivery.topic}",
                f"[{style}]{response.status_code}[/]", outcome + ("" if ok else " [red]✗[/]"),
            )  # fmt: skip
            emulator.wait_idle(timeout=60)


def _seed(emulator: Emulator, orders: list[dict[str, Any]]) -> None:
    """The shelf, the storefront's own copy of each order, and one SKU listed on the store."""
    from datetime import UTC, datetime

    from storewire.adapters.dynamodb_channels import DynamoDBChannelListingStore
    from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
    from storewire.domain.channels import ChannelListing

    dynamodb = emulator.client("dynamodb")
    store = DynamoDBStockStore(dynamodb, emulator.resources["InventoryTable"])
    for sku, units in SHELF.items():
        store.set_on_hand(sku, "default", units, ref="demo-shelf")
    admin_url = emulator.info()["fakes"]["shopify_admin"]
    for order in orders:  # Shopify holds an order before it sends its webhooks
        httpx.post(f"{admin_url}/_fake/orders", json=order).raise_for_status()
    httpx.post(
        f"{admin_url}/_fake/inventory",
        json={"inventory_item_id": STOREFRONT_ITEM, "location_id": STOREFRONT_LOCATION,
              "available": SHELF[LISTED_SKU], "sku": LISTED_SKU},
    ).raise_for_status()  # fmt: skip
    DynamoDBChannelListingStore(dynamodb, emulator.resources["ChannelListingsTable"]).put_mapping(
        ChannelListing(
            sku=LISTED_SKU, location="default", channel="shopify", shop=SHOP,
            inventory_item_id=STOREFRONT_ITEM, location_id=STOREFRONT_LOCATION,
            mapped_at=datetime.now(UTC),
        )
    )  # fmt: skip


def _track(emulator: Emulator, order_id: str, statuses: list[str]) -> list[int]:
    """The carrier reports the order's parcel moving: signed tracker.updated webhooks."""
    from datetime import UTC, datetime, timedelta

    easypost = emulator.info()["fakes"]["easypost"]
    state = httpx.get(f"{easypost}/_fake/state").json()
    shipment = next(s for s in state["shipments"].values() if s.get("reference") == order_id)
    httpx.post(
        f"{easypost}/_fake/webhooks",
        json={"url": f"{emulator.api_url}/webhooks/easypost", "secret": EASYPOST_WEBHOOK_SECRET},
    ).raise_for_status()
    answers: list[int] = []
    start = datetime.now(UTC).replace(microsecond=0)
    for hours, status in enumerate(statuses, start=1):
        moved = httpx.post(
            f"{easypost}/_fake/trackers/{shipment['tracker']['id']}",
            json={"status": status, "updated_at": (start + timedelta(hours=hours)).isoformat()},
            timeout=60,
        )
        moved.raise_for_status()
        answers += [int(code) for code in moved.json()["deliveries"]]
        emulator.wait_idle(timeout=60)
    return answers


def run(console: Console) -> int:
    """Run the story; the number of expectations that failed."""
    shopify_secret = os.environ.get("SHOPIFY_WEBHOOK_SECRET", DEFAULT_SHOPIFY_SECRET)
    failures: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="storewire-demo-") as state_dir,
        Emulator(ROOT / "template.yaml", port=0, state_dir=Path(state_dir)) as emulator,
    ):
        fakes = emulator.info()["fakes"]
        console.print(f"[bold]Storewire emulator ready[/] at {emulator.api_url} "
                      f"(moto at {emulator.aws_endpoint_url}; fakes: {fakes})\n")  # fmt: skip
        cancelled = _payload("orders/create", id=ORDER_CANCELLED, name="#1002", order_number=1002)
        by_stripe = _payload(
            "orders/create", id=ORDER_PAID_BY_STRIPE, name="#1003", order_number=1003
        )
        _seed(emulator, [_payload("orders/paid"), cancelled, by_stripe])
        story = Story(shopify_secret, fakes["stripe"])
        placed = _compact(_payload("orders/create"))
        placed_id = str(uuid.uuid4())
        deliveries = [
            story.shopify("new customer", "customers/create",
                          _compact(_payload("customers/create"))),
            story.shopify("#1001 placed", "orders/create", placed, webhook_id=placed_id),
            story.shopify("#1001 again (Shopify retry)", "orders/create", placed,
                          (200, "duplicate"), webhook_id=placed_id),
            story.shopify("#1001 paid (Shopify)", "orders/paid", _compact(_payload("orders/paid"))),
            story.shopify("#1001 edited", "orders/updated", _compact(_payload("orders/updated"))),
            story.shopify("#1002 placed", "orders/create", _compact(cancelled)),
            story.shopify("#1002 cancelled", "orders/cancelled",
                          _compact(_payload("orders/cancelled"))),
            story.shopify("#1003 placed", "orders/create", _compact(by_stripe)),
            story.shopify("tampered signature", "orders/create", placed,
                          (401, "SignatureInvalid"), tamper=True),
            story.shopify("malformed JSON", "orders/create", b'{"id": 1, "line_items": [',
                          (400, "MalformedPayload")),
            story.shopify("topic not handled", "products/update", b'{"id": 632910392}',
                          (200, "ignored")),
        ]  # fmt: skip
        answers = Table(title="1. Webhooks posted", title_justify="left")
        for column in ("#", "what", "sender and topic", "answer", "outcome"):
            answers.add_column(column)
        _post_all(emulator, deliveries, answers, failures)

        intent = story.stripe_payment(_canonical(ORDER_PAID_BY_STRIPE), 17796)
        _post_all(
            emulator,
            [
                story.stripe("#1003 paid (Stripe)", "payment_intent.succeeded", intent),
                story.stripe("forged Stripe webhook", "payment_intent.succeeded", intent,
                             (401, "SignatureInvalid"), secret="whsec_forged"),  # noqa: S106
                story.shopify("#1001 refunded, restocked", "refunds/create",
                              _compact(_payload("refunds/create"))),
            ],
            answers,
            failures,
        )  # fmt: skip
        emulator.wait_idle(timeout=60)
        tracked = _track(emulator, _canonical(ORDER_PAID_BY_SHOPIFY), ["in_transit", "delivered"])
        answers.add_row(
            str(answers.row_count + 1), "#1001 in transit, then delivered",
            "easypost tracker.updated", ", ".join(map(str, tracked)), "accepted",
        )  # fmt: skip
        if tracked != [200, 200]:
            failures.append(f"tracking webhooks were answered {tracked}, not [200, 200]")
        console.print(answers)
        _show(console, emulator, failures)

    if failures:
        console.print("\n[bold red]The demo did not go as described:[/]")
        for failure in failures:
            console.print(f"  • {failure}")
        return 1
    console.print(
        "\n[bold green]Done.[/] Every accepted webhook became its events once; stock was "
        "reserved, committed on payment and released on cancel; payments were confirmed with "
        "the gateway, once; one label per paid order, its tracking on the storefront; the CRM "
        "and the storefront's stock kept current; the forged, tampered and malformed "
        "deliveries changed nothing."
    )
    return 0


def _show(console: Console, emulator: Emulator, failures: list[str]) -> None:
    from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
    from storewire.adapters.dynamodb_orders import DynamoDBOrderStore

    events = emulator.recorded_events()
    bus = Table(title="2. Events on the bus, oldest first", title_justify="left")
    for column in ("time", "detail-type", "source", "order / subject"):
        bus.add_column(column)
    for envelope in events:
        detail = envelope.get("detail") or {}
        data = detail.get("data") or {}
        subject = detail.get("external_order_id") or data.get("sku") or detail.get("customer_id")
        bus.add_row(
            str(envelope.get("time")), str(envelope.get("detail-type")),
            str(envelope.get("source")), str(subject or "-"),
        )  # fmt: skip
    console.print(bus)

    orders = DynamoDBOrderStore(emulator.client("dynamodb"), emulator.resources["OrdersTable"])
    records = Table(title="3. Order records (storewire order show)", title_justify="left")
    for column in ("order", "payment", "stock", "label", "crm", "timeline"):
        records.add_column(column)
    views: dict[int, dict[str, Any]] = {}
    for external in (ORDER_PAID_BY_SHOPIFY, ORDER_CANCELLED, ORDER_PAID_BY_STRIPE):
        record = orders.get(_canonical(external))
        view = record.view() if record is not None else {}
        views[external] = view
        timeline = view.get("timeline", [])
        shipment = view.get("shipment", {})
        label = (
            f"{shipment.get('status')}\n{shipment.get('carrier')} {shipment.get('service')}\n"
            f"{shipment.get('tracking_number')}"
            if shipment.get("tracking_number")
            else str(shipment.get("status"))
        )
        crm = view.get("crm", {})
        records.add_row(
            f"{view.get('order_number', '?')} ({external})",
            str(view.get("payment", {}).get("status")),
            str(view.get("stock", {}).get("status")),
            label,
            f"{crm.get('status')}\n{crm.get('contact_id') or ''}",
            "\n".join(f"{e['event_type']}: {e['summary']}" for e in timeline),
        )
    console.print(records)

    stock = DynamoDBStockStore(emulator.client("dynamodb"), emulator.resources["InventoryTable"])
    shelf = Table(title="4. Stock (storewire stock show)", title_justify="left")
    for column in ("sku", "on hand", "reserved", "available", "was", "on the storefront"):
        shelf.add_column(column)
    levels = stock.levels(SHELF)
    admin = httpx.get(f"{emulator.info()['fakes']['shopify_admin']}/_fake/state").json()
    storefront = admin["inventory"][STOREFRONT_ITEM]["levels"][STOREFRONT_LOCATION]
    for sku, rows in levels.items():
        shelf.add_row(
            sku, str(sum(r.on_hand for r in rows)), str(sum(r.reserved for r in rows)),
            str(sum(r.available for r in rows)), str(SHELF[sku]),
            str(storefront) if sku == LISTED_SKU else "not listed",
        )  # fmt: skip
    console.print(shelf)

    hubspot = httpx.get(f"{emulator.info()['fakes']['hubspot']}/_fake/state").json()
    crm = Table(title="5. The CRM (HubSpot fake)", title_justify="left")
    for column in ("contact", "orders", "total spent", "last order status"):
        crm.add_column(column)
    held = hubspot.get("contacts", [])
    contacts = list(held.values() if isinstance(held, dict) else held)
    for contact in contacts:
        props = contact.get("properties", {})
        crm.add_row(
            str(contact.get("id")), str(props.get("storewire_order_count")),
            f"{props.get('storewire_total_spent')} {props.get('storewire_total_spent_currency')}",
            str(props.get("storewire_last_order_status")),
        )  # fmt: skip
    console.print(crm)
    easypost = httpx.get(f"{emulator.info()['fakes']['easypost']}/_fake/state").json()
    purchases = easypost.get("purchases", [])
    fulfilled = {
        str(key): [t["number"] for f in o["fulfillments"] for t in f["view"]["trackingInfo"]]
        for key, o in admin["orders"].items()
        if o["fulfillments"]
    }
    console.print(f"Labels bought at the carrier: {len(purchases)}; "
                  f"fulfilments on the storefront: {fulfilled}")  # fmt: skip

    dead = {
        logical_id: len(emulator.peek_queue(logical_id))
        for logical_id in emulator.resources
        if logical_id.endswith("DeadLetterQueue")
    }
    console.print(f"Dead-letter queues: {dead}")

    kinds = Counter(str(e.get("detail-type")) for e in events)
    confirmed = Counter(
        str(e["detail"].get("order_id"))
        for e in events
        if e.get("detail-type") == "PaymentConfirmed"
    )
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("exactly one OrderPlaced per order", lambda: kinds["OrderPlaced"] == 3),
        ("#1001 confirmed exactly once", lambda: confirmed[_canonical(ORDER_PAID_BY_SHOPIFY)] == 1),
        ("#1003 confirmed exactly once", lambda: confirmed[_canonical(ORDER_PAID_BY_STRIPE)] == 1),
        ("#1001 paid and its stock committed",
         lambda: views[ORDER_PAID_BY_SHOPIFY]["payment"]["status"] in ("confirmed", "refunded")
         and views[ORDER_PAID_BY_SHOPIFY]["stock"]["status"] in ("committed", "restocked")),
        ("#1003 paid and its stock committed",
         lambda: views[ORDER_PAID_BY_STRIPE]["payment"]["status"] == "confirmed"
         and views[ORDER_PAID_BY_STRIPE]["stock"]["status"] == "committed"),
        ("#1002 released", lambda: views[ORDER_CANCELLED]["stock"]["status"] == "released"),
        ("nothing reserved is left behind", lambda: all(
            r.reserved == 0 for rows in levels.values() for r in rows)),
        ("no stock below zero", lambda: all(
            r.available >= 0 for rows in levels.values() for r in rows)),
        ("every DLQ empty", lambda: not any(dead.values())),
        ("one label per paid order", lambda: len(purchases) == 2),
        ("#1001 delivered", lambda: views[ORDER_PAID_BY_SHOPIFY]["shipment"]["status"]
         == "delivered"),
        ("each label's tracking on the storefront, once", lambda: sorted(
            len(numbers) for numbers in fulfilled.values()) == [1, 1]),
        ("the storefront shows the ledger's available", lambda: storefront == sum(
            r.available for r in levels[LISTED_SKU])),
        ("one CRM contact per customer", lambda: len(contacts) == 1),
    ]  # fmt: skip
    for name, check in checks:
        try:
            passed = check()
        except (KeyError, TypeError):
            passed = False
        if not passed:
            failures.append(name)


def main() -> None:
    """Entry point of `make demo` (`python -m storewire_local.demo`)."""
    console = Console()
    if console.width < 140:
        console = Console(width=140)
    sys.exit(run(console))


if __name__ == "__main__":
    main()
