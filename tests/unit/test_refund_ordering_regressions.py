"""Regressions: refunds and commits that arrive out of order (invariant 4, in-memory fakes).

Three bugs found by the reliability oracle, each reproduced here by handing the service the
events in the order that broke it. An event the service refuses as too early
(`PrerequisiteMissing`) is redelivered later, as SQS does (`deliver`).

1. A refund with restock handled after the reservation but before the payment's commit
   restocked nothing and was never retried; the commit then shipped the units for good.
2. A full refund handled by payment confirmation before the payment was confirmed was only a
   timeline note; the later confirmation left the payment `confirmed`.
3. A commit (or a restock) landing between the ledger move of another handler and that
   handler's order-record update was refused by the record's transition graph (pending ->
   committed, reserved -> restocked were not edges), so the record fell behind the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import permutations
from typing import Any

import pytest
from fakes_orders import InMemoryOrderStore
from fakes_stock import InMemoryStockStore
from payment_fakes import (
    ORDER_ID,
    FakeGateway,
    deps,
    intent,
    order_placed,
    published_types,
    shopify_event,
    stripe_payment,
    stripe_report,
)
from stock_samples import RecordingPublisher, cancelled, order_id, payment, placed, refund
from storewire.domain.events import CanonicalEvent
from storewire.domain.inventory import LedgerEntry, LineAllocation, MoveKind
from storewire.domain.orders import StockStatus, can_transition
from storewire.errors import PrerequisiteMissing
from storewire.payments import PaymentDeps, handle_payment_event
from storewire.stock import StockDeps, handle_event

# --------------------------------------------------------------------------- helpers


class World:
    """The stock service on in-memory fakes, with stock rows seeded per SKU."""

    def __init__(
        self, store: InMemoryStockStore | None = None, *, max_items: int = 100, **stock: int
    ) -> None:
        self.store = store or InMemoryStockStore()
        self.orders = InMemoryOrderStore()
        self.publisher = RecordingPublisher()
        for sku, on_hand in stock.items():
            self.store.set_on_hand(sku, "default", on_hand, ref="seed")
        self.deps = StockDeps(
            store=self.store,
            publisher=self.publisher,
            orders=self.orders,
            sleep=lambda _: None,
            max_transaction_items=max_items,
        )

    def handle(self, event: Any) -> str:
        return handle_event(event, self.deps).outcome

    def level(self, sku: str) -> tuple[int, int]:
        row = self.store.rows[(sku, "default")]
        return row.on_hand, row.available

    def stock_status(self, external: str) -> str:
        record = self.orders.get(order_id(external))
        assert record is not None
        return record.stock.status

    def kinds(self, external: str) -> list[str]:
        return sorted(key for key in self.store.ledger.get(order_id(external), {}))


def deliver(events: Sequence[CanonicalEvent], handle: Callable[[CanonicalEvent], object]) -> int:
    """Handle `events` in order; those refused as too early are redelivered after the others
    (as SQS redelivers a failed record), until none is left. Returns the refusals."""
    pending = list(events)
    refusals = 0
    for _ in range(len(events) + 1):
        waiting = []
        for event in pending:
            try:
                handle(event)
            except PrerequisiteMissing:
                refusals += 1
                waiting.append(event)
        if not waiting:
            return refusals
        pending = waiting
    raise AssertionError(f"never applied: {[e.event_type for e in pending]}")


# --------------------------------------------------------------------------- 1. restock


def test_a_refund_with_restock_before_the_commit_waits_for_it() -> None:
    world = World(A=5)
    world.handle(placed("1", [("L1", "A", 2)]))
    early = refund("1", "R1", [("L1", "A", 2, True)])

    with pytest.raises(PrerequisiteMissing, match="not committed"):
        world.handle(early)

    assert world.level("A") == (5, 3)  # nothing moved: still reserved
    assert world.stock_status("1") == "reserved"
    assert world.publisher.details("StockRestocked") == []
    world.handle(payment("1"))
    assert world.handle(early) == "restocked"  # the redelivery
    assert world.level("A") == (5, 5)  # shipped 2, both returned
    assert world.stock_status("1") == "restocked"
    assert len(world.publisher.unique("StockRestocked")) == 1


@pytest.mark.parametrize("order", list(permutations(range(3))))
def test_place_pay_and_refund_end_the_same_in_any_order(order: tuple[int, ...]) -> None:
    world = World(A=5)
    story = [
        placed("1", [("L1", "A", 2), ("L2", "A", 1)]),
        payment("1"),
        refund("1", "R1", [("L1", "A", 2, True), ("L2", "A", 1, False)]),
    ]

    deliver([story[i] for i in order], world.handle)

    assert world.level("A") == (4, 4)  # 3 shipped, the 2 of L1 back
    assert world.stock_status("1") == "restocked"
    assert world.kinds("1") == [
        "L1#commit",
        "L1#reserve",
        "L1#restock#R1",
        "L2#commit",
        "L2#reserve",
    ]


def test_a_refund_of_a_cancelled_order_has_nothing_to_restock() -> None:
    world = World(A=5)
    world.handle(placed("1", [("L1", "A", 2)]))
    world.handle(cancelled("1", [("L1", "A", 2)]))

    assert world.handle(refund("1", "R1", [("L1", "A", 2, True)])) == "nothing_to_restock"
    assert world.level("A") == (5, 5)
    assert world.stock_status("1") == "released"


def test_a_refund_of_an_order_whose_payment_failed_has_nothing_to_restock() -> None:
    world = World(A=5)
    world.handle(placed("1", [("L1", "A", 2)]))
    world.handle(payment("1", "PaymentFailed"))

    assert world.handle(refund("1", "R1", [("L1", "A", 2, True)])) == "nothing_to_restock"
    assert world.level("A") == (5, 5)


def test_a_refund_of_a_backordered_line_does_not_wait_for_a_commit() -> None:
    # L1 is reserved (and not committed); L2 was short: never reserved, nothing to restock.
    world = World(A=2, B=0)
    assert world.handle(placed("1", [("L1", "A", 2), ("L2", "B", 1)])) == "partially_reserved"

    assert world.handle(refund("1", "R1", [("L2", "B", 1, True)])) == "nothing_to_restock"
    with pytest.raises(PrerequisiteMissing):
        world.handle(refund("1", "R2", [("L1", "A", 1, True)]))
    assert world.level("A") == (2, 0)


def test_a_refund_without_restock_of_a_reserved_line_does_not_wait() -> None:
    world = World(A=5)
    world.handle(placed("1", [("L1", "A", 2)]))

    assert world.handle(refund("1", "R1", [("L1", "A", 2, False)])) == "nothing_to_restock"


class CrashingStore(InMemoryStockStore):
    """Dies before the `crash_at`-th commit transaction (a Lambda killed between chunks)."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.commits = 0

    def apply(self, order_id: str, kind: MoveKind, entries: Sequence[LedgerEntry]) -> None:
        if kind is MoveKind.COMMIT:
            self.commits += 1
            if self.commits == self.crash_at:
                raise RuntimeError("the Lambda was killed between two commit chunks")
        super().apply(order_id, kind, entries)


