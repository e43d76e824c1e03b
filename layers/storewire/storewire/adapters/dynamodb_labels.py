"""`LabelStore` on DynamoDB: one item per order's label, every write conditional.

Table: partition key ``pk`` (string), no sort key.

* ``LABEL#{order_id}`` - the label record: ``status``, ``reference``, ``owner`` and
  ``lease_until`` (N, epoch microseconds) of the attempt holding the lease, ``attempts``,
  ``shipment_id``, ``purchase`` (JSON) and ``purchase_shipment_id``, ``failure``, ``steps``
  (string set), ``shipping`` (the order's shipping snapshot, JSON) and
  ``shipping_updated_at`` (N, epoch microseconds of the storefront `updated_at`),
  ``claimed_at``, ``updated_at``; ``tracking_status``, ``tracking_at`` (N, epoch microseconds
  of the tracker's `updated_at`) and ``tracking_event_id``: the last tracking update applied.
* ``SHIPMENT#{shipment_id}`` - ``order_id``: finds the order of a tracking webhook.

The conditions carry the invariants: a claim succeeds only when nothing was bought and no
other attempt holds a live lease; only the lease holder records a shipment; the first
purchase recorded wins (a different one is refused, the stored one returned).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from storewire.domain.shipments import (
    LabelInProgress,
    LabelPurchase,
    LabelRecord,
    LabelStatus,
    LabelStep,
    ShippingOrder,
    TrackingState,
    TrackingStatus,
)
from storewire.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def label_pk(order_id: str) -> str:
    return f"LABEL#{order_id}"


def shipment_pk(shipment_id: str) -> str:
    return f"SHIPMENT#{shipment_id}"


def _micros(at: datetime) -> str:
    return str(int(at.timestamp() * 1_000_000))


def _from_micros(value: str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1_000_000, tz=UTC)


class _Refused(Exception):
    """A conditional write's condition did not hold."""


