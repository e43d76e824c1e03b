"""`storewire backfill orders --since DATE` on a new installation, through the emulator.

The Shopify Admin fake holds N paid orders from days ago that never reached Storewire (no
webhook was ever posted). The backfill (typer's CliRunner, against a state dir whose
local.json points at this module's emulator) runs the real ReconciliationFunction until it
has caught up: every order then has its record and its events, once. Run again (and
--resume), it re-emits nothing new.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from storewire.adapters.dynamodb_orders import record_from_item
from storewire.domain.orders import OrderRecord
from storewire_local.cli import app
from storewire_local.state import write_state
from storewire_local.testing import EmulatorHandle
from typer.testing import CliRunner

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads" / "shopify"
SHOP = "storewire-demo.myshopify.com"
ORDERS = 12
UNITS = 100
FIRST_ID = 7_200_000_000_000


def body(n: int, at: datetime) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((PAYLOADS / "orders_paid.json").read_text())
    raw["id"] = FIRST_ID + n
    raw["name"] = f"#B{n}"
    raw["created_at"] = at.isoformat()
    raw["updated_at"] = (at + timedelta(seconds=30)).isoformat()
    for line in raw["line_items"]:
        line["sku"] = f"BF-{line['sku']}"
    return raw


def seed_stock(emulator: EmulatorHandle, sku: str) -> None:
    emulator.client("dynamodb").put_item(
        TableName=emulator.resource("InventoryTable"),
        Item={
            "pk": {"S": f"STOCK#{sku}"},
            "sk": {"S": "LOC#default"},
            "sku": {"S": sku},
            "location": {"S": "default"},
            "on_hand": {"N": str(UNITS)},
            "available": {"N": str(UNITS)},
            "version": {"N": "1"},
        },
    )


def record(emulator: EmulatorHandle, n: int) -> OrderRecord | None:
    item = (
        emulator.client("dynamodb")
        .get_item(
            TableName=emulator.resource("OrdersTable"),
            Key={"pk": {"S": f"ORDER#shopify:{SHOP}:{FIRST_ID + n}"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return None if item is None else record_from_item(item)


def per_order(emulator: EmulatorHandle, detail_type: str) -> Counter[str]:
    ours = {f"shopify:{SHOP}:{FIRST_ID + n}" for n in range(ORDERS)}
    return Counter(
        e["detail"]["order_id"]
        for e in emulator.events(detail_type)
        if e["detail"].get("order_id") in ours
    )


@pytest.fixture(scope="module")
def state_dir(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local.json pointing at the module's emulator, as `storewire local up` writes it."""
    directory = tmp_path_factory.mktemp("backfill-state")
    write_state(directory, emulator.emu.info())
    return directory


def storewire(state_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app, [*args, "--state-dir", str(state_dir)], catch_exceptions=False, env=dict(os.environ)
    )


def test_backfill_brings_every_historical_order_in_once_and_resumes_to_nothing(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    shopify_admin = emulator.emu.info()["fakes"]["shopify_admin"]
    start = datetime.now(UTC) - timedelta(days=3)
    sample = body(0, start)
    for sku in {line["sku"] for line in sample["line_items"]}:
        seed_stock(emulator, sku)
    for n in range(ORDERS):
        order = body(n, start + timedelta(minutes=n))
        httpx.post(f"{shopify_admin}/_fake/orders", json=order).raise_for_status()
    assert all(record(emulator, n) is None for n in range(ORDERS))

    since = (start - timedelta(days=1)).date().isoformat()  # a plain DATE
    first = storewire(state_dir, "backfill", "orders", "--since", since)
    assert first.exit_code == 0, first.output
    assert "caught up" in first.output
    emulator.wait_idle(120)

    for n in range(ORDERS):
        rec = record(emulator, n)
        assert rec is not None, n
        assert rec.payment.status == "confirmed", (n, rec.payment)
        assert rec.stock.status == "committed", (n, rec.stock)
    placed = per_order(emulator, "OrderPlaced")
    reported = per_order(emulator, "OrderPaymentReported")
    assert len(placed) == ORDERS, placed
    assert set(placed.values()) == {1}, placed  # once each
    assert len(reported) == ORDERS, reported
    assert set(reported.values()) == {1}, reported

    saved = json.loads((state_dir / "backfill.json").read_text())["local"][""]
    last = body(ORDERS - 1, start + timedelta(minutes=ORDERS - 1))["updated_at"]
    assert datetime.fromisoformat(saved["cursor"]) == datetime.fromisoformat(last)
    assert saved["complete"] is True
    assert saved["handled"] >= ORDERS

    # Again, from --since and with --resume: nothing new reaches the bus.
    before = len(emulator.events())
    again = storewire(state_dir, "backfill", "orders", "--since", since)
    assert again.exit_code == 0, again.output
    assert "0 events re-emitted" in again.output
    resumed = storewire(state_dir, "backfill", "orders", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "0 events re-emitted" in resumed.output
    emulator.wait_idle(60)
    new = [e["detail-type"] for e in emulator.events()[before:]]
    assert set(new) <= {"ReconciliationCompleted"}, new
    assert per_order(emulator, "OrderPlaced") == placed
