"""storewire.reconciliation on hand-written fakes: the watermark (overlap, a crash mid-run),
pagination, the throttling wait, re-emission ids, stuck payments and the drift decision."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from storewire.domain.channels import ChannelListing, StaleQuantity
from storewire.domain.events import BusEntry, CanonicalEvent, canonical_order_id
from storewire.domain.inventory import StockLevel
from storewire.domain.orders import OrderRecord, merge_storefront, new_record
from storewire.errors import RetryableUpstreamError
from storewire.reconciliation import (
    Budget,
    OrderPage,
    OrderSummary,
    ReconcileDeps,
    Throttle,
    events_for,
    ledger_available,
    reconcile_orders,
    reconcile_payments,
    reconcile_stock,
    run,
)
from storewire.sources.shopify import normalise_payload

SHOP = "storewire-demo.myshopify.com"
SAMPLE = Path(__file__).resolve().parents[2] / "events" / "payloads" / "shopify"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)


def order_payload(external: int, updated: datetime, status: str = "paid") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((SAMPLE / "orders_create.json").read_text())
    payload.update(
        id=external,
        name=f"#{external}",
        updated_at=updated.isoformat(),
        created_at=(updated - timedelta(seconds=1)).isoformat(),
        financial_status=status,
    )
    return payload


class FakeStorefront:
    def __init__(self, orders: list[dict[str, Any]], *, page_size_cap: int = 1000) -> None:
        self.orders = {str(o["id"]): o for o in orders}
        self.pages: list[tuple[datetime, str | None]] = []
        self.fetched: list[str] = []
        self.throttle: Throttle | None = None
        self.fail_fetch: set[str] = set()

    def list_updated(
        self, shop: str, since: datetime, *, first: int, after: str | None
    ) -> OrderPage:
        self.pages.append((since, after))
        rows = sorted(
            (datetime.fromisoformat(o["updated_at"]), int(o["id"]))
            for o in self.orders.values()
            if datetime.fromisoformat(o["updated_at"]) > since
        )
        start = int(after) + 1 if after else 0
        page = rows[start : start + first]
        return OrderPage(
            orders=tuple(OrderSummary(str(i), at) for at, i in page),
            has_next_page=start + first < len(rows),
            end_cursor=str(start + len(page) - 1) if page else None,
            throttle=self.throttle,
        )

    def fetch_order(self, shop: str, external_order_id: str) -> dict[str, Any] | None:
        if external_order_id in self.fail_fetch:
            raise RetryableUpstreamError("storefront down", service="shopify_admin")
        self.fetched.append(external_order_id)
        return self.orders.get(external_order_id)


class FakeWatermarks:
    def __init__(self, at: datetime | None = None) -> None:
        self.at = at

    def get(self, kind: str, shop: str) -> datetime | None:
        return self.at

    def advance(self, kind: str, shop: str, at: datetime) -> None:
        if self.at is None or at > self.at:
            self.at = at


class FakeOrders:
    def __init__(self, records: Iterable[OrderRecord] = ()) -> None:
        self.records = {r.order_id: r for r in records}

    def get(self, order_id: str) -> OrderRecord | None:
        return self.records.get(order_id)

    def pending_payments(self) -> Iterable[OrderRecord]:
        return [r for r in self.records.values() if r.payment.status == "pending"]

    def record_storefront_update(self, event: CanonicalEvent) -> bool:
        assert event.order_id is not None
        merged = merge_storefront(self.records[event.order_id], event)
        if merged is not None:
            self.records[event.order_id] = merged
        return merged is not None


class FakePublisher:
    def __init__(self) -> None:
        self.entries: list[BusEntry] = []

    def publish(self, entries: Any) -> None:
        self.entries.extend(entries)

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.entries if e["DetailType"] == detail_type]


def record_of(payload: dict[str, Any]) -> OrderRecord:
    (event,) = normalise_payload(
        "orders/create", payload, shop=SHOP, delivery_id=f"d-{payload['id']}", occurred_at=None
    )
    return new_record(event)


def deps(
    storefront: FakeStorefront,
    *,
    orders: FakeOrders | None = None,
    watermarks: FakeWatermarks | None = None,
    publisher: FakePublisher | None = None,
    budget: Budget | None = None,
    page_size: int = 2,
) -> ReconcileDeps:
    return ReconcileDeps(
        shop=SHOP,
        orders=orders or FakeOrders(),
        publisher=publisher or FakePublisher(),
        storefront=storefront,
        watermarks=watermarks or FakeWatermarks(),
        clock=lambda: NOW,
        budget=budget or Budget(remaining=lambda: 600.0, sleep=lambda s: None),
        page_size=page_size,
    )


def test_missing_orders_are_re_emitted_across_pages_and_the_watermark_moves_with_overlap() -> None:
    payloads = [order_payload(1000 + i, T0 + timedelta(minutes=i)) for i in range(5)]
    storefront = FakeStorefront(payloads)
    publisher = FakePublisher()
    seen = FakeOrders([record_of(payloads[0]), record_of(payloads[1])])
    marks = FakeWatermarks()
    report = reconcile_orders(
        deps(storefront, orders=seen, watermarks=marks, publisher=publisher),
        since=T0 - timedelta(1),
    )
    assert report.pages == 3  # 5 orders, 2 a page
    assert [after for _, after in storefront.pages] == [None, "1", "3"]
    assert report.checked == 5
    assert report.missing == 3
    assert report.behind == 0
    assert storefront.fetched == ["1002", "1003", "1004"]  # the seen ones are not fetched
    placed = publisher.of_type("OrderPlaced")
    assert [p["external_order_id"] for p in placed] == ["1002", "1003", "1004"]
    assert len(publisher.of_type("OrderPaymentReported")) == 3  # they are paid
    assert marks.at == T0 + timedelta(minutes=4) - timedelta(minutes=5)
    assert report.complete
    assert len(publisher.of_type("ReconciliationCompleted")) == 0  # only `run` publishes it


def test_two_runs_re_emit_the_same_event_ids() -> None:
    payload = order_payload(2000, T0)
    first, second = FakePublisher(), FakePublisher()
    reconcile_orders(deps(FakeStorefront([payload]), publisher=first), since=T0 - timedelta(1))
    reconcile_orders(deps(FakeStorefront([payload]), publisher=second), since=T0 - timedelta(1))
    ids = [json.loads(e["Detail"])["event_id"] for e in first.entries]
    assert ids == [json.loads(e["Detail"])["event_id"] for e in second.entries]
    assert len(ids) == 2


def test_an_order_behind_its_record_gets_an_update_and_the_missed_payment() -> None:
    old = order_payload(3000, T0, status="pending")
    new = order_payload(3000, T0 + timedelta(minutes=10), status="paid")
    publisher = FakePublisher()
    orders = FakeOrders([record_of(old)])
    report = reconcile_orders(
        deps(FakeStorefront([new]), orders=orders, publisher=publisher),
        since=T0 - timedelta(1),
    )
    assert report.behind == 1
    assert report.missing == 0
    assert [json.loads(e["Detail"])["event_type"] for e in publisher.entries] == [
        "OrderUpdated",
        "OrderPaymentReported",
    ]
    # The record took the snapshot: the next run finds the order up to date.
    again = reconcile_orders(
        deps(FakeStorefront([new]), orders=orders, publisher=publisher), since=T0 - timedelta(1)
    )
    assert again.behind == 0
    assert again.corrected == 0


def test_an_up_to_date_order_is_left_alone() -> None:
    payload = order_payload(3100, T0)
    publisher = FakePublisher()
    storefront = FakeStorefront([payload])
    report = reconcile_orders(
        deps(storefront, orders=FakeOrders([record_of(payload)]), publisher=publisher),
        since=T0 - timedelta(1),
    )
    assert report.checked == 1
    assert report.corrected == 0
    assert publisher.entries == []
    assert storefront.fetched == []


def test_a_run_that_dies_half_way_loses_nothing_on_the_next() -> None:
    payloads = [order_payload(4000 + i, T0 + timedelta(minutes=10 * i)) for i in range(4)]
    storefront = FakeStorefront(payloads)
    storefront.fail_fetch = {"4002"}
    marks = FakeWatermarks(T0 - timedelta(hours=1))
    publisher = FakePublisher()
    report = reconcile_orders(deps(storefront, watermarks=marks, publisher=publisher))
    assert not report.complete
    assert report.failed == 1
    # Only 4000 and 4001 were handled: the watermark stops before 4002 (less the overlap).
    assert marks.at == T0 + timedelta(minutes=10) - timedelta(minutes=5)
    storefront.fail_fetch = set()
    report = reconcile_orders(deps(storefront, watermarks=marks, publisher=publisher))
    assert report.complete
    placed = {p["external_order_id"] for p in publisher.of_type("OrderPlaced")}
    assert placed == {"4000", "4001", "4002", "4003"}
    assert marks.at == T0 + timedelta(minutes=30) - timedelta(minutes=5)


def test_the_watermark_never_moves_backwards() -> None:
    marks = FakeWatermarks(T0 + timedelta(hours=1))
    payload = order_payload(5000, T0)  # found only because `since` was given
    reconcile_orders(deps(FakeStorefront([payload]), watermarks=marks), since=T0 - timedelta(1))
    assert marks.at == T0 + timedelta(hours=1)


def test_throttled_waits_for_the_restore_within_the_budget() -> None:
    payloads = [order_payload(6000 + i, T0 + timedelta(minutes=i)) for i in range(3)]
    storefront = FakeStorefront(payloads)
    storefront.throttle = Throttle(requested=4, available=0, restore_rate=2)
    slept: list[float] = []
    report = reconcile_orders(
        deps(storefront, budget=Budget(remaining=lambda: 600.0, sleep=slept.append)),
        since=T0 - timedelta(1),
    )
    assert slept == [2.0]  # (4 - 0) / 2 before the second page
    assert report.throttled_waits == 1
    assert report.complete


def test_throttled_past_the_budget_stops_and_keeps_what_was_handled() -> None:
    payloads = [order_payload(7000 + i, T0 + timedelta(minutes=i)) for i in range(3)]
    storefront = FakeStorefront(payloads)
    storefront.throttle = Throttle(requested=4, available=0, restore_rate=0.001)
    marks = FakeWatermarks()
    slept: list[float] = []
    report = reconcile_orders(
        deps(
            storefront, watermarks=marks, budget=Budget(remaining=lambda: 60.0, sleep=slept.append)
        ),
        since=T0 - timedelta(1),
    )
    assert slept == []
    assert not report.complete
    assert report.pages == 1
    assert marks.at == T0 + timedelta(minutes=1) - timedelta(minutes=5)


def test_events_for_a_cancelled_unseen_order() -> None:
    payload = order_payload(8000, T0, status="voided")
    payload["cancelled_at"] = T0.isoformat()
    payload["cancel_reason"] = "customer"
    types = [e.event_type for e in events_for(SHOP, payload, None)]
    assert types == ["OrderPlaced", "OrderCancelled"]


def test_stuck_payments_past_the_threshold_are_re_checked_once_per_slot() -> None:
    old = order_payload(9000, T0, status="paid")
    fresh = order_payload(9001, NOW - timedelta(minutes=5), status="paid")
    recent = record_of(fresh).model_copy(
        update={
            "timeline": (
                record_of(fresh).timeline[0].model_copy(update={"at": NOW - timedelta(minutes=5)}),
            )
        }
    )
    publisher = FakePublisher()
    orders = FakeOrders([record_of(old), recent])
    d = deps(FakeStorefront([old, fresh]), orders=orders, publisher=publisher)
    report = reconcile_payments(d)
    again = reconcile_payments(d)
    assert report.checked == 1
    assert report.corrected == 1
    reports = publisher.of_type("OrderPaymentReported")
    assert [r["external_order_id"] for r in reports] == ["9000", "9000"]
    assert reports[0]["event_id"] == reports[1]["event_id"]  # the same slot, the same id
    assert again.corrected == 1


# --------------------------------------------------------------------------- stock drift


class FakeListings:
    def __init__(self, listings: list[ChannelListing]) -> None:
        self.items = listings

    def all_listings(self) -> Iterable[ChannelListing]:
        return list(self.items)


class FakeLedger:
    def __init__(self, levels: dict[str, list[StockLevel]]) -> None:
        self.rows = levels

    def levels(self, skus: Iterable[str]) -> dict[str, list[StockLevel]]:
        return {sku: self.rows.get(sku, []) for sku in skus}


class FakeChannel:
    def __init__(self, quantities: dict[str, int], *, move_on_set: bool = False) -> None:
        self.quantities = quantities
        self.sets: list[tuple[str, int, int | None]] = []
        self.move_on_set = move_on_set

    def read_available(self, listing: ChannelListing, shop: str) -> int:
        return self.quantities[listing.inventory_item_id]

    def set_available(
        self,
        listing: ChannelListing,
        shop: str,
        *,
        quantity: int,
        change_from: int | None,
        idempotency_key: str,
        reference: str,
    ) -> None:
        if self.move_on_set:
            raise StaleQuantity("stale", actual=self.quantities[listing.inventory_item_id] + 1)
        assert change_from == self.quantities[listing.inventory_item_id]
        self.quantities[listing.inventory_item_id] = quantity
        self.sets.append((listing.sku, quantity, change_from))


def listing(sku: str, item: str, location: str = "*") -> ChannelListing:
    return ChannelListing(
        sku=sku, location=location, inventory_item_id=item, location_id="gid://shopify/Location/1"
    )


def level(sku: str, location: str, available: int) -> StockLevel:
    return StockLevel(sku=sku, location=location, on_hand=available + 1, available=available)


def stock_deps(
    channel: FakeChannel, listings: list[ChannelListing], ledger: FakeLedger
) -> ReconcileDeps:
    return ReconcileDeps(
        shop=SHOP,
        orders=FakeOrders(),
        publisher=FakePublisher(),
        listings=FakeListings(listings),
        ledger=ledger,
        channels={"shopify": channel},
        clock=lambda: NOW,
    )


def test_ledger_available_per_location_and_in_total() -> None:
    rows = [level("A", "default", 3), level("A", "east", -1)]
    assert ledger_available(rows, "*") == 2
    assert ledger_available(rows, "east") == 0
    assert ledger_available(rows, "west") is None


def test_drifted_listings_are_corrected_compare_and_set_and_reported() -> None:
    channel = FakeChannel({"i1": 7, "i2": 4, "i3": 9})
    ledger = FakeLedger({"A": [level("A", "default", 5)], "B": [level("B", "default", 4)], "C": []})
    listings = [listing("A", "i1"), listing("B", "i2"), listing("C", "i3", "default")]
    report = reconcile_stock(stock_deps(channel, listings, ledger))
    assert channel.sets == [("A", 5, 7)]
    assert report.checked == 2
    assert report.corrected == 1
    assert report.details == [{"sku": "A", "listing": listings[0].key, "channel": 7, "ledger": 5}]


def test_a_listing_that_moves_while_corrected_is_left_for_the_next_run() -> None:
    channel = FakeChannel({"i1": 7}, move_on_set=True)
    ledger = FakeLedger({"A": [level("A", "default", 5)]})
    report = reconcile_stock(stock_deps(channel, [listing("A", "i1")], ledger))
    assert report.corrected == 0
    assert report.failed == 1


def test_run_publishes_reconciliation_completed_with_the_counts() -> None:
    channel = FakeChannel({"i1": 7})
    d = stock_deps(channel, [listing("A", "i1")], FakeLedger({"A": [level("A", "default", 5)]}))
    run("stock", d)
    assert isinstance(d.publisher, FakePublisher)
    (completed,) = d.publisher.of_type("ReconciliationCompleted")
    assert completed["source"] == "reconciliation"
    assert completed["data"]["kind"] == "stock"
    assert completed["data"]["corrected"] == 1


def test_canonical_ids_match_the_webhook_path() -> None:
    payload = order_payload(9100, T0)
    (event, *_) = events_for(SHOP, payload, None)
    assert event.order_id == canonical_order_id("shopify", SHOP, "9100")


@pytest.mark.parametrize("kind", ["orders", "payments"])
def test_run_needs_the_storefront(kind: str) -> None:
    d = ReconcileDeps(shop=SHOP, orders=FakeOrders(), publisher=FakePublisher())
    with pytest.raises(ValueError):
        run(kind, d)  # type: ignore[arg-type]


def test_the_report_carries_the_last_fully_handled_order_as_a_cursor() -> None:
    payloads = [order_payload(4100 + i, T0 + timedelta(minutes=10 * i)) for i in range(4)]
    storefront = FakeStorefront(payloads)
    storefront.fail_fetch = {"4102"}
    # The schedule's watermark is already past these orders: `since` is honoured over it and
    # the stored watermark does not move back; the cursor is the last handled order itself.
    marks = FakeWatermarks(T0 + timedelta(hours=3))
    report = reconcile_orders(deps(storefront, watermarks=marks), since=T0 - timedelta(1))
    assert report.since == T0 - timedelta(1)
    assert not report.complete
    assert report.last_handled_updated_at == T0 + timedelta(minutes=10)
    assert report.watermark == T0 + timedelta(hours=3)
    assert marks.at == T0 + timedelta(hours=3)
    data = report.data(NOW).model_dump(mode="json")
    assert data["last_handled_updated_at"] == "2026-11-20T12:10:00Z"
    assert data["complete"] is False

    storefront.fail_fetch = set()
    done = reconcile_orders(deps(storefront, watermarks=marks), since=T0 + timedelta(minutes=10))
    assert done.complete
    assert done.last_handled_updated_at == T0 + timedelta(minutes=30)


def test_a_run_that_handles_nothing_has_no_cursor() -> None:
    report = reconcile_orders(deps(FakeStorefront([])), since=T0)
    assert report.complete
    assert report.last_handled_updated_at is None
    assert report.data(NOW).model_dump(mode="json")["last_handled_updated_at"] is None