def test_a_partly_committed_order_restocks_committed_lines_and_waits_for_the_rest() -> None:
    # One line per commit transaction (entry + check + one row = 3 items); crash before the 2nd.
    world = World(CrashingStore(crash_at=2), max_items=3, A=5, B=5)
    world.handle(placed("1", [("L1", "A", 2), ("L2", "B", 1)]))
    with pytest.raises(RuntimeError):
        world.handle(payment("1"))
    assert world.kinds("1") == ["L1#commit", "L1#reserve", "L2#reserve"]

    # A refund of the committed line only: restocked now.
    assert world.handle(refund("1", "R1", [("L1", "A", 1, True)])) == "restocked"
    # A refund naming the open line waits as a whole: not even its committed line moves.
    both = refund("1", "R2", [("L1", "A", 1, True), ("L2", "B", 1, True)])
    with pytest.raises(PrerequisiteMissing, match="L2"):
        world.handle(both)
    assert world.level("A") == (4, 4)
    assert world.level("B") == (5, 4)

    world.handle(payment("1"))  # the redelivery finishes the commit
    assert world.handle(both) == "restocked"
    assert world.level("A") == (5, 5)
    assert world.level("B") == (5, 5)
    assert world.stock_status("1") == "restocked"


def test_a_refund_overtaking_a_cancel_in_progress_waits_for_the_release() -> None:
    # The cancel wrote its tombstone and died before releasing: the line is still open.
    world = World(A=5)
    world.handle(placed("1", [("L1", "A", 2)]))
    world.store.mark(order_id("1"), cancelled=True)

    with pytest.raises(PrerequisiteMissing):
        world.handle(refund("1", "R1", [("L1", "A", 2, True)]))
    world.handle(cancelled("1", [("L1", "A", 2)]))  # the cancel's redelivery
    assert world.handle(refund("1", "R1", [("L1", "A", 2, True)])) == "nothing_to_restock"
    assert world.level("A") == (5, 5)


# --------------------------------------------------------------------------- 2. payment


def placed_deps() -> PaymentDeps:
    d = deps(FakeGateway("stripe", stripe_payment()))
    handle_payment_event(order_placed(), d)
    return d


FULL = [{"id": 1, "kind": "refund", "status": "success", "amount": "177.96", "currency": "USD"}]


def payment_status(d: PaymentDeps) -> str:
    record = d.orders.get(ORDER_ID)
    assert record is not None
    return record.payment.status


def test_a_full_refund_before_the_confirmation_waits_for_it() -> None:
    d = placed_deps()
    full = shopify_event("refunds/create", "wh-refund-full", transactions=FULL)
    writes = d.orders.writes  # type: ignore[attr-defined]

    with pytest.raises(PrerequisiteMissing, match="payment is pending"):
        handle_payment_event(full, d)

    assert d.orders.writes == writes  # type: ignore[attr-defined]  # nothing written
    assert handle_payment_event(stripe_report("payment_intent.succeeded", intent()), d).action == (
        "confirmed"
    )
    assert handle_payment_event(full, d).action == "refunded"  # the redelivery
    assert payment_status(d) == "refunded"
    # the confirmation still flowed (stock commits on it), exactly once
    assert published_types(d.publisher) == ["PaymentConfirmed"]  # type: ignore[arg-type]


