"""`DedupeStore` on DynamoDB: one conditional write claims a delivery.

Item: ``pk`` (`webhook#{source}#{delivery_id}`), ``status`` (`pending` | `done`),
``lease_until`` (epoch s, while pending), ``claim_token``, ``event_ids`` (when done),
``expires_at`` (epoch s, the table's TTL attribute).

A claim succeeds when no item exists, or when a `pending` item's lease has run out (its
invocation died). On a failed publish the claim is deleted, so the sender's retry proceeds
at once; `complete` and `release` only touch an item that still carries this claim's token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from storewire.errors import RetryableError
from storewire.ports import ClaimOutcome

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

PENDING = "pending"
DONE = "done"


def _conditional_check_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoDBDedupeStore:
    """Claims, completes and releases deliveries in the webhook dedupe table."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        lease_seconds: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._lease = lease_seconds
        self._clock = clock
        self._tokens: dict[str, str] = {}

    def claim(self, key: str, ttl_seconds: int) -> ClaimOutcome:
        now = int(self._clock())
        token = uuid.uuid4().hex
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": key},
                    "status": {"S": PENDING},
                    "claim_token": {"S": token},
                    "lease_until": {"N": str(now + self._lease)},
                    "claimed_at": {"N": str(now)},
                    "expires_at": {"N": str(now + ttl_seconds)},
                },
                ConditionExpression=(
                    "attribute_not_exists(pk) OR (#status = :pending AND lease_until < :now)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": {"S": PENDING}, ":now": {"N": str(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _conditional_check_failed(error):
                raise RetryableError(f"dedupe claim failed: {_code(error)}") from error
            old: Any = error.response.get("Item")
            existing: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
            if not existing:
                existing = self._get(key)
            status = existing.get("status", {}).get("S")
            return ClaimOutcome.IN_PROGRESS if status == PENDING else ClaimOutcome.DUPLICATE
        self._tokens[key] = token
        return ClaimOutcome.CLAIMED

    def complete(self, key: str, event_ids: Sequence[str]) -> None:
        token = self._tokens.pop(key, "")
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression=(
                    "SET #status = :done, event_ids = :ids, completed_at = :now REMOVE lease_until"
                ),
                ConditionExpression="claim_token = :token",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":done": {"S": DONE},
                    ":ids": {"L": [{"S": i} for i in event_ids]},
                    ":now": {"N": str(int(self._clock()))},
                    ":token": {"S": token},
                },
            )
        except ClientError as error:
            if _conditional_check_failed(error):
                return  # our lease ran out and another attempt owns the item now
            raise RetryableError(f"dedupe complete failed: {_code(error)}") from error

    def release(self, key: str) -> None:
        token = self._tokens.pop(key, "")
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                ConditionExpression="claim_token = :token AND #status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":token": {"S": token}, ":pending": {"S": PENDING}},
            )
        except ClientError as error:
            if _conditional_check_failed(error):
                return
            raise RetryableError(f"dedupe release failed: {_code(error)}") from error

    def _get(self, key: str) -> dict[str, Any]:
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True
        )
        return dict(response.get("Item") or {})


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))
