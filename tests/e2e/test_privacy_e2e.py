"""Privacy through the emulator: Shopify's compliance webhooks, and personal data kept out of logs.

A customer with personal data of their own (a unique name, email, phone and street) places an
order and pays it (label bought, CRM contact made). Then:

- `customers/data_request` -> a report in the claim-check bucket under `privacy/` holding the
  customer's order, and a `CustomerDataReportReady` saying where;
- `customers/redact` -> every DynamoDB table of the stack and every object (every version) of
  the claim-check bucket is scanned: none of the customer's strings is left anywhere, and the
  HubSpot fake no longer has the contact; a second delivery changes nothing and fails nothing;
- every function's log file (`logs/<Function>.log` under the emulator's state dir) after a full
  flow (place, pay, label, CRM, refund) holds none of the customer's strings.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from storewire_local.testing import EmulatorHandle, item_text
from test_labels_crm_e2e import (
    IDLE,
    PAYLOADS,
    SHOP,
    Order,
    contacts,
    fake_state,
    fakes,
    new_order,
    pay,
    post_shopify,
)


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    email: str
    phone: str
    street: str
    unit: str

    @property
    def strings(self) -> list[str]:
        return [
            self.email,
            self.first,
            self.last,
            f"{self.first} {self.last}",
            self.phone,
            self.phone.removeprefix("+1"),
            self.street,
            self.unit,
        ]


def person() -> Person:
    suffix = uuid.uuid4().hex[:8]
    digits = f"{random.randint(0, 9999):04d}"
    return Person(
        first=f"Zelda{suffix}",
        last=f"Quimby{suffix}",
        email=f"privacy-{suffix}@example.com",
        phone=f"+1646555{digits}",
        street=f"{random.randint(100, 999)} Privacy Lane {suffix}",
        unit=f"Suite P{suffix}",
    )


def order_for(emulator: EmulatorHandle, who: Person) -> Order:
    """The sample order, fresh ids and SKUs (stock seeded), carrying `who`'s personal data."""
    order = new_order(emulator, email=who.email)
    raw = order.raw
    address = {
        "first_name": who.first,
        "last_name": who.last,
        "name": f"{who.first} {who.last}",
        "phone": who.phone,
        "address1": who.street,
        "address2": who.unit,
    }
    for key in ("billing_address", "shipping_address"):
        raw[key] = {**raw[key], **address}
    raw["customer"] = {
        **raw["customer"],
        "first_name": who.first,
        "last_name": who.last,
        "phone": who.phone,
        "default_address": {**raw["customer"]["default_address"], **address},
    }
    return order


def place_and_pay(emulator: EmulatorHandle, order: Order) -> None:
    httpx.post(
        f"{fakes(emulator)['shopify_admin']}/_fake/orders", json=order.raw, timeout=10
    ).raise_for_status()
    answer = post_shopify(emulator, "orders/create", order.raw, f"wh-create-{order.external}")
    assert answer.status_code == 200, answer.text
    emulator.wait_idle(IDLE)
    pay(emulator, order)
    emulator.wait_idle(IDLE)


def refund(emulator: EmulatorHandle, order: Order) -> None:
    raw = json.loads((PAYLOADS / "shopify" / "refunds_create.json").read_text())
    raw["order_id"] = int(order.external)
    raw["id"] = random.randint(10**12, 10**13)
    skus = {line["id"]: line.get("sku") for line in order.raw["line_items"]}
    for line in raw["refund_line_items"]:
        if isinstance(line.get("line_item"), dict) and line["line_item"]["id"] in skus:
            line["line_item"]["sku"] = skus[line["line_item"]["id"]]
    answer = post_shopify(emulator, "refunds/create", raw, f"wh-refund-{order.external}")
    assert answer.status_code == 200, answer.text
    emulator.wait_idle(IDLE)


def compliance(
    emulator: EmulatorHandle, topic: str, order: Order, webhook_id: str
) -> httpx.Response:
    customer = order.raw["customer"]
    payload: dict[str, Any] = {
        "shop_id": 954889,
        "shop_domain": SHOP,
        "customer": {"id": customer["id"], "email": order.email, "phone": customer["phone"]},
    }
    if topic == "customers/data_request":
        payload["orders_requested"] = [int(order.external)]
        payload["data_request"] = {"id": random.randint(1000, 9999)}
    else:
        payload["orders_to_redact"] = [int(order.external)]
    return post_shopify(emulator, topic, payload, webhook_id)


