"""Stock push and fulfilment adapters against the Shopify Admin fake, over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from storewire.adapters.shopify_admin import (
    CHANNEL_API_VERSION,
    SET_AVAILABLE_MUTATION,
    ShopifyAdminGateway,
    ShopifyChannelInventory,
    ShopifyFulfilment,
    describe_shopify_error,
    tracking_info,
)
from storewire.domain.channels import ChannelListing, StaleQuantity
from storewire.http import HttpClient, PermanentUpstreamError, RetryableUpstreamError, RetryPolicy
from storewire.labels import FulfilmentRequest
from storewire_local.fakes.shopify_admin import DEFAULT_ADMIN_TOKEN, ShopifyAdminFake

pytestmark = pytest.mark.integration

SHOP = "storewire-demo.myshopify.com"
ITEM = "gid://shopify/InventoryItem/4401"
LOCATION = "gid://shopify/Location/1"
ORDER = json.loads(
    (Path(__file__).resolve().parents[2] / "events/payloads/shopify/orders_create.json").read_text()
)


@pytest.fixture(scope="module")
def fake() -> Iterator[ShopifyAdminFake]:
    with ShopifyAdminFake() as server:
        yield server  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _clean(fake: ShopifyAdminFake) -> None:
    fake.reset()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def gateway(fake: ShopifyAdminFake, sleeps: Sleeps | None = None) -> ShopifyAdminGateway:
    http = HttpClient(
        httpx.Client(timeout=2),
        service="shopify_admin",
        policy=RetryPolicy(max_attempts=3, base_delay=0.01, max_retry_after=60),
        describe_error=describe_shopify_error,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    return ShopifyAdminGateway(
        http, DEFAULT_ADMIN_TOKEN, base_url=fake.url, api_version=CHANNEL_API_VERSION
    )


def seed_level(fake: ShopifyAdminFake, available: int, item: str = ITEM) -> None:
    httpx.post(
        f"{fake.url}/_fake/inventory",
        json={"inventory_item_id": item, "location_id": LOCATION, "available": available},
    ).raise_for_status()


LISTING = ChannelListing(
    sku="SW-TEE", location="default", inventory_item_id=ITEM, location_id=LOCATION
)


def set_(
    inventory: ShopifyChannelInventory, quantity: int, change_from: int | None, key: str
) -> None:
    inventory.set_available(
        LISTING,
        SHOP,
        quantity=quantity,
        change_from=change_from,
        idempotency_key=key,
        reference="storewire://stock/SW-TEE/3",
    )


# ---------------------------------------------------------------- inventory


def test_read_then_compare_and_set_the_available_quantity(fake: ShopifyAdminFake) -> None:
    seed_level(fake, 10)
    inventory = ShopifyChannelInventory(gateway(fake))

    assert inventory.read_available(LISTING, SHOP) == 10
    set_(inventory, 7, 10, "key-1")

    assert fake.available(ITEM, LOCATION) == 7
    (change,) = fake.adjustments
    assert (change["delta"], change["reference"], change["key"]) == (
        -3,
        "storewire://stock/SW-TEE/3",
        "key-1",
    )


def test_the_same_idempotency_key_replays_the_first_result_and_changes_nothing(
    fake: ShopifyAdminFake,
) -> None:
    seed_level(fake, 10)
    inventory = ShopifyChannelInventory(gateway(fake))
    set_(inventory, 7, 10, "key-1")
    seed_level(fake, 6)  # a sale on the storefront after our set

    set_(inventory, 7, 10, "key-1")  # a resend after a lost answer

    assert fake.available(ITEM, LOCATION) == 6
    assert len(fake.adjustments) == 1


def test_a_stale_compare_is_refused_and_changes_nothing(fake: ShopifyAdminFake) -> None:
    seed_level(fake, 12)
    inventory = ShopifyChannelInventory(gateway(fake))

    with pytest.raises(StaleQuantity, match="CHANGE_FROM_QUANTITY_STALE"):
        set_(inventory, 7, 10, "key-2")

    assert fake.available(ITEM, LOCATION) == 12
    assert fake.adjustments == []


def test_a_key_reused_with_other_arguments_is_refused(fake: ShopifyAdminFake) -> None:
    seed_level(fake, 10)
    inventory = ShopifyChannelInventory(gateway(fake))
    set_(inventory, 7, 10, "key-3")

    with pytest.raises(PermanentUpstreamError, match="idempotency key"):
        set_(inventory, 5, 7, "key-3")


def test_unknown_items_and_unstocked_locations_are_permanent(fake: ShopifyAdminFake) -> None:
    inventory = ShopifyChannelInventory(gateway(fake))
    with pytest.raises(PermanentUpstreamError, match="no inventory item"):
        inventory.read_available(LISTING, SHOP)
    with pytest.raises(PermanentUpstreamError, match="INVALID_INVENTORY_ITEM"):
        set_(inventory, 1, None, "key-4")
    seed_level(fake, 3)
    elsewhere = LISTING.model_copy(update={"location_id": "gid://shopify/Location/2"})
    with pytest.raises(PermanentUpstreamError, match="not stocked"):
        inventory.read_available(elsewhere, SHOP)


def test_the_directive_is_required_from_2026_04(fake: ShopifyAdminFake) -> None:
    seed_level(fake, 3)
    body = {
        "query": SET_AVAILABLE_MUTATION.replace(" @idempotent(key: $key)", ""),
        "variables": {"input": {"name": "available", "reason": "correction", "quantities": []}},
    }
    answer = httpx.post(
        f"{fake.url}/admin/api/2026-04/graphql.json",
        json=body,
        headers={"X-Shopify-Access-Token": DEFAULT_ADMIN_TOKEN},
    ).json()
    assert "@idempotent" in answer["errors"][0]["message"]


def test_throttled_sets_wait_for_the_bucket_and_go_through(fake: ShopifyAdminFake) -> None:
    seed_level(fake, 10)
    fake.add_fault({"mode": "throttle", "count": 1})
    sleeps = Sleeps()
    inventory = ShopifyChannelInventory(gateway(fake, sleeps))

    set_(inventory, 7, 10, "key-5")

    assert fake.available(ITEM, LOCATION) == 7
    assert sleeps == [0.5]  # the cost-based wait, at least 0.5 s
    assert len(fake.adjustments) == 1


# ---------------------------------------------------------------- fulfilment


def seed_order(fake: ShopifyAdminFake, **extra: Any) -> str:
    httpx.post(f"{fake.url}/_fake/orders", json={**ORDER, **extra}).raise_for_status()
    return str(extra.get("id", ORDER["id"]))


def request(
    external: str, tracking: str = "9400111899223100001", channel: str = "shopify"
) -> FulfilmentRequest:
    return FulfilmentRequest(
        order_id=f"shopify:{SHOP}:{external}",
        external_order_id=external,
        shop=SHOP,
        channel=channel,
        carrier="USPS",
        service="Priority",
        tracking_number=tracking,
        idempotency_key="evt_0123456789abcdef0123456789abcdef",
    )


def fulfillments(fake: ShopifyAdminFake, external: str) -> list[dict[str, Any]]:
    return list(fake.state()["orders"][external]["fulfillments"])


def test_fulfilment_closes_the_fulfillment_orders_with_carrier_and_tracking(
    fake: ShopifyAdminFake,
) -> None:
    external = seed_order(fake)
    push = ShopifyFulfilment(gateway(fake))

    fulfillment_id = push.push(request(external))

    (created,) = fulfillments(fake, external)
    assert created["view"]["id"] == fulfillment_id
    assert created["view"]["trackingInfo"] == [
        {
            "company": "USPS",
            "number": "9400111899223100001",
            "url": "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223100001",
        }
    ]
    assert created["notify_customer"] is True
    order = fake.state()["orders"][external]
    assert {fo["status"] for fo in order["fulfillment_orders"]} == {"CLOSED"}


def test_a_retry_after_success_finds_the_tracking_number_and_creates_nothing(
    fake: ShopifyAdminFake,
) -> None:
    external = seed_order(fake)
    push = ShopifyFulfilment(gateway(fake))
    first = push.push(request(external))

    assert push.push(request(external)) == first
    assert len(fulfillments(fake, external)) == 1


def test_a_lost_answer_then_a_resend_ends_with_one_fulfilment(fake: ShopifyAdminFake) -> None:
    external = seed_order(fake)
    admin = gateway(fake)
    real_query = admin.query

    def query(shop: str, text: str, variables: dict[str, Any]) -> dict[str, Any]:
        if "fulfillmentCreate" in text and not fake.faults:
            fake.add_fault({"mode": "drop"})  # served (the order closes), the answer is lost
        return real_query(shop, text, variables)

    admin.query = query  # type: ignore[method-assign]

    fulfillment_id = ShopifyFulfilment(admin).push(request(external))

    (created,) = fulfillments(fake, external)
    assert created["view"]["id"] == fulfillment_id
    creates = [r for r in fake.requests if r["path"].endswith("graphql.json")]
    assert len(creates) == 4  # read, create (lost), create again (refused), read


def test_a_second_create_on_a_closed_fulfillment_order_is_refused(fake: ShopifyAdminFake) -> None:
    external = seed_order(fake)
    ShopifyFulfilment(gateway(fake)).push(request(external))
    fo = fake.state()["orders"][external]["fulfillment_orders"][0]["id"]

    data = gateway(fake).query(
        SHOP,
        "mutation M($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) "
        "{ fulfillment { id } userErrors { field message } } }",
        {"f": {"lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo}]}},
    )

    (error,) = data["fulfillmentCreate"]["userErrors"]
    assert "unfulfillable status= closed" in error["message"]


def test_fulfilled_elsewhere_with_another_tracking_number_is_left_alone(
    fake: ShopifyAdminFake,
) -> None:
    external = seed_order(fake)
    ShopifyFulfilment(gateway(fake)).push(request(external, tracking="OTHER-1"))

    assert ShopifyFulfilment(gateway(fake)).push(request(external)) is None
    assert len(fulfillments(fake, external)) == 1


def test_an_order_without_fulfillment_orders_yet_is_retried_and_an_unknown_one_is_permanent(
    fake: ShopifyAdminFake,
) -> None:
    external = seed_order(fake, line_items=[])
    push = ShopifyFulfilment(gateway(fake))
    with pytest.raises(RetryableUpstreamError, match="no fulfillment orders"):
        push.push(request(external))
    with pytest.raises(PermanentUpstreamError, match="no order"):
        push.push(request("999"))
    assert push.push(request(external, channel="woocommerce")) is None


def test_tracking_info_for_known_and_unknown_carriers() -> None:
    assert (
        tracking_info("FedEx", "12 34")["url"] == "https://www.fedex.com/fedextrack/?trknbr=12%2034"
    )
    assert tracking_info("DHLExpress", "1")["company"] == "DHL Express"
    assert tracking_info("LaserShip", "LS1") == {"company": "LaserShip", "number": "LS1"}
