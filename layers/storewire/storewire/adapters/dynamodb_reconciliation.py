"""The DynamoDB reads and the one write the reconciliation needs.

* `DynamoDBWatermarkStore`: the orders watermark, one small item in the orders table under
  ``pk = RECONCILE#{kind}#{shop}`` (``watermark``: ISO 8601 UTC). It is advanced with a
  condition (absent, or older than the new value), so it never moves backwards, even when two
  runs overlap.
* `DynamoDBReconcileOrders`: `get` (the order store's) and `pending_payments`, a scan of the
  orders table filtered on the ``payment_status`` projection (``pending``). A scan reads the
  whole table; a sparse ``PendingPayment`` index (an attribute set only while the payment is
  pending) would read only those orders — see docs/operations.md. The schedule runs every 15
  minutes, so for a small shop the scan is the simpler choice for now.
* `DynamoDBListingScan`: every channel listing (a scan of the listings table).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from storewire.adapters.dynamodb_channels import _listing
from storewire.adapters.dynamodb_orders import DynamoDBOrderStore, record_from_item
from storewire.domain.channels import ChannelListing
from storewire.domain.events import CanonicalEvent
from storewire.domain.orders import OrderRecord
from storewire.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def watermark_pk(kind: str, shop: str) -> str:
    return f"RECONCILE#{kind}#{shop}"


def _scan(client: DynamoDBClient, **kwargs: Any) -> Iterator[dict[str, Any]]:
    start: dict[str, Any] | None = None
    try:
        while True:
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = client.scan(**kwargs)
            yield from page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return
    except (ClientError, BotoCoreError) as error:
        raise RetryableError(f"scan of {kwargs.get('TableName')} failed: {error}") from error


class DynamoDBWatermarkStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get(self, kind: str, shop: str) -> datetime | None:
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": watermark_pk(kind, shop)}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"watermark read failed: {error}") from error
        if not item or "watermark" not in item:
            return None
        return datetime.fromisoformat(item["watermark"]["S"])

    def advance(self, kind: str, shop: str, at: datetime) -> None:
        stamp = at.astimezone(UTC).isoformat()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": watermark_pk(kind, shop)},
                    "watermark": {"S": stamp},
                    "updated_at": {"S": datetime.now(UTC).isoformat()},
                },
                # ISO 8601 UTC strings of one format sort as the times they name.
                ConditionExpression="attribute_not_exists(pk) OR watermark < :w",
                ExpressionAttributeValues={":w": {"S": stamp}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return  # a later watermark is already stored
            raise RetryableError(f"watermark write failed: {error}") from error
        except BotoCoreError as error:
            raise RetryableError(f"watermark write failed: {error}") from error


class DynamoDBReconcileOrders:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._store = DynamoDBOrderStore(client, table_name)

    def get(self, order_id: str) -> OrderRecord | None:
        return self._store.get(order_id)

    def record_storefront_update(self, event: CanonicalEvent) -> bool:
        return self._store.record_storefront_update(event)

    def pending_payments(self) -> Iterator[OrderRecord]:
        for item in _scan(
            self._client,
            TableName=self._table,
            FilterExpression="begins_with(pk, :order) AND payment_status = :pending",
            ExpressionAttributeValues={":order": {"S": "ORDER#"}, ":pending": {"S": "pending"}},
            ConsistentRead=True,
        ):
            yield record_from_item(item)


class DynamoDBListingScan:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def all_listings(self) -> Iterator[ChannelListing]:
        for item in _scan(self._client, TableName=self._table, ConsistentRead=True):
            yield _listing(item)
