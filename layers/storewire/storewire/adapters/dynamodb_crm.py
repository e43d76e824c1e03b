"""`CrmStore` on DynamoDB: contact aggregates and order links in the CRM table.

Items (key ``pk``, string):

* ``CONTACT#{contact_key(email)}`` (a hash: emails stay out of keys): ``version`` (N, +1 per
  change), ``synced_version`` (N, the version last pushed to the CRM), ``contact_id`` (S,
  HubSpot's id) and ``aggregate`` (S, the `ContactAggregate` as JSON: Money as strings).
* ``ORDER#{order_id}``: ``link`` (S, the `OrderLink` JSON: the contact's email, the deal id
  and the contact the deal is associated with).

A change reads the contact (strongly consistent), computes the new aggregate with the pure
functions of `storewire.domain.crm` and puts it conditioned on the version it read; a
concurrent writer makes the condition fail and the change is re-read and recomputed.
`mark_synced` is an update conditioned on the version pushed, so a push that raced with a
newer change is detected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from storewire.domain.crm import ContactAggregate, OrderLink, contact_key, empty
from storewire.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def contact_pk(email: str) -> str:
    return f"CONTACT#{contact_key(email)}"


def order_pk(order_id: str) -> str:
    return f"ORDER#{order_id}"


def _conflict(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoDBCrmStore:
    """Contact aggregates and order links in the CRM table."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, attempts: int = 8) -> None:
        self._client = client
        self._table = table_name
        self._attempts = attempts

    def _get(self, pk: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": pk}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"CRM table read failed: {error}") from error
        item = response.get("Item")
        return dict(item) if item else None

    def get_contact(self, email: str) -> ContactAggregate | None:
        item = self._get(contact_pk(email))
        if item is None:
            return None
        aggregate = ContactAggregate.model_validate_json(item["aggregate"]["S"])
        return aggregate.model_copy(
            update={
                "version": int(item["version"]["N"]),
                "synced_version": int(item.get("synced_version", {"N": "0"})["N"]),
                "contact_id": item.get("contact_id", {}).get("S") or aggregate.contact_id,
            }
        )

    def update_contact(
        self, email: str, change: Callable[[ContactAggregate], ContactAggregate | None]
    ) -> ContactAggregate:
        for _ in range(self._attempts):
            current = self.get_contact(email)
            base = current if current is not None else empty(email)
            changed = change(base)
            if changed is None:
                if current is not None:
                    return base
                changed = base  # a new contact is stored even when nothing changed
            updated = changed.model_copy(update={"version": base.version + 1})
            if self._put_contact(updated, expected=current.version if current else None):
                return updated
        raise RetryableError("the contact kept changing; retry")

    def _put_contact(self, aggregate: ContactAggregate, *, expected: int | None) -> bool:
        item: dict[str, Any] = {
            "pk": {"S": contact_pk(aggregate.email)},
            "version": {"N": str(aggregate.version)},
            "synced_version": {"N": str(aggregate.synced_version)},
            "aggregate": {"S": aggregate.model_dump_json()},
        }
        if aggregate.contact_id:
            item["contact_id"] = {"S": aggregate.contact_id}
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
            if _conflict(error):
                return False
            raise RetryableError(f"CRM table write failed: {error}") from error
        except BotoCoreError as error:
            raise RetryableError(f"CRM table write failed: {error}") from error
        return True

    def mark_synced(self, email: str, version: int, contact_id: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": contact_pk(email)}},
                UpdateExpression="SET synced_version = :v, contact_id = :c",
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":v": {"N": str(version)}, ":c": {"S": contact_id}},
            )
        except ClientError as error:
            if _conflict(error):
                return False
            raise RetryableError(f"CRM table write failed: {error}") from error
        except BotoCoreError as error:
            raise RetryableError(f"CRM table write failed: {error}") from error
        return True

    def get_order(self, order_id: str) -> OrderLink | None:
        item = self._get(order_pk(order_id))
        if item is None:
            return None
        return OrderLink.model_validate_json(item["link"]["S"])

    def put_order(self, link: OrderLink) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"pk": {"S": order_pk(link.order_id)}, "link": {"S": link.model_dump_json()}},
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"CRM table write failed: {error}") from error
