"""Stock pushed to the storefront, through the whole graph: signed orders in, Shopify's
available quantity out, equal to the ledger's.

The emulator runs the real template.yaml with the Shopify Admin fake: webhook_ingest, the
bus, stock adjustment (StockLevelChanged), the ChannelSyncQueue and the channel_sync
function, which sets `available` on the fake with inventorySetQuantities (changeFromQuantity
+ @idempotent). The SKU is counted and mapped with the `storewire` CLI, as an operator would.
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

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads" / "shopify"
SECRET = "shpss_e2e_secret"
SHOP = "storewire-demo.myshopify.com"
LOCATION = "gid://shopify/Location/1"


@pytest.fixture(scope="module")
def state_dir(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("channel-state")
    write_state(directory, emulator.emu.info())
    return directory


def storewire(state_dir: Path, *args: str) -> Result:
    result = CliRunner().invoke(
        app, [*args, "--state-dir", str(state_dir)], catch_exceptions=False, env=dict(os.environ)
    )
    assert result.exit_code == 0, result.output
    return result


def shopify_url(emulator: EmulatorHandle) -> str:
    return str(emulator.emu.info()["fakes"]["shopify_admin"])


def fake_state(emulator: EmulatorHandle) -> dict[str, Any]:
    return dict(httpx.get(f"{shopify_url(emulator)}/_fake/state").json())


def set_channel_level(emulator: EmulatorHandle, item: str, available: int) -> None:
    httpx.post(
        f"{shopify_url(emulator)}/_fake/inventory",
        json={"inventory_item_id": item, "location_id": LOCATION, "available": available},
    ).raise_for_status()


def channel_available(emulator: EmulatorHandle, item: str) -> int:
    return int(fake_state(emulator)["inventory"][item]["levels"][LOCATION])


def place(emulator: EmulatorHandle, sku: str, quantity: int, *, times: int = 1) -> None:
    """A signed orders/create for a fresh order, delivered `times` times (one webhook id)."""
    order = json.loads((PAYLOADS / "orders_create.json").read_text())
    external = random.randint(10**12, 10**13)
    order["id"] = external
    order["line_items"] = [
        {**order["line_items"][0], "id": external + 1, "sku": sku, "quantity": quantity}
    ]
    body = json.dumps(order).encode()
    webhook_id = str(uuid.uuid4())
    for _ in range(times):
        headers = shopify_headers(
            "orders/create", body, secret=SECRET, shop=SHOP, webhook_id=webhook_id
        )
        answer = emulator.http.post("/webhooks/shopify", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
    emulator.wait_idle(timeout=60)


def ledger_available(state_dir: Path, sku: str) -> int:
    return int(json.loads(storewire(state_dir, "stock", "show", sku, "--json").stdout)["available"])


def test_an_order_sets_the_storefront_to_the_ledger_once_even_after_a_change_behind_our_back(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    # Given 10 units of a fresh SKU, listed on the storefront (which shows 10 as well)
    sku = f"SW-CHAN-{uuid.uuid4().hex[:8]}"
    item = f"gid://shopify/InventoryItem/{random.randint(10**9, 10**10)}"
    storewire(state_dir, "stock", "set", sku, "--on-hand", "10")
    set_channel_level(emulator, item, 10)
    mapped = storewire(
        state_dir,
        "channel",
        "map",
        sku,
        "--location",
        "default",
        "--inventory-item-id",
        item,
        "--location-id",
        LOCATION,
        "--json",
    )
    assert json.loads(mapped.stdout)["listings"][0]["inventory_item_id"] == item

    # When an order for 2 is delivered three times
    place(emulator, sku, 2, times=3)

    # Then the storefront's available equals the ledger's, set once
    assert ledger_available(state_dir, sku) == 8
    assert channel_available(emulator, item) == 8
    changes = [a for a in fake_state(emulator)["adjustments"] if a["inventory_item_id"] == item]
    assert [c["quantity_after"] for c in changes] == [8]
    shown = json.loads(storewire(state_dir, "channel", "show", sku, "--json").stdout)
    (listing,) = shown["listings"]
    assert listing["pushed_quantity"] == 8
    assert listing["pushed_version"] >= 2

    # When someone changes the storefront's quantity behind our back, then another order comes
    set_channel_level(emulator, item, 50)
    place(emulator, sku, 1)

    # Then the push found its compare stale, re-read, and still set the ledger's quantity
    assert ledger_available(state_dir, sku) == 7
    assert channel_available(emulator, item) == 7
    state = fake_state(emulator)
    stale = [r for r in state["refusals"] if r["code"] == "CHANGE_FROM_QUANTITY_STALE"]
    assert stale
    changes = [a for a in state["adjustments"] if a["inventory_item_id"] == item]
    assert [c["quantity_after"] for c in changes] == [8, 7]
    assert changes[-1]["delta"] == -43

    # And nothing of it ended in the channel sync DLQ
    dead = [b for b in emulator.peek_bodies("ChannelSyncDeadLetterQueue") if sku in json.dumps(b)]
    assert dead == []
