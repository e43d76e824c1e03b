"""Scheduled reconciliation: what the webhooks missed, found and repaired.

Three kinds, one per schedule (see docs/operations.md, "Reconcile"):

* **orders**: the storefront's orders updated since a stored watermark are listed (Shopify
  Admin GraphQL `orders(first:, after:, query: "updated_at:>'…'", sortKey: UPDATED_AT)`, cursor
  pagination, the cost-based rate limit honoured). Each is compared with the order record: one
  never seen (no record) or behind (the storefront's `updated_at` is newer than the record's)
  is fetched as the REST/webhook JSON Shopify would have sent and re-emitted through the
  normal normalisation path (`storewire.sources.shopify.normalise_payload`), as the webhook
  topics it stands for, with delivery ids derived from (order id, updated_at, topic): two runs
  re-emit the same event ids, and consumers drop the second.
  The watermark moves only over what was fully handled: the `updated_at` of the last handled
  order (listed in ascending `updated_at`), minus an overlap for clock skew, and never
  backwards. A run that dies half way (or runs out of time, or is throttled past its time)
  leaves the watermark where the last handled order put it: nothing is lost on the next run.
  The report's `last_handled_updated_at` is that order's own `updated_at` (no overlap, no
  stored watermark): a resumable cursor for `storewire backfill orders`.
* **stock**: every channel listing's available (read from the channel) is compared with the
  ledger's; a drifted listing is set to the ledger's available, compare-and-set against the
  quantity just read (`ChannelInventory.set_available`, as channel sync does).
* **payments**: orders whose payment is still pending past a threshold are re-checked with
  the gateway: an `OrderPaymentReported` built from the storefront's order (as `orders/paid`
  would be) goes to the bus and the payment confirmation consumer verifies it with the
  gateway (its normal path: confirmed once, whatever the number of reports).

Each run returns a `ReconciliationReport` (the counts) that the handler publishes as
`ReconciliationCompleted` and as metrics.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from storewire.domain.channels import ALL_LOCATIONS, ChannelListing, StaleQuantity
from storewire.domain.events import (
    CanonicalEvent,
    ReconciliationCompleted,
    ReconciliationData,
    canonical_order_id,
    event_id,
)
from storewire.domain.inventory import StockLevel
from storewire.domain.orders import OrderRecord, PaymentStatus
from storewire.errors import StorewireError
from storewire.ports import ClaimCheckStore, EventPublisher
from storewire.sources.shopify import SOURCE, normalise_payload

logger = logging.getLogger(__name__)

Kind = Literal["orders", "stock", "payments"]
KINDS: tuple[Kind, ...] = ("orders", "stock", "payments")

DEFAULT_OVERLAP = timedelta(minutes=5)
DEFAULT_LOOKBACK = timedelta(days=1)
DEFAULT_PAYMENT_THRESHOLD = timedelta(minutes=30)
DEFAULT_PAGE_SIZE = 50
TIME_RESERVE_SECONDS = 5.0
"""Time kept back from the Lambda's remaining time to save the watermark and report."""


