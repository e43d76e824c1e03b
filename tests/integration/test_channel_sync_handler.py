"""The channel_sync handler with its real wiring: moto (in-process) + the Shopify Admin fake.

The handler builds its adapters from the environment (`_wire`), as on Lambda: the listing
table, the DLQ and the token secret are moto's; the Shopify Admin API is the fake on loopback.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from channel_fakes import level_event
from stock_support import aws_env
from storewire.adapters.dynamodb_channels import DynamoDBChannelListingStore
from storewire.domain.channels import ChannelListing
from storewire.domain.events import CanonicalEvent, to_bus_entry
from storewire_local.fakes.shopify_admin import DEFAULT_ADMIN_TOKEN, ShopifyAdminFake

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "functions" / "channel_sync" / "app.py"
TABLE = "storewire-test-ChannelListingsTable"
ITEM = "gid://shopify/InventoryItem/7001"
LOCATION = "gid://shopify/Location/1"


def load_app() -> ModuleType:
    name = "channel_sync_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, APP)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class Context:
    function_name = "channel-sync"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:channel-sync"
    aws_request_id = "it-request"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


@pytest.fixture(scope="module")
def fake() -> Iterator[ShopifyAdminFake]:
    with ShopifyAdminFake() as server:
        yield server  # type: ignore[misc]


class World:
    def __init__(self, fake: ShopifyAdminFake, app: ModuleType) -> None:
        self.fake = fake
        self.app = app
        self.dynamodb = boto3.client("dynamodb")
        self.dynamodb.create_table(
            TableName=TABLE,
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
        self.store = DynamoDBChannelListingStore(self.dynamodb, TABLE)
        self.sqs = boto3.client("sqs")
        self.dlq = self.sqs.create_queue(QueueName="channel-dlq")["QueueUrl"]
        self.secret = boto3.client("secretsmanager").create_secret(
            Name="shopify-admin", SecretString=json.dumps({"current": DEFAULT_ADMIN_TOKEN})
        )["ARN"]

    def env(self) -> dict[str, str]:
        return {
            "CHANNEL_LISTINGS_TABLE_NAME": TABLE,
            "DEAD_LETTER_QUEUE_URL": self.dlq,
            "SHOPIFY_ADMIN_TOKEN_SECRET_ID": self.secret,
            "SHOPIFY_ADMIN_BASE_URL": self.fake.url,
            "HTTP_MAX_ATTEMPTS": "2",
        }

    def map(self, sku: str, item: str = ITEM) -> None:
        self.store.put_mapping(
            ChannelListing(
                sku=sku,
                location="default",
                inventory_item_id=item,
                location_id=LOCATION,
                mapped_at=datetime.now(UTC),
            )
        )

    def level(self, available: int) -> None:
        httpx.post(
            f"{self.fake.url}/_fake/inventory",
            json={"inventory_item_id": ITEM, "location_id": LOCATION, "available": available},
        ).raise_for_status()

    def run(self, *events: CanonicalEvent) -> Any:
        records = [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"r-{n}",
                "body": json.dumps(
                    {
                        "detail-type": event.event_type,
                        "source": to_bus_entry(event)["Source"],
                        "detail": json.loads(event.model_dump_json()),
                    }
                ),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:channel-sync",
                "awsRegion": "us-east-1",
            }
            for n, event in enumerate(events)
        ]
        return self.app.lambda_handler({"Records": records}, Context())

    def dead(self) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, fake: ShopifyAdminFake) -> Iterator[World]:
    aws_env(monkeypatch)
    fake.reset()
    app = load_app()
    with mock_aws():
        world = World(fake, app)
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)
        app._deps = None
        yield world
        app._deps = None


def test_a_batch_sets_the_newest_level_once_and_records_it(world: World) -> None:
    world.map("SW-TEE")
    world.level(10)

    answer = world.run(
        level_event("SW-TEE", 3, 8), level_event("SW-TEE", 5, 6), level_event("SW-TEE", 4, 7)
    )

    assert answer == {"batchItemFailures": []}
    assert world.fake.available(ITEM, LOCATION) == 6
    assert len(world.fake.adjustments) == 1
    (listing,) = world.store.listings("SW-TEE")
    assert (listing.pushed_version, listing.pushed_quantity) == (5, 6)


def test_redeliveries_change_nothing_and_a_change_behind_our_back_is_corrected(
    world: World,
) -> None:
    world.map("SW-TEE")
    world.level(10)
    world.run(level_event("SW-TEE", 5, 6))
    for _ in range(3):
        assert world.run(level_event("SW-TEE", 5, 6)) == {"batchItemFailures": []}
    assert len(world.fake.adjustments) == 1

    world.level(40)  # a merchant edits the quantity on the storefront
    world.run(level_event("SW-TEE", 6, 5))

    assert world.fake.available(ITEM, LOCATION) == 5
    assert [a["quantity_after"] for a in world.fake.adjustments] == [6, 5]
    assert world.store.listings("SW-TEE")[0].pushed_quantity == 5


def test_an_unknown_inventory_item_goes_to_the_dlq_with_the_reason(world: World) -> None:
    world.map("SW-GONE", item="gid://shopify/InventoryItem/404")

    answer = world.run(level_event("SW-GONE", 2, 1))

    assert answer == {"batchItemFailures": []}
    (message,) = world.dead()
    attributes = message["MessageAttributes"]
    assert attributes["storewire-error-type"]["StringValue"] == "ChannelPushFailed"
    assert "no inventory item" in attributes["storewire-reason"]["StringValue"]
    assert attributes["storewire-consumer"]["StringValue"] == "channel_sync"


def test_a_channel_down_fails_the_record_for_sqs_to_retry(world: World) -> None:
    world.map("SW-TEE")
    world.level(10)
    world.fake.add_fault({"mode": "status", "status": 503, "count": -1})
    try:
        answer = world.run(level_event("SW-TEE", 2, 1))
    finally:
        world.fake.faults.clear()

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert world.dead() == []
    (listing,) = world.store.listings("SW-TEE")
    assert (listing.claimed_version, listing.pushed_version) == (2, None)
    assert world.run(level_event("SW-TEE", 2, 1)) == {"batchItemFailures": []}
    assert world.fake.available(ITEM, LOCATION) == 1


def test_remapping_to_another_item_resets_the_compare_value(world: World) -> None:
    world.map("SW-TEE")
    world.level(10)
    world.run(level_event("SW-TEE", 2, 4))
    other = "gid://shopify/InventoryItem/7002"
    httpx.post(
        f"{world.fake.url}/_fake/inventory",
        json={"inventory_item_id": other, "location_id": LOCATION, "available": 9},
    ).raise_for_status()

    world.map("SW-TEE", item=other)
    (listing,) = world.store.listings("SW-TEE")
    assert (listing.inventory_item_id, listing.pushed_version, listing.pushed_quantity) == (
        other,
        2,
        None,
    )
    world.run(level_event("SW-TEE", 3, 3))
    assert world.fake.available(other, LOCATION) == 3
