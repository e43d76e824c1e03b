"""`OrderStore` on DynamoDB: one item per order, written under an optimistic version check.

Item: ``pk`` (`ORDER#{order_id}`), ``version`` (N, +1 per write), ``record_z`` (the
`OrderRecord` as zlib-compressed JSON, Money as string amount + currency), ``external_ref``
(the storefront's order id, key of the `ByExternalRef` index, so `storewire order show 1001`
finds it), and read-only projections for people in the console (``status``,
``payment_status``, ``stock_status``, ``storefront_updated_at``).

The record is compressed because DynamoDB bills a write per started KB of the whole item
and an order's timeline and applied-event keys reach 4-5 KB of JSON by delivery: compressed,
the item stays near 1.5 KB, which cuts every order write to 2 units from 4-5. Items written
before compression (``record`` as a JSON string) are still read.

A change reads the item (strongly consistent), computes the new record with the pure
functions of `storewire.domain.orders` (which refuse duplicates per event id and
transitions the graph does not allow), and puts it conditioned on the version it read; a
concurrent writer makes the condition fail, and the change is re-read and recomputed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from storewire.domain import orders as domain
from storewire.domain.events import CanonicalEvent
from storewire.domain.orders import Concern, OrderNotFound, OrderRecord
from storewire.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

EXTERNAL_REF_INDEX = "ByExternalRef"


def order_pk(order_id: str) -> str:
    return f"ORDER#{order_id}"


PACKED_RECORD = "record_z"
"""The attribute holding the record as zlib-compressed JSON (``record``: the plain form)."""


def pack_record_json(text: str) -> bytes:
    return zlib.compress(text.encode(), 9)


def unpack_record_json(blob: bytes) -> str:
    return zlib.decompress(blob).decode()


def record_attribute(record: OrderRecord) -> dict[str, Any]:
    """The stored form of `record`: ``{"record_z": {"B": zlib(JSON)}}``."""
    return {PACKED_RECORD: {"B": pack_record_json(record.model_dump_json())}}


def record_from_item(item: Mapping[str, Any]) -> OrderRecord:
    """The `OrderRecord` of an orders-table item, compressed or (written earlier) plain JSON."""
    if PACKED_RECORD in item:
        return OrderRecord.model_validate_json(unpack_record_json(item[PACKED_RECORD]["B"]))
    return OrderRecord.model_validate_json(item["record"]["S"])


class DynamoDBOrderStore:
    """Order records in the orders table."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, attempts: int = 8) -> None:
        self._client = client
        self._table = table_name
        self._attempts = attempts

    def get(self, order_id: str) -> OrderRecord | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": order_pk(order_id)}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"orders read failed: {error}") from error
        item = response.get("Item")
        if not item:
            return None
        return record_from_item(item)

    def find(self, ref: str) -> OrderRecord | None:
        record = self.get(ref)
        if record is not None:
            return record
        try:
            response = self._client.query(
                TableName=self._table,
                IndexName=EXTERNAL_REF_INDEX,
                KeyConditionExpression="external_ref = :ref",
                ExpressionAttributeValues={":ref": {"S": ref}},
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"orders lookup failed: {error}") from error
        keys = response.get("Items", [])
        if len(keys) != 1:
            return None
        return self.get(keys[0]["pk"]["S"].removeprefix("ORDER#"))

    def record_placed(self, event: CanonicalEvent) -> OrderRecord:
        fresh = domain.new_record(event)
        for _ in range(self._attempts):
            existing = self.get(fresh.order_id)
            if existing is None:
                if self._put(fresh.model_copy(update={"version": 1}), expected=None):
                    return fresh.model_copy(update={"version": 1})
                continue
            merged = domain.merge_storefront(existing, event)
            if merged is None:
                return existing
            updated = merged.model_copy(update={"version": existing.version + 1})
            if self._put(updated, expected=existing.version):
                return updated
        raise RetryableError(f"order {fresh.order_id} kept changing; retry")

    def record_storefront_update(self, event: CanonicalEvent) -> bool:
        if event.order_id is None:
            raise ValueError(f"{event.event_type} {event.event_id} names no order")
        return self._change(event.order_id, lambda r: domain.merge_storefront(r, event))

    def transition(
        self,
        order_id: str,
        concern: Concern,
        to_status: str,
        *,
        event_id: str,
        at: datetime,
        details: Mapping[str, Any] | None = None,
        event_type: str = "",
        summary: str | None = None,
    ) -> bool:
        return self._change(
            order_id,
            lambda r: domain.transition(
                r,
                concern,
                to_status,
                event_id=event_id,
                at=at,
                details=details,
                event_type=event_type,
                summary=summary,
            ),
        )

    def append_timeline(
        self, order_id: str, *, event_id: str, event_type: str, at: datetime, summary: str
    ) -> bool:
        return self._change(
            order_id,
            lambda r: domain.append_timeline(
                r, event_id=event_id, event_type=event_type, at=at, summary=summary
            ),
        )

    # ------------------------------------------------------------------ internals

    def _change(self, order_id: str, change: Callable[[OrderRecord], OrderRecord | None]) -> bool:
        for _ in range(self._attempts):
            record = self.get(order_id)
            if record is None:
                raise OrderNotFound(f"no order record for {order_id} yet")
            changed = change(record)
            if changed is None:
                return False
            if self._put(
                changed.model_copy(update={"version": record.version + 1}),
                expected=record.version,
            ):
                return True
        raise RetryableError(f"order {order_id} kept changing; retry")

    def _put(self, record: OrderRecord, *, expected: int | None) -> bool:
        """Write `record` if the stored version is still `expected`; False if it moved."""
        item: dict[str, Any] = {
            "pk": {"S": order_pk(record.order_id)},
            "version": {"N": str(record.version)},
            **record_attribute(record),
            "external_ref": {"S": record.external_order_id},
            "status": {"S": record.status},
            "payment_status": {"S": record.payment.status},
            "stock_status": {"S": record.stock.status},
            "storefront_updated_at": {"S": record.storefront_updated_at.isoformat()},
        }
        try:
            if expected is None:
                self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                )
            else:
                self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="version = :v",
                    ExpressionAttributeValues={":v": {"N": str(expected)}},
                )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise RetryableError(f"orders write failed: {error}") from error
        except BotoCoreError as error:
            raise RetryableError(f"orders write failed: {error}") from error
        return True
