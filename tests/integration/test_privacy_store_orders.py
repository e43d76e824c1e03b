"""The privacy store sees inside the compressed order record, and rewrites it compressed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stock_support import ORDERS_TABLE, T0, moto_dynamodb, order_id, placed
from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
from storewire.adapters.privacy_store import AwsPrivacyStore

pytestmark = pytest.mark.integration


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_dynamodb(monkeypatch) as client:
        yield client


def test_the_order_record_is_searched_unpacked_and_rewritten_packed(dynamodb: Any) -> None:
    # Given an order record, stored compressed
    orders = DynamoDBOrderStore(dynamodb, ORDERS_TABLE)
    orders.record_placed(placed("1001", [("L1", "SKU-A", 2)]))
    orders.transition(order_id("1001"), "payment", "confirmed", event_id="p1", at=T0)
    privacy = AwsPrivacyStore(dynamodb, boto3.client("s3"), {"orders": ORDERS_TABLE}, "")

    # When the privacy service reads it: the record is plain JSON it can search
    ((role, item),) = list(privacy.items())
    assert role == "orders"
    assert "record_z" not in item
    record = json.loads(item["record"])
    assert record["order_id"] == order_id("1001")

    # And when it rewrites it (a redaction), under the record's version
    record["order_number"] = "[redacted]"
    privacy.replace("orders", {**item, "record": json.dumps(record)}, item)

    # Then the item is compressed again and the order store reads the change
    stored = dynamodb.get_item(TableName=ORDERS_TABLE, Key={"pk": {"S": item["pk"]}})["Item"]
    assert set(stored) >= {"record_z", "version"}
    assert "record" not in stored
    again = orders.get(order_id("1001"))
    assert again is not None
    assert again.order_number == "[redacted]"
    assert again.payment.status == "confirmed"
