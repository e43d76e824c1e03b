"""The reconciliation handler with its real wiring: moto (in-process) + the Shopify Admin fake.

The orders connection is paged (page size 2) and throttled by the fake's real bucket; the
watermark lives in the orders table; events are read back from a queue behind the bus.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws
from stock_support import (
    INVENTORY_TABLE,
    ORDERS_TABLE,
    aws_env,
    create_inventory_table,
    create_orders_table,
    seed,
)
from storewire.adapters.dynamodb_channels import DynamoDBChannelListingStore
from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
from storewire.adapters.dynamodb_reconciliation import DynamoDBWatermarkStore
from storewire.domain.channels import ChannelListing
from storewire.sources.shopify import normalise_payload
from storewire_local.fakes.shopify_admin import DEFAULT_ADMIN_TOKEN, ShopifyAdminFake

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "functions" / "reconciliation" / "app.py"
SAMPLE = Path(__file__).resolve().parents[2] / "events" / "payloads" / "shopify"
LISTINGS = "storewire-test-ChannelListingsTable"
SHOP = "storewire-demo.myshopify.com"
ITEM = "gid://shopify/InventoryItem/7001"
LOCATION = "gid://shopify/Location/1"


def load_app() -> ModuleType:
    name = "reconciliation_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, APP)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class Context:
    function_name = "reconciliation"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:reconciliation"
    aws_request_id = "it-request"

    def get_remaining_time_in_millis(self) -> int:
        return 60000


def payload(external: int, updated: datetime, status: str = "paid") -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SAMPLE / "orders_create.json").read_text())
    body.update(
        id=external,
        name=f"#{external}",
        updated_at=updated.isoformat(),
        created_at=(updated - timedelta(seconds=5)).isoformat(),
        financial_status=status,
    )
    return body


@pytest.fixture(scope="module")
def fake() -> Iterator[ShopifyAdminFake]:
    with ShopifyAdminFake() as server:
        yield server  # type: ignore[misc]


class World:
    def __init__(self, fake: ShopifyAdminFake) -> None:
        self.fake = fake
        self.dynamodb = boto3.client("dynamodb")
        create_orders_table(self.dynamodb)
        create_inventory_table(self.dynamodb)
        self.dynamodb.create_table(
            TableName=LISTINGS,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        events = boto3.client("events")
        events.create_event_bus(Name="storewire")
        self.sqs = boto3.client("sqs")
        self.queue = self.sqs.create_queue(QueueName="everything")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="all", EventBusName="storewire", EventPattern='{"source": [{"prefix": ""}]}'
        )
        events.put_targets(
            Rule="all",
            EventBusName="storewire",
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.secret = boto3.client("secretsmanager").create_secret(
            Name="shopify-admin", SecretString=json.dumps({"current": DEFAULT_ADMIN_TOKEN})
        )["ARN"]
        self.orders = DynamoDBOrderStore(self.dynamodb, ORDERS_TABLE)

    def env(self) -> dict[str, str]:
        return {
            "EVENT_BUS_NAME": "storewire",
            "ORDERS_TABLE_NAME": ORDERS_TABLE,
            "INVENTORY_TABLE_NAME": INVENTORY_TABLE,
            "CHANNEL_LISTINGS_TABLE_NAME": LISTINGS,
            "SHOPIFY_SHOP": SHOP,
            "SHOPIFY_ADMIN_TOKEN_SECRET_ID": self.secret,
            "SHOPIFY_ADMIN_BASE_URL": self.fake.url,
            "RECONCILE_PAGE_SIZE": "2",
            "HTTP_MAX_ATTEMPTS": "3",
        }

    def events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])

    def seed_order(self, body: dict[str, Any], *, recorded: bool) -> None:
        httpx.post(f"{self.fake.url}/_fake/orders", json=body).raise_for_status()
        if recorded:
            (event,) = normalise_payload(
                "orders/create", body, shop=SHOP, delivery_id=f"d{body['id']}", occurred_at=None
            )
            self.orders.record_placed(event)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, fake: ShopifyAdminFake) -> Iterator[World]:
    aws_env(monkeypatch)
    fake.reset()
    app = load_app()
    with mock_aws():
        world = World(fake)
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)
        app._deps = None
        yield world
        app._deps = None


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = load_app().lambda_handler(event, Context())
    return result


def test_orders_never_seen_are_re_emitted_and_the_watermark_is_stored(world: World) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    for n in range(5):
        world.seed_order(payload(1000 + n, start + timedelta(minutes=n)), recorded=n % 2 == 0)

    result = invoke({"kind": "orders", "since": (start - timedelta(minutes=1)).isoformat()})

    assert result["checked"] == 5
    assert result["missing"] == 2
    assert result["pages"] == 3
    events = world.events()
    placed = sorted(
        e["detail"]["external_order_id"] for e in events if e["detail-type"] == "OrderPlaced"
    )
    assert placed == ["1001", "1003"]
    assert all(
        e["source"] == "storewire.shopify"
        for e in events
        if e["detail-type"] != "ReconciliationCompleted"
    )
    (completed,) = [e for e in events if e["detail-type"] == "ReconciliationCompleted"]
    assert completed["detail"]["data"]["missing"] == 2
    mark = DynamoDBWatermarkStore(world.dynamodb, ORDERS_TABLE).get("orders", SHOP)
    assert mark == start + timedelta(minutes=4) - timedelta(minutes=5)

    # The next scheduled run starts from the watermark (no consumer runs here, so the same
    # two are re-emitted again, with the same ids: consumers drop them as duplicates).
    again = invoke({"kind": "orders"})
    assert mark is not None
    assert datetime.fromisoformat(again["since"]) == mark
    assert again["checked"] == 5
    assert again["missing"] == 2


def test_a_throttled_listing_waits_for_the_bucket(world: World) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    world.seed_order(payload(2000, start), recorded=False)
    httpx.post(f"{world.fake.url}/_fake/bucket", json={"currentlyAvailable": 0}).raise_for_status()

    result = invoke({"kind": "orders", "since": (start - timedelta(minutes=1)).isoformat()})

    assert result["missing"] == 1
    assert result["complete"]


def test_stock_drift_is_corrected_on_the_channel(world: World) -> None:
    seed(world.dynamodb, "SW-TEE", 10)
    DynamoDBChannelListingStore(world.dynamodb, LISTINGS).put_mapping(
        ChannelListing(sku="SW-TEE", location="*", inventory_item_id=ITEM, location_id=LOCATION)
    )
    httpx.post(
        f"{world.fake.url}/_fake/inventory",
        json={"inventory_item_id": ITEM, "location_id": LOCATION, "available": 3},
    ).raise_for_status()

    result = invoke({"kind": "stock"})

    assert result["checked"] == 1
    assert result["corrected"] == 1
    assert world.fake.available(ITEM, LOCATION) == 10
    assert invoke({"kind": "stock"})["corrected"] == 0


def test_payments_pending_past_the_threshold_are_re_reported(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILE_PAYMENT_THRESHOLD_SECONDS", "0")
    world.seed_order(payload(3000, datetime.now(UTC) - timedelta(hours=1)), recorded=True)

    result = invoke({"kind": "payments"})

    assert result["checked"] == 1
    assert result["corrected"] == 1
    reported = [e for e in world.events() if e["detail-type"] == "OrderPaymentReported"]
    assert [e["detail"]["external_order_id"] for e in reported] == ["3000"]


def test_a_bad_kind_is_refused(world: World) -> None:
    from storewire.errors import MalformedPayload

    with pytest.raises(MalformedPayload):
        invoke({"kind": "everything"})


def test_the_fake_orders_connection_pages_by_cursor_and_filters_on_updated_at(
    fake: ShopifyAdminFake,
) -> None:
    from storewire.adapters.shopify_orders import ShopifyStorefrontOrders
    from storewire.http import HttpClient

    fake.reset()
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for n in range(5):
        httpx.post(
            f"{fake.url}/_fake/orders", json=payload(4000 + n, start + timedelta(minutes=n))
        ).raise_for_status()
    orders = ShopifyStorefrontOrders(
        HttpClient(httpx.Client(), service="shopify_admin"), DEFAULT_ADMIN_TOKEN, base_url=fake.url
    )
    since = start + timedelta(seconds=30)  # 4000 is older: not listed
    first = orders.list_updated(SHOP, since, first=3, after=None)
    second = orders.list_updated(SHOP, since, first=3, after=first.end_cursor)
    listed = [o.external_order_id for o in (*first.orders, *second.orders)]
    assert listed == ["4001", "4002", "4003", "4004"]
    assert first.has_next_page
    assert not second.has_next_page
    assert first.throttle is not None
    assert first.throttle.requested == 5
    assert first.throttle.restore_rate > 0
    fetched = orders.fetch_order(SHOP, "4002")
    assert fetched is not None
    assert fetched["id"] == 4002
    assert orders.fetch_order(SHOP, "999") is None
