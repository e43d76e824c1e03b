"""The stock service on in-memory fakes: outcomes, events and the order record's stock state."""

from __future__ import annotations

from typing import Any

import pytest
from fakes_orders import InMemoryOrderStore
from fakes_stock import InMemoryStockStore
from stock_samples import RecordingPublisher, cancelled, order_id, payment, placed, refund
from storewire.domain.inventory import Location, MoveKind
from storewire.errors import PrerequisiteMissing, PublishFailed
from storewire.stock import StockDeps, handle_event


class World:
    def __init__(self, **stock: int) -> None:
        self.store = InMemoryStockStore()
        self.orders = InMemoryOrderStore()
        self.publisher = RecordingPublisher()
        for sku, on_hand in stock.items():
            self.store.set_on_hand(sku, "default", on_hand, ref="seed")
        self.deps = StockDeps(
            store=self.store, publisher=self.publisher, orders=self.orders, sleep=lambda _: None
        )

    def handle(self, event: Any) -> str:
        return handle_event(event, self.deps).outcome

    def available(self, sku: str, location: str = "default") -> int:
        return self.store.rows[(sku, location)].available

    def stock_status(self, external: str) -> str:
        record = self.orders.get(order_id(external))
        assert record is not None
        return record.stock.status


def test_an_order_with_stock_is_reserved_and_the_record_says_so() -> None:
    world = World(A=5)

    outcome = world.handle(placed("1", [("L1", "A", 2)]))

    assert outcome == "reserved"
    assert world.available("A") == 3
    assert world.stock_status("1") == "reserved"
    record = world.orders.get(order_id("1"))
    assert record is not None
    assert record.view()["stock"]["lines"][0]["reserved"] == 2
    assert [d["event_type"] for d in world.publisher.details()] == [
        "StockReserved",
        "StockLevelChanged",
    ]


def test_an_order_without_stock_is_backordered() -> None:
    world = World(A=0)

    outcome = world.handle(placed("1", [("L1", "A", 2)]))

    assert outcome == "backordered"
    assert world.stock_status("1") == "backordered"
    (event,) = world.publisher.details("OrderBackordered")
    assert event["data"]["short_lines"][0]["short"] == 2
    assert event["source"] == "stock"


def test_the_full_story_reserve_commit_refund_restock() -> None:
    world = World(A=5)

    world.handle(placed("1", [("L1", "A", 2)]))
    world.handle(payment("1"))
    world.handle(refund("1", "r1", [("L1", "A", 2, True)]))

    row = world.store.rows[("A", "default")]
    assert (row.on_hand, row.available) == (5, 5)
    assert world.stock_status("1") == "restocked"
    assert [
        d["event_type"] for d in world.publisher.details() if d["event_type"] != "StockLevelChanged"
    ] == [
        "StockReserved",
        "StockCommitted",
        "StockRestocked",
    ]


def test_a_payment_failure_releases_the_reservation() -> None:
    world = World(A=5)
    world.handle(placed("1", [("L1", "A", 2)]))

    world.handle(payment("1", "PaymentFailed"))

    assert world.available("A") == 5
    assert world.stock_status("1") == "released"


def test_a_payment_before_the_order_is_retried_not_misapplied() -> None:
    world = World(A=5)

    with pytest.raises(PrerequisiteMissing) as early:
        world.handle(payment("1"))

    assert early.value.status_code == 503
    assert world.available("A") == 5


def test_a_cancel_before_the_order_leaves_a_tombstone_and_the_record_released() -> None:
    world = World(A=5)

    world.handle(cancelled("1", [("L1", "A", 2)]))
    outcome = world.handle(placed("1", [("L1", "A", 2)]))

    assert outcome == "cancelled"
    assert world.available("A") == 5
    assert world.stock_status("1") == "released"