# --------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class Throttle:
    """`extensions.cost` of the last GraphQL answer."""

    requested: float
    available: float
    restore_rate: float

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` points are back in the bucket (0: they are)."""
        if self.available >= cost or self.restore_rate <= 0:
            return 0.0
        return (cost - self.available) / self.restore_rate


@dataclass(frozen=True)
class OrderSummary:
    external_order_id: str
    updated_at: datetime


@dataclass(frozen=True)
class OrderPage:
    orders: tuple[OrderSummary, ...]
    has_next_page: bool
    end_cursor: str | None
    throttle: Throttle | None = None


class StorefrontOrders(Protocol):
    """The storefront's orders, as the reconciliation reads them."""

    def list_updated(
        self, shop: str, since: datetime, *, first: int, after: str | None
    ) -> OrderPage:
        """Orders with `updated_at > since`, oldest update first, one page."""
        ...

    def fetch_order(self, shop: str, external_order_id: str) -> dict[str, Any] | None:
        """The order as its REST/webhook JSON (the payload `orders/*` webhooks carry)."""
        ...


class WatermarkStore(Protocol):
    def get(self, kind: str, shop: str) -> datetime | None: ...

    def advance(self, kind: str, shop: str, at: datetime) -> None:
        """Store `at` unless the stored watermark is already later."""
        ...


class ReconcileOrders(Protocol):
    """The order record, as the reconciliation reads it."""

    def get(self, order_id: str) -> OrderRecord | None: ...

    def pending_payments(self) -> Iterable[OrderRecord]:
        """Every order whose payment concern is still `pending`."""
        ...

    def record_storefront_update(self, event: CanonicalEvent) -> bool:
        """Merge a newer storefront snapshot into the record (`OrderStore`'s guard)."""
        ...


class ListingScan(Protocol):
    def all_listings(self) -> Iterable[ChannelListing]: ...


class LedgerLevels(Protocol):
    def levels(self, skus: Iterable[str]) -> dict[str, list[StockLevel]]: ...


class ChannelQuantities(Protocol):
    def read_available(self, listing: ChannelListing, shop: str) -> int: ...

    def set_available(
        self,
        listing: ChannelListing,
        shop: str,
        *,
        quantity: int,
        change_from: int | None,
        idempotency_key: str,
        reference: str,
    ) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Budget:
    """The time a run may still spend (the Lambda's remaining time, less a reserve)."""

    remaining: Callable[[], float] = field(default=lambda: 600.0)
    sleep: Callable[[float], None] = time.sleep
    reserve: float = TIME_RESERVE_SECONDS

    def left(self) -> float:
        return self.remaining() - self.reserve

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds` if that fits the budget; False (no sleep) if it does not."""
        if seconds <= 0:
            return True
        if seconds > self.left():
            return False
        self.sleep(seconds)
        return True


@dataclass(frozen=True)
class ReconcileDeps:
    shop: str
    orders: ReconcileOrders
    publisher: EventPublisher
    storefront: StorefrontOrders | None = None
    watermarks: WatermarkStore | None = None
    listings: ListingScan | None = None
    ledger: LedgerLevels | None = None
    channels: dict[str, ChannelQuantities] = field(default_factory=dict)
    claim_checks: ClaimCheckStore | None = None
    clock: Callable[[], datetime] = _utcnow
    budget: Budget = field(default_factory=Budget)
    overlap: timedelta = DEFAULT_OVERLAP
    lookback: timedelta = DEFAULT_LOOKBACK
    payment_threshold: timedelta = DEFAULT_PAYMENT_THRESHOLD
    page_size: int = DEFAULT_PAGE_SIZE


@dataclass
class ReconciliationReport:
    kind: Kind
    shop: str
    started_at: datetime
    checked: int = 0
    corrected: int = 0
    missing: int = 0
    behind: int = 0
    republished: int = 0
    failed: int = 0
    pages: int = 0
    throttled_waits: int = 0
    complete: bool = True
    since: datetime | None = None
    watermark: datetime | None = None
    last_handled_updated_at: datetime | None = None
    details: list[dict[str, Any]] = field(default_factory=list)

    def data(self, finished_at: datetime) -> ReconciliationData:
        return ReconciliationData(
            kind=self.kind,
            checked=self.checked,
            corrected=self.corrected,
            missing=self.missing,
            behind=self.behind,
            republished=self.republished,
            failed=self.failed,
            pages=self.pages,
            throttled_waits=self.throttled_waits,
            complete=self.complete,
            since=self.since,
            watermark=self.watermark,
            last_handled_updated_at=self.last_handled_updated_at,
            started_at=self.started_at,
            finished_at=finished_at,
            corrections=tuple(self.details[:50]),
        )


# --------------------------------------------------------------------------- orders


def delivery_id(kind: str, order_id: str, at: datetime, topic: str) -> str:
    """The synthetic delivery id of a re-emitted topic: the same inputs, the same event ids."""
    return f"reconcile:{kind}:{order_id}:{at.astimezone(UTC).isoformat()}:{topic}"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def topics_for(payload: dict[str, Any], record: OrderRecord | None) -> list[str]:
    """The webhook topics a storefront order stands for, given what the record already has.

    Never seen: `orders/create`, then `orders/paid` if paid and `orders/cancelled` if
    cancelled. Behind: `orders/updated`, plus the payment report while the record's payment is
    still pending, and the cancellation when the record does not have it yet.
    """
    paid = str(payload.get("financial_status") or "").lower() in ("paid", "partially_refunded")
    cancelled = bool(payload.get("cancelled_at"))
    topics = ["orders/create" if record is None else "orders/updated"]
    if paid and (record is None or record.payment.status == PaymentStatus.PENDING):
        topics.append("orders/paid")
    if cancelled and (record is None or record.cancelled_at is None):
        topics.append("orders/cancelled")
    return topics


def events_for(
    shop: str, payload: dict[str, Any], record: OrderRecord | None
) -> tuple[CanonicalEvent, ...]:
    """The canonical events the webhooks of this order would have produced."""
    external = str(payload["id"])
    updated_at = _parse_time(payload.get("updated_at")) or datetime.fromtimestamp(0, UTC)
    order_id = canonical_order_id(SOURCE, shop, external)
    events: list[CanonicalEvent] = []
    for topic in topics_for(payload, record):
        events.extend(
            normalise_payload(
                topic,
                payload,
                shop=shop,
                delivery_id=delivery_id("orders", order_id, updated_at, topic),
                occurred_at=None,
            )
        )
    return tuple(events)


def _publish(deps: ReconcileDeps, events: Sequence[CanonicalEvent]) -> None:
    from storewire.ingest import prepare_entries  # the webhook's own claim-check path

    if deps.claim_checks is not None:
        _, entries = prepare_entries(events, deps.claim_checks)
    else:
        from storewire.domain.events import to_bus_entry

        entries = [to_bus_entry(e) for e in events]
    deps.publisher.publish(entries)


def reconcile_orders(deps: ReconcileDeps, since: datetime | None = None) -> ReconciliationReport:
    """Orders updated since the watermark (or `since`): re-emit the missing and the behind."""
    if deps.storefront is None or deps.watermarks is None:
        raise ValueError("orders reconciliation needs a storefront and a watermark store")
    now = deps.clock()
    report = ReconciliationReport(kind="orders", shop=deps.shop, started_at=now)
    stored = deps.watermarks.get("orders", deps.shop)
    start = since or stored or (now - deps.lookback)
    report.since = start
    last_done: datetime | None = None
    cursor: str | None = None
    throttle: Throttle | None = None
    next_cost = float(deps.page_size + 2)
    while True:
        if throttle is not None:
            wait = throttle.wait_for(next_cost)
            if wait > 0:
                report.throttled_waits += 1
                if not deps.budget.wait(wait):
                    report.complete = False
                    break
        if deps.budget.left() <= 0:
            report.complete = False
            break
        page = deps.storefront.list_updated(deps.shop, start, first=deps.page_size, after=cursor)
        report.pages += 1
        throttle = page.throttle
        if throttle is not None:
            next_cost = max(next_cost, throttle.requested)
        stopped = False
        for summary in page.orders:
            if deps.budget.left() <= 0:
                stopped = True
                break
            try:
                _reconcile_order(deps, summary, report)
            except StorewireError as error:
                # Stop here: the watermark stays before this order, the next run retries it.
                logger.warning(
                    "order reconciliation failed",
                    extra={"external_order_id": summary.external_order_id, "error": str(error)},
                )
                report.failed += 1
                stopped = True
                break
            last_done = summary.updated_at
        if stopped:
            report.complete = False
            break
        if not page.has_next_page or not page.end_cursor:
            break
        cursor = page.end_cursor
    report.last_handled_updated_at = last_done
    if last_done is not None:
        mark = max(last_done - deps.overlap, stored) if stored else last_done - deps.overlap
        deps.watermarks.advance("orders", deps.shop, mark)
        report.watermark = mark
    else:
        report.watermark = stored
    return report


def _reconcile_order(
    deps: ReconcileDeps, summary: OrderSummary, report: ReconciliationReport
) -> None:
    assert deps.storefront is not None
    report.checked += 1
    order_id = canonical_order_id(SOURCE, deps.shop, summary.external_order_id)
    record = deps.orders.get(order_id)
    if record is not None and summary.updated_at <= record.storefront_updated_at:
        return
    payload = deps.storefront.fetch_order(deps.shop, summary.external_order_id)
    if payload is None:
        return
    events = events_for(deps.shop, payload, record)
    _publish(deps, events)
    if record is not None:
        # The record takes the snapshot now (no consumer merges `OrderUpdated` into it), so
        # the next run finds it up to date instead of re-emitting it every time.
        for event in events:
            if event.event_type == "OrderUpdated":
                deps.orders.record_storefront_update(event)
    if record is None:
        report.missing += 1
    else:
        report.behind += 1
    report.corrected += 1
    report.republished += len(events)
    report.details.append(
        {
            "order_id": order_id,
            "why": "missing" if record is None else "behind",
            "updated_at": summary.updated_at.isoformat(),
            "events": [e.event_type for e in events],
        }
    )


# --------------------------------------------------------------------------- payments


def _recorded_at(record: OrderRecord) -> datetime:
    return record.timeline[0].at if record.timeline else record.storefront_updated_at


def recheck_bucket(now: datetime, every: timedelta = timedelta(minutes=15)) -> str:
    """The schedule slot of a run: one re-check per order per slot, whatever the retries."""
    seconds = int(every.total_seconds())
    return str(int(now.timestamp()) // seconds * seconds)


def reconcile_payments(deps: ReconcileDeps) -> ReconciliationReport:
    """Orders pending payment past the threshold: re-checked through payment confirmation."""
    if deps.storefront is None:
        raise ValueError("payments reconciliation needs the storefront")
    now = deps.clock()
    report = ReconciliationReport(kind="payments", shop=deps.shop, started_at=now)
    slot = recheck_bucket(now)
    for record in deps.orders.pending_payments():
        if record.shop != deps.shop or record.cancelled_at is not None:
            continue
        if now - _recorded_at(record) < deps.payment_threshold:
            continue
        if deps.budget.left() <= 0:
            report.complete = False
            break
        report.checked += 1
        try:
            payload = deps.storefront.fetch_order(record.shop, record.external_order_id)
            if payload is None:
                continue
            events = normalise_payload(
                "orders/paid",
                payload,
                shop=record.shop,
                delivery_id=f"reconcile:payments:{record.order_id}:{slot}",
                occurred_at=now,
            )
            _publish(deps, events)
        except StorewireError as error:
            report.failed += 1
            logger.warning(
                "payment re-check failed", extra={"order_id": record.order_id, "error": str(error)}
            )
            continue
        report.corrected += 1
        report.republished += len(events)
        report.details.append({"order_id": record.order_id, "why": "payment pending"})
    return report


# --------------------------------------------------------------------------- stock drift


def ledger_available(levels: Sequence[StockLevel], location: str) -> int | None:
    """What the ledger says a listing of `location` should show (never below 0)."""
    if location == ALL_LOCATIONS:
        return max(0, sum(level.available for level in levels))
    for level in levels:
        if level.location == location:
            return max(0, level.available)
    return None


def drift_key(listing: ChannelListing, shop: str, change_from: int, quantity: int) -> str:
    raw = f"reconcile|{listing.sku}|{listing.key}|{shop}|{change_from}|{quantity}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def reconcile_stock(deps: ReconcileDeps) -> ReconciliationReport:
    """Every channel listing compared with the ledger; drifted ones set to the ledger's."""
    if deps.listings is None or deps.ledger is None:
        raise ValueError("stock reconciliation needs the listings and the ledger")
    now = deps.clock()
    report = ReconciliationReport(kind="stock", shop=deps.shop, started_at=now)
    listings = list(deps.listings.all_listings())
    levels = deps.ledger.levels({listing.sku for listing in listings})
    for listing in listings:
        if deps.budget.left() <= 0:
            report.complete = False
            break
        channel = deps.channels.get(listing.channel)
        want = ledger_available(levels.get(listing.sku, []), listing.location)
        if channel is None or want is None:
            continue
        shop = listing.shop_for(deps.shop)
        report.checked += 1
        try:
            have = channel.read_available(listing, shop)
            if have == want:
                continue
            channel.set_available(
                listing,
                shop,
                quantity=want,
                change_from=have,
                idempotency_key=drift_key(listing, shop, have, want),
                reference=f"storewire://reconcile/stock/{listing.sku}",
            )
        except StaleQuantity:
            # It moved while we looked: someone is changing it now; the next run decides.
            report.failed += 1
            continue
        except StorewireError as error:
            report.failed += 1
            logger.warning(
                "drift correction failed", extra={"sku": listing.sku, "error": str(error)}
            )
            continue
        report.corrected += 1
        report.details.append(
            {"sku": listing.sku, "listing": listing.key, "channel": have, "ledger": want}
        )
    return report


# --------------------------------------------------------------------------- a run


def run(kind: Kind, deps: ReconcileDeps, since: datetime | None = None) -> ReconciliationReport:
    """One reconciliation of `kind`, its `ReconciliationCompleted` published."""
    if kind == "orders":
        report = reconcile_orders(deps, since)
    elif kind == "payments":
        report = reconcile_payments(deps)
    elif kind == "stock":
        report = reconcile_stock(deps)
    else:
        raise ValueError(f"unknown reconciliation {kind!r}")
    finished = deps.clock()
    completed = completed_event(report, finished)
    deps.publisher.publish([_entry(completed)])
    return report


def completed_event(report: ReconciliationReport, finished_at: datetime) -> ReconciliationCompleted:
    run_id = f"{report.kind}:{report.shop}:{report.started_at.isoformat()}"
    return ReconciliationCompleted(
        event_id=event_id("storewire", f"reconcile|{run_id}", "ReconciliationCompleted", 0),
        occurred_at=finished_at,
        source="reconciliation",
        shop=report.shop,
        channel=SOURCE,
        correlation_id=f"reconcile:{run_id}",
        delivery_id=f"reconcile:{run_id}",
        data=report.data(finished_at),
    )


def _entry(event: CanonicalEvent) -> Any:
    from storewire.domain.events import to_bus_entry

    return to_bus_entry(event)
