"""`StockStore` on DynamoDB: stock rows, locations and the ledger in one table.

Items (``pk``, ``sk`` strings):

=============================  =====================  ==========================================
pk                             sk                     attributes
=============================  =====================  ==========================================
``STOCK#{sku}``                ``LOC#{location}``     on_hand, available, version, updated_at
``LOCATION``                   ``{name}``             priority
``LEDGER#{order_id}``          ``{line}#{kind}[#r]``  kind, sku, pieces [{location, quantity}], ...
``LEDGER#{order_id}``          ``#order``             placed, cancelled, committed, backordered
``LEDGER#manual#{sku}#{loc}``  ``{ref}#set``          on_hand_before, on_hand_after, at
=============================  =====================  ==========================================

Each batch of moves is one TransactWriteItems: the ledger entries (``attribute_not_exists``),
one update per touched stock row (for reservations ``available >= :q``), and the guards of
the kind (see `storewire.domain.inventory`). A cancelled transaction is mapped, item by
item, to `MoveRejected` reasons, so the caller can tell "already applied" from "not enough
stock" without reading any message text. One Query reads an order's whole ledger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from storewire.domain.inventory import (
    DEFAULT_LOCATION,
    LedgerEntry,
    LineAllocation,
    Location,
    MoveKind,
    MoveRejected,
    OrderStockState,
    Piece,
    RejectReason,
    StockBelowReserved,
    StockLevel,
    ledger_partition,
    ledger_sort_key,
    manual_partition,
    row_deltas,
)
from storewire.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

ORDER_STATE_SK = "#order"
LOCATION_PK = "LOCATION"
BATCH_GET_LIMIT = 100


def stock_pk(sku: str) -> str:
    return f"STOCK#{sku}"


def stock_sk(location: str) -> str:
    return f"LOC#{location}"


def _utcnow() -> str:
    return datetime.now(UTC).isoformat()


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


class DynamoDBStockStore:
    """Reads stock and applies ledger moves transactionally in the inventory table."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        default_location: str = DEFAULT_LOCATION,
        clock: Callable[[], str] = _utcnow,
        locations_max_age: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table_name
        self._default = default_location
        self._clock = clock
        self._locations_max_age = locations_max_age
        self._monotonic = monotonic
        self._locations: tuple[float, list[Location]] | None = None
        self.transactions = 0
        """TransactWriteItems calls made (counted for the request budget)."""

    # ------------------------------------------------------------------ locations

    def locations(self) -> list[Location]:
        """Configured locations; the default location is always among them.

        Cached for `locations_max_age` seconds per warm container: priorities change rarely,
        and a stale priority only changes where units are taken from, never how many.
        """
        now = self._monotonic()
        if self._locations is not None and now - self._locations[0] < self._locations_max_age:
            return list(self._locations[1])
        items = self._query(LOCATION_PK)
        found = {
            item["sk"]["S"]: Location(name=item["sk"]["S"], priority=int(item["priority"]["N"]))
            for item in items
        }
        found.setdefault(self._default, Location(name=self._default))
        self._locations = (now, list(found.values()))
        return list(found.values())

    def put_location(self, location: Location) -> None:
        self._locations = None
        self._call(
            self._client.put_item,
            TableName=self._table,
            Item={
                "pk": _s(LOCATION_PK),
                "sk": _s(location.name),
                "priority": _n(location.priority),
            },
        )

    # ------------------------------------------------------------------ reads

    def levels(self, skus: Iterable[str]) -> dict[str, list[StockLevel]]:
        """Every configured location's row of each SKU (strongly consistent)."""
        wanted = sorted(set(skus))
        result: dict[str, list[StockLevel]] = {sku: [] for sku in wanted}
        if not wanted:
            return result
        names = sorted(loc.name for loc in self.locations())
        keys = [{"pk": _s(stock_pk(sku)), "sk": _s(stock_sk(n))} for sku in wanted for n in names]
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            pending: list[Any] = keys[start : start + BATCH_GET_LIMIT]
            while pending:
                response = self._call(
                    self._client.batch_get_item,
                    RequestItems={self._table: {"Keys": pending, "ConsistentRead": True}},
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    level = _level(item)
                    result.setdefault(level.sku, []).append(level)
                pending = list(
                    response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
                )
        for rows in result.values():
            rows.sort(key=lambda r: r.location)
        return result

    def order_state(self, order_id: str) -> OrderStockState:
        """The order's ledger entries and flags: one (paginated) strongly consistent Query."""
        entries: list[LedgerEntry] = []
        flags: dict[str, Any] = {}
        for item in self._query(ledger_partition(order_id)):
            if item["sk"]["S"] == ORDER_STATE_SK:
                flags = item
                continue
            entries.append(_entry(order_id, item))
        backordered = json.loads(flags["backordered"]["S"]) if "backordered" in flags else []
        return OrderStockState(
            order_id=order_id,
            entries=tuple(entries),
            placed=flags.get("placed", {}).get("BOOL", False),
            cancelled=flags.get("cancelled", {}).get("BOOL", False),
            committed=flags.get("committed", {}).get("BOOL", False),
            backordered=tuple(LineAllocation.model_validate(b) for b in backordered),
        )

    # ------------------------------------------------------------------ moves

    def apply(self, order_id: str, kind: MoveKind, entries: Sequence[LedgerEntry]) -> None:
        """Apply moves of one kind as ONE transaction, or raise `MoveRejected` (nothing done).

        The caller keeps the transaction within 100 items (`chunk_moves`).
        """
        if not entries:
            return
        now = self._clock()
        items: list[TransactWriteItemTypeDef] = []
        reasons: list[RejectReason] = []
        if kind in (MoveKind.RESERVE, MoveKind.COMMIT):
            # The order's tombstone: a cancel writes it before releasing anything, so one
            # check stands for "no line of this order was released" (no check per line).
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": {"pk": _s(ledger_partition(order_id)), "sk": _s(ORDER_STATE_SK)},
                        "ConditionExpression": "attribute_not_exists(cancelled)"
                        " OR cancelled = :false",
                        "ExpressionAttributeValues": {":false": {"BOOL": False}},
                    }
                }
            )
            reasons.append(RejectReason(kind="cancelled", subject=order_id))
        for entry in entries:
            items.append(self._put_entry(order_id, entry, now))
            reasons.append(RejectReason(kind="applied", subject=entry.line_id))
            if kind is MoveKind.RELEASE:
                items.append(
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": {
                                "pk": _s(ledger_partition(order_id)),
                                "sk": _s(ledger_sort_key(entry.line_id, MoveKind.COMMIT)),
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
                reasons.append(RejectReason(kind="closed", subject=entry.line_id))
        for (sku, location), (d_on_hand, d_available) in sorted(row_deltas(entries, kind).items()):
            items.append(self._update_row(sku, location, kind, d_on_hand, d_available, now))
            reasons.append(
                RejectReason(
                    kind="insufficient" if kind is MoveKind.RESERVE else "missing",
                    subject=f"{sku}@{location}",
                )
            )
        self._transact(items, reasons)

    def mark(
        self,
        order_id: str,
        *,
        placed: bool = False,
        cancelled: bool = False,
        committed: bool = False,
        backordered: Sequence[LineAllocation] = (),
    ) -> bool:
        """Set flags on the order's ledger state; False when `placed` was already set."""
        values: dict[str, Any] = {":true": {"BOOL": True}, ":now": _s(self._clock())}
        sets = ["updated_at = :now"]
        for flag, on in (("placed", placed), ("cancelled", cancelled), ("committed", committed)):
            if on:
                sets.append(f"{flag} = :true")
        kwargs: dict[str, Any] = {}
        if placed:
            sets.append("backordered = :backordered")
            values[":backordered"] = _s(
                json.dumps([b.model_dump(mode="json") for b in backordered], sort_keys=True)
            )
            kwargs["ConditionExpression"] = "attribute_not_exists(placed)"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(ledger_partition(order_id)), "sk": _s(ORDER_STATE_SK)},
                UpdateExpression="SET " + ", ".join(sets),
                ExpressionAttributeValues=values,
                **kwargs,
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise RetryableError(f"inventory update failed: {_code(error)}") from error
        except BotoCoreError as error:
            raise RetryableError(f"inventory update failed: {error}") from error
        return True

    def set_on_hand(
        self, sku: str, location: str, on_hand: int, *, ref: str, attempts: int = 5
    ) -> StockLevel:
        """Count: `on_hand = N`, `available += N - old on_hand`, once per `ref`.

        Guarded by the row's version (a reservation in between makes us re-read), and
        refused with `StockBelowReserved` if N is less than what is reserved there.
        """
        if on_hand < 0:
            raise StockBelowReserved(f"on_hand must be >= 0, not {on_hand}")
        for _ in range(attempts):
            current = self.levels([sku]).get(sku, [])
            row = next((r for r in current if r.location == location), None)
            old_on_hand = row.on_hand if row else 0
            available = (row.available if row else 0) + on_hand - old_on_hand
            if available < 0:
                reserved = row.reserved if row else 0
                raise StockBelowReserved(
                    f"{sku}@{location}: on_hand {on_hand} is below the {reserved} reserved"
                )
            version = row.version if row else 0
            now = self._clock()
            condition = "version = :v" if row else "attribute_not_exists(pk)"
            values: dict[str, Any] = {
                ":n": _n(on_hand),
                ":a": _n(available),
                ":next": _n(version + 1),
                ":now": _s(now),
                ":sku": _s(sku),
                ":loc": _s(location),
            }
            if row:
                values[":v"] = _n(version)
            items: list[TransactWriteItemTypeDef] = [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"pk": _s(stock_pk(sku)), "sk": _s(stock_sk(location))},
                        "UpdateExpression": "SET on_hand = :n, available = :a, version = :next,"
                        " updated_at = :now, sku = :sku, #loc = :loc",
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": {"#loc": "location"},
                        "ExpressionAttributeValues": values,
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            "pk": _s(manual_partition(sku, location)),
                            "sk": _s(ledger_sort_key(ref, MoveKind.SET)),
                            "kind": _s(MoveKind.SET),
                            "sku": _s(sku),
                            "location": _s(location),
                            "on_hand_before": _n(old_on_hand),
                            "on_hand_after": _n(on_hand),
                            "at": _s(now),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
            try:
                self._transact(
                    items,
                    [
                        RejectReason(kind="stale", subject=f"{sku}@{location}"),
                        RejectReason(kind="applied", subject=ref),
                    ],
                )
            except MoveRejected as rejected:
                if rejected.has("applied"):
                    break
                continue
            return StockLevel(
                sku=sku,
                location=location,
                on_hand=on_hand,
                available=available,
                version=version + 1,
            )
        else:
            raise RetryableError(f"{sku}@{location} kept changing; set it again")
        rows = self.levels([sku]).get(sku, [])
        return next(r for r in rows if r.location == location)

    # ------------------------------------------------------------------ internals

    def _put_entry(self, order_id: str, entry: LedgerEntry, now: str) -> TransactWriteItemTypeDef:
        item: dict[str, Any] = {
            "pk": _s(ledger_partition(order_id)),
            "sk": _s(entry.sort_key),
            "kind": _s(entry.kind),
            "line_id": _s(entry.line_id),
            "sku": _s(entry.sku),
            "pieces": {
                "L": [
                    {"M": {"location": _s(p.location), "quantity": _n(p.quantity)}}
                    for p in entry.pieces
                ]
            },
            "quantity": _n(entry.quantity),
            "requested": _n(entry.requested),
            "at": _s(now),
        }
        if entry.ref:
            item["ref"] = _s(entry.ref)
        if entry.event_id:
            item["event_id"] = _s(entry.event_id)
        return {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _update_row(
        self, sku: str, location: str, kind: MoveKind, d_on_hand: int, d_available: int, now: str
    ) -> TransactWriteItemTypeDef:
        values: dict[str, Any] = {":one": _n(1), ":now": _s(now)}
        sets = ["version = version + :one", "updated_at = :now"]
        if kind is MoveKind.RESERVE:
            condition = "available >= :take"
            values[":take"] = _n(-d_available)
        else:
            condition = "attribute_exists(pk)"
        if d_available:
            sets.append("available = available + :da")
            values[":da"] = _n(d_available)
        if d_on_hand:
            sets.append("on_hand = on_hand + :dh")
            values[":dh"] = _n(d_on_hand)
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": _s(stock_pk(sku)), "sk": _s(stock_sk(location))},
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            }
        }

    def _transact(
        self, items: Sequence[TransactWriteItemTypeDef], reasons: Sequence[RejectReason]
    ) -> None:
        self.transactions += 1
        try:
            self._client.transact_write_items(TransactItems=list(items))
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise RetryableError(f"inventory transaction failed: {_code(error)}") from error
            codes = [
                str(r.get("Code", "None")) for r in error.response.get("CancellationReasons", [])
            ]
            found = [
                reason
                for reason, code in zip(reasons, codes, strict=False)
                if code == "ConditionalCheckFailed"
            ]
            if not found:
                found = [RejectReason(kind="conflict", subject=",".join(sorted(set(codes))))]
            raise MoveRejected(found) from error
        except BotoCoreError as error:
            raise RetryableError(f"inventory transaction failed: {error}") from error

    def _query(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: Mapping[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": _s(pk)},
                "ConsistentRead": True,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._call(self._client.query, **kwargs)
            items.extend(dict(i) for i in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                return items

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return operation(**kwargs)
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"inventory request failed: {error}") from error


def _level(item: Mapping[str, Any]) -> StockLevel:
    return StockLevel(
        sku=item["pk"]["S"].removeprefix("STOCK#"),
        location=item["sk"]["S"].removeprefix("LOC#"),
        on_hand=int(item["on_hand"]["N"]),
        available=int(item["available"]["N"]),
        version=int(item.get("version", {}).get("N", "0")),
    )


def _entry(order_id: str, item: Mapping[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        order_id=order_id,
        line_id=item["line_id"]["S"],
        kind=MoveKind(item["kind"]["S"]),
        sku=item["sku"]["S"],
        pieces=tuple(
            Piece(location=p["M"]["location"]["S"], quantity=int(p["M"]["quantity"]["N"]))
            for p in item["pieces"]["L"]
        ),
        ref=item.get("ref", {}).get("S", ""),
        requested=int(item.get("requested", {}).get("N", "0")),
        event_id=item.get("event_id", {}).get("S", ""),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))
