"""`make demo`: the whole graph on the local emulator, shown as a timeline.

Starts the emulator on the real ``template.yaml``, posts the sample Shopify webhooks as Shopify
would (plus a duplicate delivery, a tampered signature, a malformed body and a topic Storewire
does not handle), waits for the graph to settle, then prints what each delivery was answered,
which canonical events reached the bus and which consumer queues received them. The demo checks
its own story: it exits non-zero if any of it did not happen as described.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from collections import Counter
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

CONSUMER_QUEUES = {
    "PaymentConfirmationQueue": "payment confirmation",
    "StockAdjustmentQueue": "stock adjustment",
    "LabelCreationQueue": "label creation",
    "CrmSyncQueue": "CRM sync",
}


@dataclass(frozen=True)
class Delivery:
    """One webhook the demo posts, and the answer the story expects."""

    label: str
    topic: str
    body: bytes
    webhook_id: str
    expected_status: int
    expected_outcome: str
    tamper: bool = False


def _payload(topic: str) -> bytes:
    raw = json.loads((PAYLOADS / f"{topic.replace('/', '_')}.json").read_text())
    return json.dumps(raw, separators=(",", ":")).encode()


def _deliveries() -> list[Delivery]:
    order_create = _payload("orders/create")
    first_id = str(uuid.uuid4())
    return [
        Delivery("new customer", "customers/create", _payload("customers/create"),
                 str(uuid.uuid4()), 200, "accepted"),
        Delivery("order placed", "orders/create", order_create, first_id, 200, "accepted"),
        Delivery("same delivery again (Shopify retry)", "orders/create", order_create, first_id,
                 200, "duplicate"),
        Delivery("order paid", "orders/paid", _payload("orders/paid"), str(uuid.uuid4()),
                 200, "accepted"),
        Delivery("order edited", "orders/updated", _payload("orders/updated"),
                 str(uuid.uuid4()), 200, "accepted"),
        Delivery("refund with restock", "refunds/create", _payload("refunds/create"),
                 str(uuid.uuid4()), 200, "accepted"),
        Delivery("customer updated", "customers/update", _payload("customers/update"),
                 str(uuid.uuid4()), 200, "accepted"),
        Delivery("order cancelled", "orders/cancelled", _payload("orders/cancelled"),
                 str(uuid.uuid4()), 200, "accepted"),
        Delivery("tampered signature", "orders/create", order_create, str(uuid.uuid4()),
                 401, "SignatureInvalid", tamper=True),
        Delivery("malformed JSON", "orders/create", b'{"id": 1, "line_items": [',
                 str(uuid.uuid4()), 400, "MalformedPayload"),
        Delivery("topic not handled", "products/update", b'{"id": 632910392}',
                 str(uuid.uuid4()), 200, "ignored"),
    ]  # fmt: skip


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


def run(console: Console) -> int:
    """Run the story; the number of expectations that failed."""
    secret = os.environ.get("SHOPIFY_WEBHOOK_SECRET", DEFAULT_SHOPIFY_SECRET)
    failures: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="storewire-demo-") as state_dir,
        Emulator(ROOT / "template.yaml", port=0, state_dir=Path(state_dir)) as emulator,
    ):
        console.print(f"[bold]Storewire emulator ready[/] at {emulator.api_url} "
                      f"(moto at {emulator.aws_endpoint_url})\n")  # fmt: skip
        url = f"{emulator.api_url}/webhooks/shopify"
        answers = Table(title="1. Webhooks posted to POST /webhooks/shopify", title_justify="left")
        for column in ("#", "what", "topic", "webhook id", "answer", "outcome"):
            answers.add_column(column)
        with httpx.Client(timeout=30.0) as http:
            for number, delivery in enumerate(_deliveries(), start=1):
                headers = shopify_headers(
                    delivery.topic, delivery.body, secret=secret, shop=SHOP,
                    webhook_id=delivery.webhook_id, tamper=delivery.tamper,
                )  # fmt: skip
                response = http.post(url, content=delivery.body, headers=headers)
                outcome = _outcome(response)
                ok = (response.status_code, outcome) == (
                    delivery.expected_status,
                    delivery.expected_outcome,
                )
                if not ok:
                    failures.append(
                        f"{delivery.label}: expected {delivery.expected_status} "
                        f"{delivery.expected_outcome}, got {response.status_code} {outcome}"
                    )
                style = "green" if response.status_code < 300 else "yellow"
                answers.add_row(
                    str(number), delivery.label, delivery.topic, delivery.webhook_id[:8],
                    f"[{style}]{response.status_code}[/]", outcome + ("" if ok else " [red]✗[/]"),
                )  # fmt: skip
        emulator.wait_idle(timeout=30)
        console.print(answers)

        events = emulator.recorded_events()
        bus = Table(title="2. Canonical events put on the bus", title_justify="left")
        for column in ("time", "detail-type", "source", "order", "event id"):
            bus.add_column(column)
        for envelope in events:
            detail = envelope.get("detail") or {}
            bus.add_row(
                str(envelope.get("time")), str(envelope.get("detail-type")),
                str(envelope.get("source")),
                str(detail.get("external_order_id") or detail.get("customer_id") or "-"),
                str(detail.get("event_id")),
            )  # fmt: skip
        console.print(bus)

        routed = Table(title="3. What reached each consumer queue", title_justify="left")
        routed.add_column("queue")
        routed.add_column("events received")
        delivered: dict[str, Counter[str]] = {}
        for logical_id, label in CONSUMER_QUEUES.items():
            kinds: Counter[str] = Counter()
            for message in emulator.peek_queue(logical_id):
                kinds[json.loads(message["body"]).get("detail-type", "?")] += 1
            delivered[logical_id] = kinds
            routed.add_row(
                f"{label} ({logical_id})",
                ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items())) or "-",
            )
        console.print(routed)

        kinds_on_bus = Counter(str(e.get("detail-type")) for e in events)
        if kinds_on_bus["OrderPlaced"] != 1:
            failures.append(
                f"expected exactly one OrderPlaced on the bus, saw {kinds_on_bus['OrderPlaced']}"
            )
        if delivered["StockAdjustmentQueue"]["OrderPlaced"] != 1:
            failures.append("stock adjustment did not receive exactly one OrderPlaced")
        if delivered["LabelCreationQueue"]:
            failures.append("label creation received events before any stock was committed")

    if failures:
        console.print("\n[bold red]The demo did not go as described:[/]")
        for failure in failures:
            console.print(f"  • {failure}")
        return 1
    console.print(
        "\n[bold green]Done.[/] Every accepted webhook became its events once; the duplicate "
        "emitted nothing; the tampered and malformed deliveries were refused and changed nothing."
    )
    return 0


def main() -> None:
    """Entry point of `make demo` (`python -m storewire_local.demo`)."""
    console = Console()
    if console.width < 140:
        console = Console(width=140)
    sys.exit(run(console))


if __name__ == "__main__":
    main()
