"""The DynamoDB order store against moto: the same rules as the in-memory fake, persisted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from stock_support import ORDERS_TABLE, T0, moto_dynamodb, order_id, placed, updated
from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
from storewire.domain.orders import OrderNotFound

pytestmark = pytest.mark.integration

LINES = [("L1", "SKU-A", 2)]


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_dynamodb(monkeypatch) as client:
        yield client


@pytest.fixture
def store(dynamodb: Any) -> DynamoDBOrderStore:
    return DynamoDBOrderStore(dynamodb, ORDERS_TABLE)


def test_an_order_placed_is_stored_once_with_its_totals(
    store: DynamoDBOrderStore, dynamodb: Any
) -> None:
    store.record_placed(placed("1001", LINES))
    store.record_placed(placed("1001", LINES, delivery="again"))

    item = dynamodb.get_item(TableName=ORDERS_TABLE, Key={"pk": {"S": f"ORDER#{order_id('1001')}"}})
    assert item["Item"]["version"]["N"] == "1"
    assert item["Item"]["payment_status"]["S"] == "pending"
    record = store.get(order_id("1001"))
    assert record is not None
    assert record.totals.total.model_dump(mode="json") == {"amount": "20.00", "currency": "USD"}


def test_transitions_are_guarded_and_applied_once(store: DynamoDBOrderStore) -> None:
    store.record_placed(placed("1001", LINES))
    oid = order_id("1001")

    results = [
        store.transition(oid, "payment", "confirmed", event_id="e1", at=T0),
        store.transition(oid, "payment", "confirmed", event_id="e1", at=T0),
        store.transition(oid, "payment", "pending", event_id="e2", at=T0),
        store.transition(oid, "stock", "reserved", event_id="e1", at=T0, details={"lines": []}),
    ]

    assert results == [True, False, False, True]
    record = store.get(oid)
    assert record is not None
    assert (record.payment.status, record.stock.status, record.version) == (
        "confirmed",
        "reserved",
        3,
    )


def test_a_writer_that_lost_the_race_recomputes_on_the_newer_record(
    store: DynamoDBOrderStore, dynamodb: Any
) -> None:
    # Given two writers that both read version 1
    store.record_placed(placed("1001", LINES))
    oid = order_id("1001")
    stale = store.get(oid)
    assert stale is not None
    store.transition(oid, "stock", "reserved", event_id="s1", at=T0)

    # When the stale one writes, its condition fails; through the store it re-reads and applies
    assert store._put(stale.model_copy(update={"version": 2}), expected=1) is False
    assert store.transition(oid, "payment", "confirmed", event_id="p1", at=T0) is True

    # Then both changes are in
    record = store.get(oid)
    assert record is not None
    assert (record.stock.status, record.payment.status) == ("reserved", "confirmed")


def test_a_late_update_does_not_roll_back(store: DynamoDBOrderStore) -> None:
    store.record_placed(placed("1001", LINES))
    later = updated("1001", [("L1", "SKU-A", 5)], updated_at=T0 + timedelta(hours=2), delivery="a")
    earlier = updated(
        "1001", [("L1", "SKU-A", 1)], updated_at=T0 + timedelta(hours=1), delivery="b"
    )

    assert store.record_storefront_update(later) is True
    assert store.record_storefront_update(earlier) is False
    record = store.get(order_id("1001"))
    assert record is not None
    assert record.totals.total.amount == 50


def test_an_order_is_found_by_its_storefront_id(store: DynamoDBOrderStore) -> None:
    store.record_placed(placed("1001", LINES))

    found = store.find("1001")

    assert found is not None
    assert found.order_id == order_id("1001")
    assert store.find("404") is None


def test_a_transition_without_a_record_is_retryable(store: DynamoDBOrderStore) -> None:
    with pytest.raises(OrderNotFound):
        store.transition(order_id("1001"), "stock", "reserved", event_id="e", at=T0)


def _item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's billed item size: attribute names plus values (strings, binaries, numbers)."""
    size = 0
    for name, value in item.items():
        ((kind, raw),) = value.items()
        payload = raw if isinstance(raw, bytes) else str(raw).encode()
        size += len(name.encode()) + (len(payload) if kind in ("S", "B") else 21)
    return size


def test_a_long_lived_order_item_stays_near_one_and_a_half_kb(
    store: DynamoDBOrderStore, dynamodb: Any
) -> None:
    # Given an order that went through payment, stock, shipment and CRM with a long timeline
    store.record_placed(placed("1001", LINES))
    oid = order_id("1001")
    for n in range(12):
        store.append_timeline(
            oid,
            event_id=f"evt_{n:032x}",
            event_type="ShipmentStatusChanged",
            at=T0 + timedelta(minutes=n),
            summary=f"tracking update {n}: in transit through the sorting facility",
        )
    record = store.get(oid)
    assert record is not None
    plain = len(record.model_dump_json().encode())

    # Then the stored item is the compressed record, a fraction of its JSON
    item = dynamodb.get_item(TableName=ORDERS_TABLE, Key={"pk": {"S": f"ORDER#{oid}"}})["Item"]
    assert "record" not in item
    assert isinstance(item["record_z"]["B"], bytes)
    assert plain > 2500
    assert _item_bytes(item) < plain / 2


def test_an_item_written_before_compression_is_read_and_rewritten_compressed(
    store: DynamoDBOrderStore, dynamodb: Any
) -> None:
    # Given an order item in the earlier form: the record as a JSON string
    store.record_placed(placed("1001", LINES))
    oid = order_id("1001")
    key = {"pk": {"S": f"ORDER#{oid}"}}
    record = store.get(oid)
    assert record is not None
    legacy = dynamodb.get_item(TableName=ORDERS_TABLE, Key=key)["Item"]
    del legacy["record_z"]
    legacy["record"] = {"S": record.model_dump_json()}
    dynamodb.put_item(TableName=ORDERS_TABLE, Item=legacy)

    # When it is read and changed
    assert store.get(oid) == record
    assert store.transition(oid, "payment", "confirmed", event_id="p1", at=T0) is True

    # Then the change is in, stored compressed
    item = dynamodb.get_item(TableName=ORDERS_TABLE, Key=key)["Item"]
    assert set(item) >= {"record_z"}
    assert "record" not in item
    changed = store.get(oid)
    assert changed is not None
    assert changed.payment.status == "confirmed"
