"""Random interleavings of place / pay / fail / cancel / refund / duplicate / redeliver.

A hypothesis `RuleBasedStateMachine` drives the real stock service with the real DynamoDB
adapters (moto, in-process, fresh tables per example) and checks, after every step, that
the stock rows, the ledger and the order records agree with a small reference model that
knows nothing of the implementation: priority allocation, commit, release, capped restock.
Events the service refuses as too early (`PrerequisiteMissing`) are kept and redelivered
later, as SQS would.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from stock_support import (
    aws_env,
    cancelled,
    create_inventory_table,
    create_orders_table,
    order_id,
    payment,
    placed,
    refund,
    stock_deps,
)
from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
from storewire.domain.events import CanonicalEvent
from storewire.domain.inventory import Location, MoveKind
from storewire.errors import PrerequisiteMissing
from storewire.stock import StockDeps, handle_event

# (sku, location) -> units at the start; "east" is reserved from before "default".
START = {("A", "east"): 1, ("A", "default"): 2, ("B", "default"): 2}
PRIORITY = ["east", "default"]
ORDERS: dict[str, list[tuple[str, str, int]]] = {
    "o1": [("L1", "A", 2)],
    "o2": [("L1", "A", 1), ("L2", "B", 1)],
    "o3": [("L1", "B", 2)],
    "o4": [("L1", "A", 2), ("L2", "B", 1)],
}
REFUNDS = ["r1", "r2"]


@dataclass
class ModelOrder:
    placed: bool = False
    tombstone: bool = False
    reserved: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)
    released: set[str] = field(default_factory=set)
    restocked: dict[str, int] = field(default_factory=dict)
    refunds: set[str] = field(default_factory=set)
    status: str = "pending"
    record: bool = False


class Model:
    """What stock must look like, computed the simplest way."""

    def __init__(self) -> None:
        self.on_hand = dict(START)
        self.available = dict(START)
        self.orders = {name: ModelOrder() for name in ORDERS}

    def place(self, name: str) -> None:
        order = self.orders[name]
        order.record = True
        if order.tombstone:
            order.status = _move(order.status, "released")
            return
        if order.placed:
            return
        for line, sku, quantity in ORDERS[name]:
            need, pieces = quantity, []
            for location in PRIORITY:
                take = min(need, self.available.get((sku, location), 0))
                if take:
                    pieces.append((location, take))
                    self.available[(sku, location)] -= take
                    need -= take
            if pieces:
                order.reserved[line] = pieces
        order.placed = True
        wanted = sum(q for *_, q in ORDERS[name])
        got = sum(q for pieces in order.reserved.values() for _, q in pieces)
        outcome = (
            "reserved" if got == wanted else "backordered" if not got else "partially_reserved"
        )
        order.status = _move(order.status, outcome)

    def pay(self, name: str) -> bool:
        """False when the payment must wait (no completed reservation yet)."""
        order = self.orders[name]
        if order.tombstone:
            return True
        if not order.placed:
            return False
        for line, pieces in order.reserved.items():
            if line in order.committed or line in order.released:
                continue
            order.committed.add(line)
            sku = _sku(name, line)
            for location, quantity in pieces:
                self.on_hand[(sku, location)] -= quantity
        if order.committed:
            order.status = _move(order.status, "committed")
        return True

    def cancel(self, name: str, *, with_order_data: bool) -> None:
        order = self.orders[name]
        order.tombstone = True
        order.record = order.record or with_order_data
        for line, pieces in order.reserved.items():
            if line in order.committed or line in order.released:
                continue
            order.released.add(line)
            sku = _sku(name, line)
            for location, quantity in pieces:
                self.available[(sku, location)] += quantity
        order.status = _move(order.status, "released")

    def refund(self, name: str, refund_id: str) -> bool:
        """Restock 1 unit of L1; False when the refund must wait for the order."""
        order = self.orders[name]
        if not order.placed and not order.tombstone:
            return False
        if "L1" in order.reserved and not ({"L1"} & (order.committed | order.released)):
            return False  # reserved, not yet committed or released: wait for the commit
        if refund_id in order.refunds or "L1" not in order.committed:
            return True
        order.refunds.add(refund_id)
        units = [loc for loc, q in order.reserved["L1"] for _ in range(q)]
        done = order.restocked.get("L1", 0)
        if done >= len(units):
            return True
        location = units[done]
        order.restocked["L1"] = done + 1
        sku = _sku(name, "L1")
        self.on_hand[(sku, location)] += 1
        self.available[(sku, location)] += 1
        order.status = _move(order.status, "restocked")
        return True


_GRAPH = {
    "pending": {"reserved", "partially_reserved", "backordered", "released"},
    "reserved": {"committed", "released"},
    "partially_reserved": {"committed", "released"},
    "backordered": {"committed", "released"},
    "committed": {"restocked"},
    "restocked": {"restocked"},
    "released": set(),
}


def _move(current: str, target: str) -> str:
    return target if target in _GRAPH[current] else current


def _sku(name: str, line: str) -> str:
    return next(sku for line_id, sku, _ in ORDERS[name] if line_id == line)


@pytest.fixture(scope="module")
def aws(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[None]:
    aws_env(monkeypatch_module)
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


class StockMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        client = boto3.client("dynamodb")
        suffix = uuid.uuid4().hex[:8]
        self.inventory_table = f"inv-{suffix}"
        self.orders_table = f"ord-{suffix}"
        create_inventory_table(client, self.inventory_table)
        create_orders_table(client, self.orders_table)
        self.client = client
        self.store = DynamoDBStockStore(client, self.inventory_table)
        self.store.put_location(Location(name="east", priority=1))
        for (sku, location), units in START.items():
            self.store.set_on_hand(sku, location, units, ref="start")
        self.orders = DynamoDBOrderStore(client, self.orders_table)
        deps, self.publisher = stock_deps(self.store, orders=self.orders)
        self.deps: StockDeps = deps
        self.model = Model()
        self.sent: list[tuple[CanonicalEvent, str, str]] = []
        self.waiting: list[tuple[CanonicalEvent, str, str]] = []

    def teardown(self) -> None:
        self.client.delete_table(TableName=self.inventory_table)
        self.client.delete_table(TableName=self.orders_table)

    def _deliver(self, event: CanonicalEvent, action: str, name: str) -> None:
        ready = {
            "place": lambda: self.model.place(name) or True,
            "pay": lambda: self.model.pay(name),
            "cancel": lambda: self.model.cancel(name, with_order_data=True) or True,
            "fail": lambda: self.model.cancel(name, with_order_data=False) or True,
            "refund": lambda: self.model.refund(name, event.data.refund_id),  # type: ignore[union-attr]
        }
        try:
            handle_event(event, self.deps)
        except PrerequisiteMissing:
            assert not ready[action](), f"{action} {name} refused though the model accepts it"
            self.waiting.append((event, action, name))
            return
        assert ready[action](), f"{action} {name} applied though the model says wait"
        self.sent.append((event, action, name))

    @rule(name=st.sampled_from(sorted(ORDERS)), delivery=st.sampled_from(["d1", "d2"]))
    def place(self, name: str, delivery: str) -> None:
        self._deliver(placed(name, ORDERS[name], delivery=f"{name}-{delivery}"), "place", name)

    @rule(name=st.sampled_from(sorted(ORDERS)))
    def pay(self, name: str) -> None:
        self._deliver(payment(name), "pay", name)

    @rule(name=st.sampled_from(sorted(ORDERS)), kind=st.sampled_from(["cancel", "fail"]))
    def cancel(self, name: str, kind: str) -> None:
        event = (
            cancelled(name, ORDERS[name]) if kind == "cancel" else payment(name, "PaymentFailed")
        )
        self._deliver(event, kind, name)

    @rule(name=st.sampled_from(sorted(ORDERS)), refund_id=st.sampled_from(REFUNDS))
    def refund(self, name: str, refund_id: str) -> None:
        sku = ORDERS[name][0][1]
        self._deliver(refund(name, f"{name}-{refund_id}", [("L1", sku, 1, True)]), "refund", name)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        event, action, name = data.draw(st.sampled_from(self.sent))
        self._deliver(event, action, name)

    @precondition(lambda self: bool(self.waiting))
    @rule()
    def redeliver(self) -> None:
        event, action, name = self.waiting.pop(0)
        self._deliver(event, action, name)

    @invariant()
    def stock_agrees_and_is_never_oversold(self) -> None:
        levels = self.store.levels(["A", "B"])
        actual = {
            (r.sku, r.location): (r.on_hand, r.available) for rs in levels.values() for r in rs
        }
        expected = {key: (self.model.on_hand[key], self.model.available[key]) for key in START}
        assert actual == expected
        assert all(available >= 0 for _, available in actual.values())

    @invariant()
    def ledger_and_orders_agree(self) -> None:
        for name, expected in self.model.orders.items():
            state = self.store.order_state(order_id(name))
            reserved = {
                e.line_id: [(p.location, p.quantity) for p in e.pieces]
                for e in state.entries
                if e.kind is MoveKind.RESERVE
            }
            assert reserved == expected.reserved, name
            assert set(state.of_kind(MoveKind.COMMIT)) == expected.committed, name
            assert set(state.of_kind(MoveKind.RELEASE)) == expected.released, name
            assert state.restocked("L1") == expected.restocked.get("L1", 0), name
            record = self.orders.get(order_id(name))
            assert (record is not None) == expected.record, name
            if record is not None:
                assert record.stock.status == expected.status, name


TestStockMachine = StockMachine.TestCase
TestStockMachine.settings = settings(
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def _inside_moto(aws: None) -> None:
    """Every example runs inside the module's mock_aws (fresh tables per example)."""