class DynamoDBLabelStore:
    """Label records in the label table."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # ------------------------------------------------------------------ reads

    def get(self, order_id: str) -> LabelRecord | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": label_pk(order_id)}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"label read failed: {error}") from error
        item = response.get("Item")
        return _record(item) if item else None

    def find_by_shipment(self, shipment_id: str) -> LabelRecord | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": shipment_pk(shipment_id)}}
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"label lookup failed: {error}") from error
        item = response.get("Item")
        return self.get(item["order_id"]["S"]) if item else None

    # ------------------------------------------------------------------ writes

    def save_order(self, order: ShippingOrder) -> bool:
        try:
            self._update(
                order.order_id,
                "SET #shipping = :shipping, #shipping_at = :at, #order_id = :order_id",
                condition="attribute_not_exists(#shipping_at) OR #shipping_at < :at",
                names={"#shipping": "shipping", "#shipping_at": "shipping_updated_at"},
                values={
                    ":shipping": {"S": order.model_dump_json()},
                    ":at": {"N": _micros(order.storefront_updated_at)},
                },
            )
        except _Refused:
            return False
        return True

    def claim(
        self, order_id: str, *, owner: str, reference: str, now: datetime, lease_seconds: int
    ) -> LabelRecord:
        current = self.get(order_id)
        if current is not None and current.purchased:
            return current
        status = LabelStatus.CREATED if current and current.shipment_id else LabelStatus.CLAIMED
        try:
            self._update(
                order_id,
                "SET #status = :status, #owner = :owner, #lease = :lease, #reference = :ref, "
                "#order_id = :order_id, #updated = :now, "
                "#claimed = if_not_exists(#claimed, :now_iso) ADD #attempts :one",
                condition=(
                    "attribute_not_exists(#purchase) AND (attribute_not_exists(#lease) "
                    "OR #lease <= :now_n OR #owner = :owner)"
                ),
                names={
                    "#status": "status",
                    "#owner": "owner",
                    "#lease": "lease_until",
                    "#reference": "reference",
                    "#updated": "updated_at",
                    "#claimed": "claimed_at",
                    "#attempts": "attempts",
                    "#purchase": "purchase",
                },
                values={
                    ":status": {"S": status.value},
                    ":owner": {"S": owner},
                    ":lease": {"N": _micros(now + timedelta(seconds=lease_seconds))},
                    ":ref": {"S": reference},
                    ":now": {"S": now.isoformat()},
                    ":now_iso": {"S": now.isoformat()},
                    ":now_n": {"N": _micros(now)},
                    ":one": {"N": "1"},
                },
            )
        except _Refused:
            latest = self.get(order_id)
            if latest is not None and latest.purchased:
                return latest
            raise LabelInProgress(
                f"another attempt holds the label lease of {order_id} until "
                f"{latest.lease_until.isoformat() if latest and latest.lease_until else '?'}"
            ) from None
        claimed = self.get(order_id)
        assert claimed is not None
        return claimed

    def record_shipment(
        self, order_id: str, *, owner: str, shipment_id: str, now: datetime, lease_seconds: int
    ) -> None:
        try:
            self._update(
                order_id,
                "SET #shipment = :shipment, #status = :created, #lease = :lease, #updated = :now",
                condition="#owner = :owner AND attribute_not_exists(#purchase)",
                names={
                    "#shipment": "shipment_id",
                    "#status": "status",
                    "#lease": "lease_until",
                    "#updated": "updated_at",
                    "#owner": "owner",
                    "#purchase": "purchase",
                },
                values={
                    ":shipment": {"S": shipment_id},
                    ":created": {"S": LabelStatus.CREATED.value},
                    ":lease": {"N": _micros(now + timedelta(seconds=lease_seconds))},
                    ":now": {"S": now.isoformat()},
                    ":owner": {"S": owner},
                },
                create=False,
            )
        except _Refused:
            raise LabelInProgress(
                f"the label lease of {order_id} was lost before recording {shipment_id}"
            ) from None
        self._index(shipment_id, order_id)

    def record_purchase(
        self, order_id: str, purchase: LabelPurchase, *, now: datetime
    ) -> LabelRecord:
        with contextlib.suppress(_Refused):  # refused: another purchase was recorded first
            self._update(
                order_id,
                "SET #purchase = :purchase, #purchase_shipment = :shipment, #shipment = :shipment, "
                "#status = :purchased, #updated = :now REMOVE #owner, #lease, #failure",
                condition="attribute_not_exists(#purchase) OR #purchase_shipment = :shipment",
                names={
                    "#purchase": "purchase",
                    "#purchase_shipment": "purchase_shipment_id",
                    "#shipment": "shipment_id",
                    "#status": "status",
                    "#updated": "updated_at",
                    "#owner": "owner",
                    "#lease": "lease_until",
                    "#failure": "failure",
                },
                values={
                    ":purchase": {"S": purchase.model_dump_json()},
                    ":shipment": {"S": purchase.shipment_id},
                    ":purchased": {"S": LabelStatus.PURCHASED.value},
                    ":now": {"S": now.isoformat()},
                },
            )
        self._index(purchase.shipment_id, order_id)
        stored = self.get(order_id)
        assert stored is not None
        return stored

    def record_failure(self, order_id: str, *, owner: str, reason: str, now: datetime) -> None:
        try:
            self._update(
                order_id,
                "SET #status = :failed, #failure = :reason, #updated = :now REMOVE #owner, #lease",
                condition="#owner = :owner AND attribute_not_exists(#purchase)",
                names={
                    "#status": "status",
                    "#failure": "failure",
                    "#updated": "updated_at",
                    "#owner": "owner",
                    "#lease": "lease_until",
                    "#purchase": "purchase",
                },
                values={
                    ":failed": {"S": LabelStatus.FAILED.value},
                    ":reason": {"S": reason[:1000]},
                    ":now": {"S": now.isoformat()},
                    ":owner": {"S": owner},
                },
                create=False,
            )
        except _Refused:
            return

    def record_tracking(self, order_id: str, state: TrackingState, *, now: datetime) -> bool:
        """Apply a tracking update under `tracking_update_applies`'s rule, as one condition.

        Applies when nothing was applied yet, or the stored status is not terminal
        (`delivered`) and the update is newer (or as new with another status); the same event
        again (a redelivery after a crash) applies too, so its follow-up steps are redone.
        """
        try:
            self._update(
                order_id,
                "SET #status_t = :status, #at = :at, #event = :event, #updated = :now",
                condition=(
                    "attribute_not_exists(#at) OR #event = :event OR (#status_t <> :delivered "
                    "AND (#at < :at OR (#at = :at AND #status_t <> :status)))"
                ),
                names={
                    "#status_t": "tracking_status",
                    "#at": "tracking_at",
                    "#event": "tracking_event_id",
                    "#updated": "updated_at",
                },
                values={
                    ":status": {"S": state.status.value},
                    ":at": {"N": _micros(state.updated_at)},
                    ":event": {"S": state.event_id or ""},
                    ":delivered": {"S": TrackingStatus.DELIVERED.value},
                    ":now": {"S": now.isoformat()},
                },
                create=False,
            )
        except _Refused:
            return False
        return True

    def mark_steps(self, order_id: str, steps: Collection[LabelStep], *, now: datetime) -> None:
        if not steps:
            return
        self._update(
            order_id,
            "ADD #steps :steps SET #updated = :now",
            names={"#steps": "steps", "#updated": "updated_at"},
            values={":steps": {"SS": sorted(set(steps))}, ":now": {"S": now.isoformat()}},
        )

    # ------------------------------------------------------------------ internals

    def _update(
        self,
        order_id: str,
        expression: str,
        *,
        names: dict[str, str],
        values: dict[str, Any],
        condition: str | None = None,
        create: bool = True,
    ) -> None:
        """One UpdateItem on the label item; `_Refused` when `condition` does not hold."""
        names = dict(names)
        values = dict(values)
        if "#order_id" in expression:
            names["#order_id"] = "order_id"
            values[":order_id"] = {"S": order_id}
        if not create:
            condition = f"attribute_exists(pk) AND ({condition})" if condition else None
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": label_pk(order_id)}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            self._client.update_item(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise _Refused from None
            raise RetryableError(f"label write failed: {error}") from error
        except BotoCoreError as error:
            raise RetryableError(f"label write failed: {error}") from error

    def _index(self, shipment_id: str, order_id: str) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"pk": {"S": shipment_pk(shipment_id)}, "order_id": {"S": order_id}},
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"label index write failed: {error}") from error


def _record(item: dict[str, Any]) -> LabelRecord:
    def text(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value and "S" in value else None

    lease = item.get("lease_until")
    purchase = text("purchase")
    shipping = text("shipping")
    status = text("status")
    claimed, updated = text("claimed_at"), text("updated_at")
    tracking_status, tracking_at = text("tracking_status"), item.get("tracking_at")
    return LabelRecord(
        order_id=text("order_id") or item["pk"]["S"].removeprefix("LABEL#"),
        reference=text("reference"),
        status=LabelStatus(status) if status else None,
        owner=text("owner"),
        lease_until=_from_micros(lease["N"]) if lease else None,
        attempts=int(item["attempts"]["N"]) if "attempts" in item else 0,
        shipment_id=text("shipment_id"),
        purchase=LabelPurchase.model_validate_json(purchase) if purchase else None,
        failure=text("failure"),
        steps=frozenset(item["steps"]["SS"]) if "steps" in item else frozenset(),
        order=ShippingOrder.model_validate_json(shipping) if shipping else None,
        tracking=(
            TrackingState(
                status=TrackingStatus(tracking_status),
                updated_at=_from_micros(tracking_at["N"]),
                event_id=text("tracking_event_id") or None,
            )
            if tracking_status and tracking_at
            else None
        ),
        claimed_at=datetime.fromisoformat(claimed) if claimed else None,
        updated_at=datetime.fromisoformat(updated) if updated else None,
    )
