"""`ChannelListingStore` on DynamoDB: the SKU -> channel listing mapping and its push state.

Table `ChannelListingsTable`: partition key ``pk``, sort key ``sk`` (strings).

* ``pk`` ``SKU#{sku}``, ``sk`` ``{channel}#{shop}#{location}`` - one listing: ``sku``,
  ``location`` (ours, or ``*`` for the total), ``channel``, ``shop`` (empty: the event's),
  ``inventory_item_id`` and ``location_id`` (the channel's ids), ``mapped_at``, and the push
  state: ``claimed_version`` (N), ``pushed_version`` (N), ``pushed_quantity`` (N),
  ``pushed_at``.

One Query reads every listing of a SKU. The push state only moves forward:

* a claim sets ``claimed_version = :v`` if no newer version was claimed or pushed;
* a push record sets ``pushed_version = :v, pushed_quantity = :q`` if no newer one is recorded;
* re-mapping a listing (``put_mapping``) changes its ids and keeps the push state, unless the
  channel item or location changed: then the state is reset, the next push reads the channel.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from storewire.domain.channels import ChannelListing
from storewire.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def sku_pk(sku: str) -> str:
    return f"SKU#{sku}"


class DynamoDBChannelListingStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def listings(self, sku: str) -> list[ChannelListing]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        try:
            while True:
                kwargs: dict[str, Any] = {
                    "TableName": self._table,
                    "KeyConditionExpression": "pk = :pk",
                    "ExpressionAttributeValues": {":pk": {"S": sku_pk(sku)}},
                    "ConsistentRead": True,
                }
                if start:
                    kwargs["ExclusiveStartKey"] = start
                page = self._client.query(**kwargs)
                items.extend(page.get("Items", []))
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"channel listings read failed: {error}") from error
        return [_listing(item) for item in items]

    def get(self, sku: str, key: str) -> ChannelListing | None:
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": sku_pk(sku)}, "sk": {"S": key}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"channel listing read failed: {error}") from error
        return _listing(item) if item else None

    def put_mapping(self, listing: ChannelListing) -> ChannelListing:
        current = self.get(listing.sku, listing.key)
        repointed = current is not None and (
            current.inventory_item_id != listing.inventory_item_id
            or current.location_id != listing.location_id
        )
        names = {"#item": "inventory_item_id", "#loc": "location_id", "#ours": "location"}
        values: dict[str, Any] = {
            ":sku": {"S": listing.sku},
            ":ours": {"S": listing.location},
            ":channel": {"S": listing.channel},
            ":shop": {"S": listing.shop},
            ":item": {"S": listing.inventory_item_id},
            ":loc": {"S": listing.location_id},
            ":at": {"S": (listing.mapped_at.isoformat() if listing.mapped_at else "")},
        }
        expression = (
            "SET sku = :sku, #ours = :ours, channel = :channel, shop = :shop, "
            "#item = :item, #loc = :loc, mapped_at = :at"
        )
        if repointed:
            # Another item or location: what we pushed to the old one says nothing here.
            expression += " REMOVE pushed_quantity"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": sku_pk(listing.sku)}, "sk": {"S": listing.key}},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"channel listing write failed: {error}") from error
        stored = self.get(listing.sku, listing.key)
        assert stored is not None
        return stored

    def claim(self, listing: ChannelListing, version: int) -> bool:
        return self._conditional(
            listing,
            "SET claimed_version = :v",
            "(attribute_not_exists(claimed_version) OR claimed_version <= :v) AND "
            "(attribute_not_exists(pushed_version) OR pushed_version < :v)",
            {":v": {"N": str(version)}},
        )

    def record_push(
        self, listing: ChannelListing, version: int, quantity: int, at: datetime
    ) -> bool:
        return self._conditional(
            listing,
            "SET pushed_version = :v, pushed_quantity = :q, pushed_at = :at",
            "attribute_not_exists(pushed_version) OR pushed_version < :v",
            {":v": {"N": str(version)}, ":q": {"N": str(quantity)}, ":at": {"S": at.isoformat()}},
        )

    def _conditional(
        self, listing: ChannelListing, update: str, condition: str, values: dict[str, Any]
    ) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": sku_pk(listing.sku)}, "sk": {"S": listing.key}},
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise RetryableError(f"channel listing write failed: {error}") from error
        except BotoCoreError as error:
            raise RetryableError(f"channel listing write failed: {error}") from error
        return True


def _listing(item: dict[str, Any]) -> ChannelListing:
    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return str(value) if value else None

    def number(name: str) -> int | None:
        value = item.get(name, {}).get("N")
        return None if value is None else int(value)

    return ChannelListing.model_validate(
        {
            "sku": str(item["sku"]["S"]),
            "location": str(item["location"]["S"]),
            "channel": str(item["channel"]["S"]),
            "shop": text("shop") or "",
            "inventory_item_id": str(item["inventory_item_id"]["S"]),
            "location_id": str(item["location_id"]["S"]),
            "mapped_at": text("mapped_at"),
            "claimed_version": number("claimed_version"),
            "pushed_version": number("pushed_version"),
            "pushed_quantity": number("pushed_quantity"),
            "pushed_at": text("pushed_at"),
        }
    )