@pytest.mark.parametrize("refund_first", [False, True])
def test_a_full_refund_ends_refunded_in_either_order(refund_first: bool) -> None:
    d = placed_deps()
    events = [
        stripe_report("payment_intent.succeeded", intent()),
        shopify_event("refunds/create", "wh-refund-full", transactions=FULL),
    ]

    refusals = deliver(
        events[::-1] if refund_first else events, lambda e: handle_payment_event(e, d)
    )

    assert refusals == (1 if refund_first else 0)
    assert payment_status(d) == "refunded"
    assert published_types(d.publisher) == ["PaymentConfirmed"]  # type: ignore[arg-type]


def test_a_full_refund_after_a_failed_payment_waits_for_a_successful_one() -> None:
    d = placed_deps()
    d.orders.transition(ORDER_ID, "payment", "failed", event_id="evt-failed", at=d.clock())
    full = shopify_event("refunds/create", "wh-refund-full", transactions=FULL)

    with pytest.raises(PrerequisiteMissing, match="payment is failed"):
        handle_payment_event(full, d)


def test_a_full_refund_of_a_mismatched_payment_is_applied_at_once() -> None:
    d = placed_deps()
    d.orders.transition(ORDER_ID, "payment", "mismatch", event_id="evt-mismatch", at=d.clock())
    full = shopify_event("refunds/create", "wh-refund-full", transactions=FULL)

    assert handle_payment_event(full, d).action == "refunded"
    assert payment_status(d) == "refunded"


def test_a_partial_refund_before_the_confirmation_is_a_note_and_does_not_wait() -> None:
    d = placed_deps()

    result = handle_payment_event(shopify_event("refunds/create", "wh-refund-part"), d)

    assert result.action == "noted"
    assert payment_status(d) == "pending"


# --------------------------------------------------------------------------- 3. the record


class Interleaving(InMemoryStockStore):
    """Runs `hook` once, right after the first `mark` that sets the flag `on`: another
    consumer's whole event landing between this handler's ledger move and its record update."""

    def __init__(self, on: str) -> None:
        super().__init__()
        self.on = on
        self.hook: Callable[[], object] | None = None

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
        if {"placed": placed, "committed": committed}.get(self.on) and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return done


def test_a_commit_between_the_reservation_and_its_record_update_leaves_the_record_committed() -> (
    None
):
    store = Interleaving(on="placed")
    world = World(store, A=5)
    store.hook = lambda: world.handle(payment("1"))

    outcome = world.handle(placed("1", [("L1", "A", 2)]))

    assert outcome == "reserved"
    assert world.kinds("1") == ["L1#commit", "L1#reserve"]
    assert world.stock_status("1") == "committed"  # the ledger's state, not the reservation's


def test_a_restock_between_the_commit_and_its_record_update_leaves_the_record_restocked() -> None:
    store = Interleaving(on="committed")
    world = World(store, A=5)
    world.handle(placed("1", [("L1", "A", 2)]))
    store.hook = lambda: world.handle(refund("1", "R1", [("L1", "A", 2, True)]))

    world.handle(payment("1"))

    assert world.level("A") == (5, 5)
    assert world.stock_status("1") == "restocked"


def test_a_cancel_between_the_commit_and_its_record_update_does_not_claim_released() -> None:
    # A paid order cancelled (the storefront refunds it later): the commit shipped the units,
    # the cancel released nothing, so the record must not say released.
    store = Interleaving(on="committed")
    world = World(store, A=5)
    world.handle(placed("1", [("L1", "A", 2)]))
    store.hook = lambda: world.handle(cancelled("1", [("L1", "A", 2)]))

    world.handle(payment("1"))

    assert world.kinds("1") == ["L1#commit", "L1#reserve"]
    assert world.stock_status("1") == "committed"


def test_the_stock_record_moves_forward_only() -> None:
    forward = [
        (StockStatus.PENDING, StockStatus.COMMITTED),
        (StockStatus.PENDING, StockStatus.RESTOCKED),
        (StockStatus.RESERVED, StockStatus.RESTOCKED),
        (StockStatus.PARTIALLY_RESERVED, StockStatus.RESTOCKED),
    ]
    backward = [
        (StockStatus.COMMITTED, StockStatus.RESERVED),
        (StockStatus.RESTOCKED, StockStatus.COMMITTED),
        (StockStatus.RESTOCKED, StockStatus.RESERVED),
        (StockStatus.COMMITTED, StockStatus.PENDING),
        (StockStatus.RELEASED, StockStatus.COMMITTED),
        (StockStatus.COMMITTED, StockStatus.RELEASED),
    ]
    assert all(can_transition("stock", a, b) for a, b in forward)
    assert not any(can_transition("stock", a, b) for a, b in backward)
