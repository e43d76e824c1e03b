"""The DynamoDB stock store and the stock service against moto (in-process, sequential).

Every move is proved idempotent by its ledger entry, the oversell guard by the transaction's
condition, and large orders by a crash between two chunks followed by a retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stock_support import (
    INVENTORY_TABLE,
    CrashingStockStore,
    cancelled,
    ledger_items,
    moto_dynamodb,
    order_id,
    payment,
    placed,
    refund,
    seed,
    stock_deps,
)
from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
from storewire.domain.inventory import (
    LedgerEntry,
    Location,
    MoveKind,
    MoveRejected,
    Piece,
    StockBelowReserved,
)
from storewire.errors import PrerequisiteMissing
from storewire.stock import handle_event

pytestmark = pytest.mark.integration


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_dynamodb(monkeypatch) as client:
        yield client


@pytest.fixture
def store(dynamodb: Any) -> DynamoDBStockStore:
    return DynamoDBStockStore(dynamodb, INVENTORY_TABLE)


def level(store: DynamoDBStockStore, sku: str, location: str = "default") -> tuple[int, int]:
    rows = store.levels([sku])[sku]
    row = next(r for r in rows if r.location == location)
    return row.on_hand, row.available


def reserve_entry(line: str, sku: str, qty: int, location: str = "default") -> LedgerEntry:
    return LedgerEntry(
        order_id="o-1",
        line_id=line,
        kind=MoveKind.RESERVE,
        sku=sku,
        pieces=(Piece(location=location, quantity=qty),),
        requested=qty,
    )


# ------------------------------------------------------------------ the adapter


def test_a_count_sets_on_hand_and_moves_available_by_the_difference(
    store: DynamoDBStockStore,
) -> None:
    store.set_on_hand("SKU-A", "default", 10, ref="count-1")
    store.apply("o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 4)])

    after = store.set_on_hand("SKU-A", "default", 7, ref="count-2")

    assert (after.on_hand, after.available, after.reserved) == (7, 3, 4)
    assert level(store, "SKU-A") == (7, 3)


def test_a_count_is_applied_once_per_ref(store: DynamoDBStockStore) -> None:
    store.set_on_hand("SKU-A", "default", 10, ref="count-1")
    store.apply("o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 4)])

    again = store.set_on_hand("SKU-A", "default", 10, ref="count-1")

    assert (again.on_hand, again.available) == (10, 6)


def test_a_count_below_what_is_reserved_is_refused(store: DynamoDBStockStore) -> None:
    store.set_on_hand("SKU-A", "default", 10, ref="count-1")
    store.apply("o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 4)])

    with pytest.raises(StockBelowReserved):
        store.set_on_hand("SKU-A", "default", 3, ref="count-2")
    assert level(store, "SKU-A") == (10, 6)


def test_a_reservation_and_its_ledger_entry_are_one_transaction(
    store: DynamoDBStockStore, dynamodb: Any
) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="count")

    store.apply("o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 2)])

    assert level(store, "SKU-A") == (5, 3)
    (entry,) = ledger_items(dynamodb, "reserve")
    assert (entry["pk"]["S"], entry["sk"]["S"]) == ("LEDGER#o-1", "1#reserve")
    assert store.transactions == 2  # the count and the reservation


def test_the_same_reservation_twice_is_rejected_as_applied_and_changes_nothing(
    store: DynamoDBStockStore, dynamodb: Any
) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="count")
    store.apply("o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 2)])

    with pytest.raises(MoveRejected) as rejected:
        store.apply("o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 2)])

    assert rejected.value.has("applied")
    assert level(store, "SKU-A") == (5, 3)
    assert len(ledger_items(dynamodb)) == 1


def test_a_reservation_beyond_available_is_rejected_and_changes_nothing(
    store: DynamoDBStockStore, dynamodb: Any
) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="count")
    store.set_on_hand("SKU-B", "default", 5, ref="count")

    with pytest.raises(MoveRejected) as rejected:
        store.apply(
            "o-1",
            MoveKind.RESERVE,
            [reserve_entry("1", "SKU-B", 1), reserve_entry("2", "SKU-A", 6)],
        )

    assert [r.kind for r in rejected.value.reasons] == ["insufficient"]
    assert rejected.value.reasons[0].subject == "SKU-A@default"
    assert level(store, "SKU-A") == (5, 5)
    assert level(store, "SKU-B") == (5, 5)
    assert ledger_items(dynamodb) == []


def test_two_lines_of_one_sku_share_one_row_update(store: DynamoDBStockStore) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="count")

    store.apply(
        "o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 2), reserve_entry("2", "SKU-A", 3)]
    )

    assert level(store, "SKU-A") == (5, 0)


def test_a_cancelled_order_cannot_reserve(store: DynamoDBStockStore) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="count")
    store.mark("o-1", cancelled=True)

    with pytest.raises(MoveRejected) as rejected:
        store.apply("o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 2)])

    assert rejected.value.has("cancelled")
    assert level(store, "SKU-A") == (5, 5)


def test_commit_and_release_of_a_line_exclude_each_other(store: DynamoDBStockStore) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="count")
    store.apply("o-1", MoveKind.RESERVE, [reserve_entry("1", "SKU-A", 2)])
    commit = reserve_entry("1", "SKU-A", 2).model_copy(update={"kind": MoveKind.COMMIT})
    release = reserve_entry("1", "SKU-A", 2).model_copy(update={"kind": MoveKind.RELEASE})

    store.apply("o-1", MoveKind.COMMIT, [commit])
    with pytest.raises(MoveRejected) as rejected:
        store.apply("o-1", MoveKind.RELEASE, [release])

    assert rejected.value.has("closed")
    assert level(store, "SKU-A") == (3, 3)
    assert [e.kind for e in store.order_state("o-1").entries] == ["commit", "reserve"]


def test_a_commit_after_the_tombstone_is_refused_as_one_check(store: DynamoDBStockStore) -> None:
    # Given an order with two reserved lines, then cancelled (the tombstone, nothing released)
    store.set_on_hand("SKU-A", "default", 5, ref="count")
    lines = [reserve_entry("1", "SKU-A", 1), reserve_entry("2", "SKU-A", 2)]
    store.apply("o-1", MoveKind.RESERVE, lines)
    store.mark("o-1", cancelled=True)

    # When the payment's commit comes
    commits = [e.model_copy(update={"kind": MoveKind.COMMIT}) for e in lines]
    with pytest.raises(MoveRejected) as rejected:
        store.apply("o-1", MoveKind.COMMIT, commits)

    # Then nothing is committed: the release still finds both lines open
    assert [r.kind for r in rejected.value.reasons] == ["cancelled"]
    assert level(store, "SKU-A") == (5, 2)
    assert [e.line_id for e in store.order_state("o-1").outstanding()] == ["1", "2"]


def test_the_default_location_always_exists_and_others_can_be_added(
    store: DynamoDBStockStore,
) -> None:
    store.put_location(Location(name="east", priority=1))

    names = {loc.name: loc.priority for loc in store.locations()}

    assert names == {"east": 1, "default": 100}


# ------------------------------------------------------------------ the service


def test_an_order_is_reserved_by_location_priority_and_split(
    store: DynamoDBStockStore,
) -> None:
    store.put_location(Location(name="east", priority=1))
    store.set_on_hand("SKU-A", "east", 2, ref="c1")
    store.set_on_hand("SKU-A", "default", 5, ref="c2")
    deps, publisher = stock_deps(store)

    result = handle_event(placed("1001", [("L1", "SKU-A", 4)]), deps)

    assert result.outcome == "reserved"
    assert level(store, "SKU-A", "east") == (2, 0)
    assert level(store, "SKU-A", "default") == (5, 3)
    (reserved,) = publisher.details("StockReserved")
    assert reserved["data"]["lines"][0]["pieces"] == [
        {"location": "east", "quantity": 2},
        {"location": "default", "quantity": 2},
    ]
    (changed,) = publisher.details("StockLevelChanged")
    assert changed["data"]["available"] == 3
    assert {loc["location"]: loc["available"] for loc in changed["data"]["locations"]} == {
        "east": 0,
        "default": 3,
    }


def test_a_duplicate_order_placed_reserves_nothing_more_and_repeats_its_event_ids(
    store: DynamoDBStockStore, dynamodb: Any
) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="c")
    deps, _ = stock_deps(store)
    first = handle_event(placed("1001", [("L1", "SKU-A", 2)], delivery="d-1"), deps)

    second = handle_event(placed("1001", [("L1", "SKU-A", 2)], delivery="d-2"), deps)

    assert level(store, "SKU-A") == (5, 3)
    assert len(ledger_items(dynamodb, "reserve")) == 1
    assert [e.event_id for e in first.events][:1] == [e.event_id for e in second.events][:1]


def test_what_no_location_has_is_backordered_with_the_short_lines(
    store: DynamoDBStockStore,
) -> None:
    store.set_on_hand("SKU-A", "default", 1, ref="c")
    deps, publisher = stock_deps(store)

    result = handle_event(placed("1001", [("L1", "SKU-A", 3), ("L2", "SKU-NONE", 1)]), deps)

    assert result.outcome == "partially_reserved"
    (backordered,) = publisher.details("OrderBackordered")
    short = {line["line_id"]: line["short"] for line in backordered["data"]["short_lines"]}
    assert short == {"L1": 2, "L2": 1}
    assert level(store, "SKU-A") == (1, 0)


def test_a_150_line_order_survives_a_crash_between_chunks_exactly_once(
    store: DynamoDBStockStore, dynamodb: Any
) -> None:
    # Given 150 SKUs with 3 units each, and a Lambda that dies after the second transaction
    lines = [(f"L{n:03d}", f"SKU-{n:03d}", 2) for n in range(150)]
    for _, sku, _ in lines:
        seed(dynamodb, sku, 3)
    crashing = CrashingStockStore(store, crash_after=2)
    deps, publisher = stock_deps(crashing)
    event = placed("9150", lines)
    before = store.transactions

    # When the first attempt crashes between chunks, and SQS redelivers the message
    with pytest.raises(RuntimeError):
        handle_event(event, deps)
    partial = len(ledger_items(dynamodb, "reserve"))
    result = handle_event(event, deps)

    # Then some lines were reserved before the crash, and after the retry every line is
    # reserved exactly once: 2 units out of every SKU, never 4
    assert 0 < partial < 150
    assert result.outcome == "reserved"
    assert len(ledger_items(dynamodb, "reserve")) == 150
    levels = store.levels([sku for _, sku, _ in lines])
    assert {(r.on_hand, r.available) for rows in levels.values() for r in rows} == {(3, 1)}
    assert len(publisher.unique("StockReserved")) == 1
    # 150 lines x (1 entry + 1 row) + 1 tombstone check = 4 transactions of <= 100 items
    assert store.transactions - before == 4
    assert crashing.applied == 4


def test_payment_before_the_reservation_is_retried_then_commits_once(
    store: DynamoDBStockStore,
) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="c")
    deps, publisher = stock_deps(store)

    with pytest.raises(PrerequisiteMissing):
        handle_event(payment("1001"), deps)
    handle_event(placed("1001", [("L1", "SKU-A", 2)]), deps)
    handle_event(payment("1001"), deps)
    handle_event(payment("1001"), deps)

    assert level(store, "SKU-A") == (3, 3)
    assert len(publisher.unique("StockCommitted")) == 1


def test_a_cancel_before_the_order_makes_the_late_order_reserve_nothing(
    store: DynamoDBStockStore, dynamodb: Any
) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="c")
    deps, publisher = stock_deps(store)

    handle_event(cancelled("1001", [("L1", "SKU-A", 2)]), deps)
    result = handle_event(placed("1001", [("L1", "SKU-A", 2)]), deps)

    assert result.outcome == "cancelled"
    assert level(store, "SKU-A") == (5, 5)
    assert ledger_items(dynamodb, "reserve") == []
    assert publisher.details("StockReserved") == []


def test_a_cancel_releases_the_reservation_once(store: DynamoDBStockStore) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="c")
    deps, publisher = stock_deps(store)
    handle_event(placed("1001", [("L1", "SKU-A", 2)]), deps)

    handle_event(cancelled("1001", [("L1", "SKU-A", 2)]), deps)
    handle_event(cancelled("1001", [("L1", "SKU-A", 2)], delivery="again"), deps)
    handle_event(payment("1001"), deps)

    assert level(store, "SKU-A") == (5, 5)
    assert len(publisher.unique("StockReleased")) == 1
    assert publisher.details("StockCommitted") == []


def test_a_refund_with_restock_returns_committed_units_once(store: DynamoDBStockStore) -> None:
    store.set_on_hand("SKU-A", "default", 5, ref="c")
    deps, publisher = stock_deps(store)
    handle_event(placed("1001", [("L1", "SKU-A", 2)]), deps)
    handle_event(payment("1001"), deps)

    handle_event(refund("1001", "r-1", [("L1", "SKU-A", 1, True)]), deps)
    handle_event(refund("1001", "r-1", [("L1", "SKU-A", 1, True)]), deps)
    handle_event(refund("1001", "r-2", [("L1", "SKU-A", 5, True)]), deps)

    # committed 2; restocked 1 then (capped at what was committed) 1 more
    assert level(store, "SKU-A") == (5, 5)
    assert len(publisher.unique("StockRestocked")) == 2


def test_order_id_helper_is_canonical() -> None:
    assert order_id("1001") == "shopify:storewire-demo.myshopify.com:1001"
