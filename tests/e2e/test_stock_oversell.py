"""No overselling, through the whole graph: signed Shopify webhooks -> emulator -> stock.

20 orders for the last 5 units of a SKU, each delivered twice (two webhook ids, so two
OrderPlaced events each reach stock adjustment), all posted at once over HTTP. The emulator
runs the real template.yaml: webhook_ingest, the bus, the StockAdjustmentQueue and the
stock_adjustment function, over moto behind the emulator's lock.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from storewire_local.signing import shopify_headers
from storewire_local.testing import EmulatorHandle

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads" / "shopify"
SECRET = "shpss_e2e_secret"
SHOP = "storewire-demo.myshopify.com"
ORDERS = 20
UNITS = 5


def order_body(order_number: int, sku: str) -> bytes:
    order = json.loads((PAYLOADS / "orders_create.json").read_text())
    line = {**order["line_items"][0], "id": 8_000_000 + order_number, "sku": sku, "quantity": 1}
    order["id"] = 6_000_000_000 + order_number
    order["line_items"] = [line]
    return json.dumps(order).encode()


def post(emulator: EmulatorHandle, body: bytes) -> httpx.Response:
    headers = shopify_headers(
        "orders/create", body, secret=SECRET, shop=SHOP, webhook_id=str(uuid.uuid4())
    )
    return httpx.post(
        f"{emulator.api_url}/webhooks/shopify", content=body, headers=headers, timeout=60
    )


def seed(emulator: EmulatorHandle, sku: str, units: int) -> None:
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


def stock_events(emulator: EmulatorHandle, sku: str, detail_type: str) -> list[dict[str, Any]]:
    found = []
    for event in emulator.events(detail_type):
        data = event["detail"]["data"] or {}
        skus = {line["sku"] for line in data.get("lines", [])} | {data.get("sku")}
        if sku in skus:
            found.append(event["detail"])
    return found


def test_twenty_concurrent_orders_for_five_units_reserve_exactly_five(
    emulator: EmulatorHandle,
) -> None:
    # Given 5 units of a fresh SKU
    sku = f"SW-LAST-{uuid.uuid4().hex[:8]}"
    seed(emulator, sku, UNITS)
    bodies = [order_body(n, sku) for n in range(ORDERS)]

    # When 20 orders for one unit each are posted at once, each delivered twice
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda body: post(emulator, body), bodies * 2))
    emulator.wait_idle(timeout=120)

    # Then every delivery was accepted, exactly 5 orders are reserved and 15 backordered
    assert [a.status_code for a in answers] == [200] * (2 * ORDERS), [a.text for a in answers]
    reserved = {e["order_id"] for e in stock_events(emulator, sku, "StockReserved")}
    backordered = {e["order_id"] for e in stock_events(emulator, sku, "OrderBackordered")}
    assert (len(reserved), len(backordered)) == (UNITS, ORDERS - UNITS)
    assert not reserved & backordered

    # And the ledger holds one reservation per reserved order, nothing else
    table = emulator.resource("InventoryTable")
    items = emulator.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    ledger = [i for i in items if i.get("kind", {}).get("S") == "reserve" and i["sku"]["S"] == sku]
    assert len(ledger) == UNITS
    assert {i["pk"]["S"].removeprefix("LEDGER#") for i in ledger} == reserved

    # And available never went below 0: not in any published level, not in the row
    levels = [e["data"]["available"] for e in stock_events(emulator, sku, "StockLevelChanged")]
    assert levels
    assert min(levels) >= 0
    row = next(i for i in items if i["pk"]["S"] == f"STOCK#{sku}")
    assert (row["on_hand"]["N"], row["available"]["N"]) == (str(UNITS), "0")

    # And nothing of it ended in the stock adjustment DLQ
    dead = [
        b for b in emulator.peek_bodies("StockAdjustmentDeadLetterQueue") if sku in json.dumps(b)
    ]
    assert dead == []

    # And each order's record says what stock did
    orders = emulator.resource("OrdersTable")
    statuses = [
        emulator.client("dynamodb").get_item(TableName=orders, Key={"pk": {"S": f"ORDER#{oid}"}})[
            "Item"
        ]["stock_status"]["S"]
        for oid in reserved | backordered
    ]
    assert sorted(statuses) == ["backordered"] * (ORDERS - UNITS) + ["reserved"] * UNITS
