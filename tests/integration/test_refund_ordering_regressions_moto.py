"""Regressions against moto: refunds and commits out of order, on the real DynamoDB adapters.

The unit tests (tests/unit/test_refund_ordering_regressions.py) pin the rules on the
in-memory fakes; these prove the same with the DynamoDB stock and order stores, whose
conditions and optimistic versions are the ones production runs on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from stock_support import (
    INVENTORY_TABLE,
    ORDERS_TABLE,
    CrashingStockStore,
    ledger_items,
    moto_dynamodb,
    order_id,
    payment,
    placed,
    refund,
    stock_deps,
)
from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
from storewire.domain.inventory import LineAllocation
from storewire.errors import PrerequisiteMissing
from storewire.stock import StockDeps, handle_event

pytestmark = pytest.mark.integration


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_dynamodb(monkeypatch) as client:
        yield client


@pytest.fixture
def orders(dynamodb: Any) -> DynamoDBOrderStore:
    return DynamoDBOrderStore(dynamodb, ORDERS_TABLE)


def level(store: DynamoDBStockStore, sku: str) -> tuple[int, int]:
    (row,) = store.levels([sku])[sku]
    return row.on_hand, row.available


def stock_status(orders: DynamoDBOrderStore, external: str) -> str:
    record = orders.get(order_id(external))
    assert record is not None
    return record.stock.status


def ledger_keys(client: Any) -> list[str]:
    return sorted(item["sk"]["S"] for item in ledger_items(client))


def test_a_refund_with_restock_before_the_commit_is_retried_and_restocks(
    dynamodb: Any, orders: DynamoDBOrderStore
) -> None:
    store = DynamoDBStockStore(dynamodb, INVENTORY_TABLE)
    store.set_on_hand("SKU-A", "default", 5, ref="seed")
    deps, publisher = stock_deps(store, orders=orders)
    handle_event(placed("1001", [("L1", "SKU-A", 2)]), deps)
    early = refund("1001", "r-1", [("L1", "SKU-A", 2, True)])

    with pytest.raises(PrerequisiteMissing):
        handle_event(early, deps)
    handle_event(payment("1001"), deps)
    handle_event(early, deps)  # SQS redelivers it

    assert level(store, "SKU-A") == (5, 5)
    assert ledger_keys(dynamodb) == ["L1#commit", "L1#reserve", "L1#restock#r-1"]
    assert stock_status(orders, "1001") == "restocked"
    assert len(publisher.unique("StockRestocked")) == 1


def test_a_partly_committed_order_restocks_only_once_every_named_line_is_committed(
    dynamodb: Any, orders: DynamoDBOrderStore
) -> None:
    inner = DynamoDBStockStore(dynamodb, INVENTORY_TABLE)
    inner.set_on_hand("SKU-A", "default", 5, ref="seed")
    inner.set_on_hand("SKU-B", "default", 5, ref="seed")
    # 3 items a transaction: one line per chunk; transactions 0-1 reserve, 2 commits L1,
    # the 4th (L2's commit) dies.
    store = CrashingStockStore(inner, crash_after=3)
    deps, _ = stock_deps(store, orders=orders, max_transaction_items=3)
    handle_event(placed("1001", [("L1", "SKU-A", 2), ("L2", "SKU-B", 1)]), deps)
    with pytest.raises(RuntimeError):
        handle_event(payment("1001"), deps)
    both = refund("1001", "r-1", [("L1", "SKU-A", 2, True), ("L2", "SKU-B", 1, True)])

    with pytest.raises(PrerequisiteMissing, match="L2"):
        handle_event(both, deps)
    assert level(inner, "SKU-A") == (3, 3)  # L1 shipped, not restocked yet
    handle_event(payment("1001"), deps)  # the redelivery commits L2
    handle_event(both, deps)

    assert level(inner, "SKU-A") == (5, 5)
    assert level(inner, "SKU-B") == (5, 5)
    assert stock_status(orders, "1001") == "restocked"


class InterleavingStore(DynamoDBStockStore):
    """The real adapter; right after the first `mark(placed=True)` it runs `hook` (another
    consumer's event landing between the reservation's ledger and its record update)."""

    hook: Callable[[], object] | None = None

    def mark(
        self,
        order_id: str,
        *,
        placed: bool = False,
        cancelled: bool = False,
        committed: bool = False,
        backordered: Sequence[LineAllocation] = (),
    ) -> bool:
        done = super().mark(
            order_id,
            placed=placed,
            cancelled=cancelled,
            committed=committed,
            backordered=backordered,
        )
        if placed and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return done


def test_a_commit_between_the_reservation_and_its_record_update_is_not_lost(
    dynamodb: Any, orders: DynamoDBOrderStore
) -> None:
    store = InterleavingStore(dynamodb, INVENTORY_TABLE)
    store.set_on_hand("SKU-A", "default", 5, ref="seed")
    deps, publisher = stock_deps(store, orders=orders)
    commit_deps: StockDeps = deps
    store.hook = lambda: handle_event(payment("1001"), commit_deps)

    result = handle_event(placed("1001", [("L1", "SKU-A", 2)]), deps)

    assert result.outcome == "reserved"
    assert ledger_keys(dynamodb) == ["L1#commit", "L1#reserve"]
    assert level(store, "SKU-A") == (3, 3)
    assert stock_status(orders, "1001") == "committed"
    item = dynamodb.get_item(TableName=ORDERS_TABLE, Key={"pk": {"S": f"ORDER#{order_id('1001')}"}})
    assert item["Item"]["stock_status"]["S"] == "committed"
    assert len(publisher.unique("StockCommitted")) == 1