def test_every_event_twice_has_one_effect_and_the_same_event_ids() -> None:
    world = World(A=5)
    story = [placed("1", [("L1", "A", 2)]), payment("1"), refund("1", "r1", [("L1", "A", 1, True)])]

    for event in story:
        world.handle(event)
    first = {
        d["event_id"] for d in world.publisher.details() if d["event_type"] != "StockLevelChanged"
    }
    for event in story:
        world.handle(event)
    again = {
        d["event_id"] for d in world.publisher.details() if d["event_type"] != "StockLevelChanged"
    }

    assert first == again
    row = world.store.rows[("A", "default")]
    assert (row.on_hand, row.available) == (4, 4)
    assert len(world.store.ledger[order_id("1")]) == 3


def test_a_bus_failure_fails_the_record_and_the_redelivery_publishes_once_more() -> None:
    world = World(A=5)
    world.publisher.fail_next = 1
    event = placed("1", [("L1", "A", 2)])

    with pytest.raises(PublishFailed):
        world.handle(event)
    world.handle(event)

    assert world.available("A") == 3
    assert len(world.publisher.unique("StockReserved")) == 1


def test_a_line_is_split_across_locations_by_priority() -> None:
    world = World()
    world.store.put_location(Location(name="east", priority=1))
    world.store.set_on_hand("A", "east", 1, ref="seed")
    world.store.set_on_hand("A", "default", 1, ref="seed")

    world.handle(placed("1", [("L1", "A", 2)]))

    (entry,) = world.store.ledger[order_id("1")].values()
    assert entry.kind is MoveKind.RESERVE
    assert [(p.location, p.quantity) for p in entry.pieces] == [("east", 1), ("default", 1)]


def test_stock_level_changed_carries_a_growing_version() -> None:
    world = World(A=5)

    world.handle(placed("1", [("L1", "A", 1)]))
    world.handle(placed("2", [("L1", "A", 1)]))

    versions = [d["data"]["version"] for d in world.publisher.details("StockLevelChanged")]
    availables = [d["data"]["available"] for d in world.publisher.details("StockLevelChanged")]
    assert versions == sorted(versions)
    assert len(set(versions)) == 2
    assert availables == [4, 3]


def test_a_commit_publishes_no_level_and_the_next_level_carries_its_on_hand() -> None:
    # A commit leaves `available` as it was (what channels show): no StockLevelChanged for it
    world = World(A=5)
    world.handle(placed("1", [("L1", "A", 2)]))
    world.handle(payment("1"))

    assert [d["event_type"] for d in world.publisher.details()] == [
        "StockReserved",
        "StockLevelChanged",
        "StockCommitted",
    ]

    # The next move's level has the committed on_hand, under a version past the commit's
    world.handle(placed("2", [("L1", "A", 1)]))
    first, second = world.publisher.details("StockLevelChanged")
    assert (second["data"]["on_hand"], second["data"]["available"]) == (3, 2)
    assert second["data"]["version"] > first["data"]["version"] + 1


def test_a_cancel_landing_between_the_commit_read_and_its_transaction_wins() -> None:
    # Given a reserved order whose cancel writes its tombstone just after the commit read state
    world = World(A=5)
    world.handle(placed("1", [("L1", "A", 2)]))
    read = world.store.order_state

    def state_then_cancel(order: str) -> Any:
        state = read(order)
        world.store.mark(order, cancelled=True)
        return state

    world.store.order_state = state_then_cancel  # type: ignore[method-assign]

    # When the payment is confirmed
    outcome = world.handle(payment("1"))
    world.store.order_state = read  # type: ignore[method-assign]

    # Then nothing is committed and the cancel releases the reservation
    assert outcome == "cancelled"
    assert world.store.ledger[order_id("1")].keys() == {"L1#reserve"}
    assert world.handle(cancelled("1", [("L1", "A", 2)])) == "released"
    assert (world.store.rows[("A", "default")].on_hand, world.available("A")) == (5, 5)


def test_events_stock_does_not_handle_are_ignored() -> None:
    world = World(A=5)

    event = payment("1", "OrderUpdated")

    assert world.handle(event) == "ignored"