def everything_stored(emulator: EmulatorHandle) -> str:
    """Every item of every DynamoDB table and every version of every object, as one text."""
    dynamodb = emulator.client("dynamodb")
    chunks: list[str] = []
    tables = dynamodb.list_tables()["TableNames"]
    assert len(tables) >= 6, tables
    for table in tables:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            chunks.extend(item_text(item) for item in page.get("Items", []))
    s3 = emulator.client("s3")
    bucket = emulator.resource("ClaimCheckBucket")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
            chunks.append(version["Key"] + " " + body["Body"].read().decode(errors="replace"))
    return "\n".join(chunks)


def objects(emulator: EmulatorHandle, prefix: str) -> dict[str, bytes]:
    s3 = emulator.client("s3")
    bucket = emulator.resource("ClaimCheckBucket")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def missing_from(text: str, who: Person) -> list[str]:
    lowered = text.lower()
    return [s for s in who.strings if s.lower() in lowered]


# --------------------------------------------------------------------------- tests


def test_a_data_request_reports_the_customers_orders_once(emulator: EmulatorHandle) -> None:
    who = person()
    order = order_for(emulator, who)
    place_and_pay(emulator, order)
    assert contacts(emulator, who.email), "the CRM contact should exist before the request"

    for n in range(2):  # the second delivery (a new webhook id) finds the report already there
        answer = compliance(emulator, "customers/data_request", order, f"wh-dr-{order.external}")
        assert answer.status_code == 200, answer.text
        emulator.wait_idle(IDLE)
        assert n == 0 or answer.json()["status"] == "duplicate"

    ready = [
        e["detail"]
        for e in emulator.events("CustomerDataReportReady")
        if e["detail"]["customer_id"] == f"shopify:{SHOP}:customer:{order.raw['customer']['id']}"
    ]
    assert len({e["event_id"] for e in ready}) == 1, ready
    key = ready[0]["data"]["key"]
    assert key.startswith("privacy/")
    report = json.loads(objects(emulator, "privacy/")[key])
    assert order.order_id in report["orders"]
    assert {"orders", "labels", "crm", "inventory"} <= set(report["tables"]), report["tables"]
    assert any(order.external in json.dumps(c) for c in report["claim_checks"]) or (
        report["claim_checks"] == []
    )
    assert who.email in json.dumps(report)  # it is the customer's own data
    assert emulator.peek("PrivacyDeadLetterQueue") == []  # nothing failed on the way


def test_a_redaction_leaves_nothing_of_the_customer_anywhere(emulator: EmulatorHandle) -> None:
    who = person()
    order = order_for(emulator, who)
    place_and_pay(emulator, order)
    answer = compliance(emulator, "customers/data_request", order, f"wh-dr2-{order.external}")
    assert answer.status_code == 200, answer.text
    emulator.wait_idle(IDLE)
    assert missing_from(everything_stored(emulator), who), "the data should be stored first"
    assert contacts(emulator, who.email)

    answer = compliance(emulator, "customers/redact", order, f"wh-redact-{order.external}")
    assert answer.status_code == 200, answer.text
    emulator.wait_idle(IDLE)

    assert missing_from(everything_stored(emulator), who) == []
    assert contacts(emulator, who.email) == []
    assert not any(
        str(c["properties"].get("email", "")).lower() == who.email
        for c in fake_state(emulator, "hubspot")["contacts"]
    )

    # A redelivery (a new webhook id, so a new event) finds nothing more to do, and fails nothing
    answer = compliance(emulator, "customers/redact", order, f"wh-redact-again-{order.external}")
    assert answer.status_code == 200, answer.text
    emulator.wait_idle(IDLE)
    assert missing_from(everything_stored(emulator), who) == []
    assert emulator.peek("PrivacyDeadLetterQueue") == []
    assert emulator.peek("PrivacyQueue") == []


def test_a_full_order_flow_logs_no_personal_data(emulator: EmulatorHandle) -> None:
    who = person()
    order = order_for(emulator, who)
    place_and_pay(emulator, order)
    refund(emulator, order)
    assert contacts(emulator, who.email), "the CRM step ran"
    assert [
        e for e in emulator.events("LabelCreated") if e["detail"]["order_id"] == order.order_id
    ], "the label step ran"

    logs = Path(emulator.emu.state_dir) / "logs"
    files = sorted(logs.glob("*.log"))
    names = {f.stem for f in files}
    assert {"WebhookIngestFunction", "StockAdjustmentFunction", "CrmSyncFunction"} <= names
    text = "\n".join(f.read_text(errors="replace") for f in files)
    assert order.order_id in text or order.external in text  # the logs are about this order
    assert missing_from(text, who) == []
