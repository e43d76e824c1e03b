"""Moto tables and wiring shared by the stock and order-record tests (in-process `mock_aws`).

The builders of tests/unit/stock_samples.py are re-exported so integration and reliability
tests build the same events as the unit tests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

import stock_samples
from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
from storewire.domain.inventory import LedgerEntry, MoveKind
from storewire.stock import StockDeps

# The unit tests' event builders, re-exported for the integration and reliability tests.
T0 = stock_samples.T0
RecordingPublisher = stock_samples.RecordingPublisher
cancelled = stock_samples.cancelled
order_id = stock_samples.order_id
payment = stock_samples.payment
placed = stock_samples.placed
refund = stock_samples.refund
updated = stock_samples.updated

INVENTORY_TABLE = "storewire-test-InventoryTable"
ORDERS_TABLE = "storewire-test-OrdersTable"


def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def create_inventory_table(client: Any, name: str = INVENTORY_TABLE) -> None:
    client.create_table(
        TableName=name,
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


def create_orders_table(client: Any, name: str = ORDERS_TABLE) -> None:
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "external_ref", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByExternalRef",
                "KeySchema": [{"AttributeName": "external_ref", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )


@contextmanager
def moto_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    aws_env(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb")
        create_inventory_table(client)
        create_orders_table(client)
        yield client


class CrashingStockStore:
    """The real adapter, except that the `crash_after`-th transaction raises first.

    Stands for a Lambda that dies between two chunks of a large order.
    """

    def __init__(self, inner: DynamoDBStockStore, crash_after: int) -> None:
        self.inner = inner
        self.crash_after = crash_after
        self.applied = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def apply(self, order_id: str, kind: MoveKind, entries: Sequence[LedgerEntry]) -> None:
        if self.applied == self.crash_after:
            self.crash_after = -1
            raise RuntimeError("the Lambda was killed between two chunks")
        self.applied += 1
        self.inner.apply(order_id, kind, entries)


def stock_deps(store: Any, **overrides: Any) -> tuple[StockDeps, RecordingPublisher]:
    publisher = RecordingPublisher()
    values: dict[str, Any] = {"store": store, "publisher": publisher, "sleep": lambda _s: None}
    values.update(overrides)
    return StockDeps(**values), publisher


def seed(client: Any, sku: str, on_hand: int, location: str = "default") -> None:
    """A stock row written directly (fast setup; counts through the adapter are tested)."""
    client.put_item(
        TableName=INVENTORY_TABLE,
        Item={
            "pk": {"S": f"STOCK#{sku}"},
            "sk": {"S": f"LOC#{location}"},
            "sku": {"S": sku},
            "location": {"S": location},
            "on_hand": {"N": str(on_hand)},
            "available": {"N": str(on_hand)},
            "version": {"N": "1"},
        },
    )


def scan(client: Any, table: str = INVENTORY_TABLE) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        response = client.scan(**kwargs)
        items.extend(response["Items"])
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def ledger_items(client: Any, kind: str | None = None) -> list[dict[str, Any]]:
    return [
        i
        for i in scan(client)
        if i["pk"]["S"].startswith("LEDGER#")
        and not i["pk"]["S"].startswith("LEDGER#manual#")
        and i["sk"]["S"] != "#order"
        and kind in (None, i["kind"]["S"])
    ]
