"""The order record: guarded transitions, once per event id, never rolled back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes_orders import InMemoryOrderStore
from stock_samples import T0, cancelled, order_id, placed, updated
from storewire.domain.orders import (
    TRANSITIONS,
    OrderNotFound,
    PaymentStatus,
    StockStatus,
    can_transition,
)

LINES = [("L1", "SKU-A", 2)]


def test_an_order_placed_creates_a_record_with_totals_and_every_concern_pending() -> None:
    store = InMemoryOrderStore()

    record = store.record_placed(placed("1001", LINES))

    assert record.order_id == order_id("1001")
    assert record.totals.total.model_dump(mode="json") == {"amount": "20.00", "currency": "USD"}
    assert (record.payment.status, record.stock.status) == ("pending", "pending")
    assert [e.event_type for e in record.timeline] == ["OrderPlaced"]
    assert record.view()["status"] == "open"


def test_the_same_order_placed_twice_is_one_record_and_one_timeline_entry() -> None:
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))

    again = store.record_placed(placed("1001", LINES))

    assert again.version == 1
    assert len(again.timeline) == 1
    assert store.writes == 1


def test_a_transition_applies_once_per_event_id() -> None:
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))

    first = store.transition(order_id("1001"), "payment", "confirmed", event_id="e1", at=T0)
    second = store.transition(order_id("1001"), "payment", "confirmed", event_id="e1", at=T0)

    assert (first, second) == (True, False)
    record = store.get(order_id("1001"))
    assert record is not None
    assert record.payment.status == "confirmed"
    assert record.version == 2


def test_a_repeat_that_changes_nothing_is_not_written_and_a_changed_one_is() -> None:
    # The CRM confirms `synced` with the same contact and deal for every event of an order
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))
    oid = order_id("1001")
    ids = {"contact_id": "c1", "deal_id": "d1"}
    store.transition(oid, "crm", "synced", event_id="e1", at=T0, details=ids)
    writes = store.writes

    repeat = store.transition(oid, "crm", "synced", event_id="e2", at=T0, details=ids)
    changed = store.transition(
        oid, "crm", "synced", event_id="e3", at=T0, details={**ids, "deal_id": "d2"}
    )

    assert (repeat, changed) == (False, True)
    assert store.writes == writes + 1
    record = store.get(oid)
    assert record is not None
    assert record.crm.details == {"contact_id": "c1", "deal_id": "d2"}
    assert [e.event_id for e in record.timeline][1:] == ["e1", "e3"]


def test_a_confirmed_payment_is_final_except_for_a_refund() -> None:
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))
    oid = order_id("1001")
    store.transition(oid, "payment", "confirmed", event_id="e1", at=T0)

    failed = store.transition(oid, "payment", "failed", event_id="e2", at=T0)
    refunded = store.transition(oid, "payment", "refunded", event_id="e3", at=T0)

    assert (failed, refunded) == (False, True)
    record = store.get(oid)
    assert record is not None
    assert record.payment.status == "refunded"
    assert record.status == "refunded"


def test_a_transition_keeps_earlier_details_and_adds_new_ones() -> None:
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))
    oid = order_id("1001")

    store.transition(
        oid, "stock", "reserved", event_id="e1", at=T0, details={"lines": [{"line_id": "L1"}]}
    )
    store.transition(oid, "stock", "committed", event_id="e2", at=T0, details={"by": "payment"})

    record = store.get(oid)
    assert record is not None
    view = record.view()
    assert view["stock"]["status"] == "committed"
    assert view["stock"]["lines"] == [{"line_id": "L1"}]
    assert view["status"] == "ready_to_ship"


def test_a_late_orders_updated_never_rolls_the_snapshot_back() -> None:
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))
    newer = updated("1001", [("L1", "SKU-A", 3)], updated_at=T0 + timedelta(hours=2), delivery="u2")
    older = updated("1001", [("L1", "SKU-A", 1)], updated_at=T0 + timedelta(hours=1), delivery="u1")

    assert store.record_storefront_update(newer) is True
    assert store.record_storefront_update(older) is False

    record = store.get(order_id("1001"))
    assert record is not None
    assert record.totals.total.amount == 30
    assert record.storefront_updated_at == T0 + timedelta(hours=2)


def test_a_cancel_sets_cancelled_at_and_the_status_says_so() -> None:
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))

    assert store.record_storefront_update(cancelled("1001", LINES)) is True

    record = store.get(order_id("1001"))
    assert record is not None
    assert record.cancelled_at is not None
    assert record.status == "cancelled"


def test_an_order_first_seen_through_its_cancel_is_created_from_it() -> None:
    store = InMemoryOrderStore()

    record = store.record_placed(cancelled("1001", LINES))

    assert record.cancelled_at is not None
    assert store.record_placed(placed("1001", LINES)).cancelled_at is not None


def test_a_transition_before_the_record_exists_is_retryable() -> None:
    store = InMemoryOrderStore()

    with pytest.raises(OrderNotFound) as missing:
        store.transition(order_id("1001"), "payment", "confirmed", event_id="e1", at=T0)

    assert missing.value.status_code == 503


def test_the_timeline_takes_an_event_once() -> None:
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))
    oid = order_id("1001")

    added = [
        store.append_timeline(oid, event_id="e9", event_type="LabelCreated", at=T0, summary="x")
        for _ in range(2)
    ]

    assert added == [True, False]


def test_find_accepts_the_storefront_id_or_the_canonical_id() -> None:
    store = InMemoryOrderStore()
    store.record_placed(placed("1001", LINES))

    assert store.find("1001") == store.find(order_id("1001")) is not None
    assert store.find("9999") is None


@pytest.mark.parametrize(
    ("concern", "start", "end", "allowed"),
    [
        ("payment", PaymentStatus.PENDING, PaymentStatus.CONFIRMED, True),
        ("payment", PaymentStatus.CONFIRMED, PaymentStatus.PENDING, False),
        ("payment", PaymentStatus.REFUNDED, PaymentStatus.CONFIRMED, False),
        ("payment", PaymentStatus.MISMATCH, PaymentStatus.CONFIRMED, True),
        ("stock", StockStatus.RESERVED, StockStatus.COMMITTED, True),
        ("stock", StockStatus.COMMITTED, StockStatus.RELEASED, False),
        ("stock", StockStatus.RELEASED, StockStatus.RESERVED, False),
        ("stock", StockStatus.PENDING, StockStatus.RELEASED, True),
    ],
)
def test_the_transition_graph(concern: str, start: str, end: str, allowed: bool) -> None:
    assert can_transition(concern, start, end) is allowed  # type: ignore[arg-type]


def test_every_status_of_every_concern_is_in_its_graph() -> None:
    for concern, graph in TRANSITIONS.items():
        targets = {t for ts in graph.values() for t in ts}
        assert targets <= set(graph), concern
