"""Label creation: one shipping label per order, bought once, whatever crashes in between.

Pure of AWS and HTTP: the carrier aggregator, the label table, the order records, the
storefront and the bus are ports (below), so the same code runs on Lambda and in unit tests.

=====================================  =====================================================
event                                  effect
=====================================  =====================================================
OrderPlaced, OrderUpdated,             keep the order's shipping snapshot (address, lines,
OrderCancelled                         weights) in the label record; newer storefront
                                       `updated_at` only
StockCommitted                         buy the label (below), then: order record `shipment`
                                       -> label_created, storefront fulfilment, LabelCreated
ShipmentStatusChanged                  tracking (EasyPost `tracker.updated`): the order is
                                       found through the shipment; the update is applied
                                       once, never older than the last, never after
                                       `delivered`; the order record's `shipment` moves to
                                       `shipped` / `delivered` (else a timeline entry)
=====================================  =====================================================

**A label is bought once.** The label record (`LabelStore`, keyed by order id) is the
once-guard, written before every step that costs or could cost money:

1. *claim* - a conditional write records the intent and takes a lease (owner = this
   attempt). A live lease of another attempt -> `LabelInProgress` (retryable). A record
   already `purchased` skips to step 5.
2. *find* - the shipment recorded by an earlier attempt is read back; on a retry with none
   recorded (a crash between create and record), the carrier is asked for shipments tagged
   with the order's `reference` before anything is created. On any retry a shipment already
   bought under that reference is adopted, never bought again.
3. *create* - `POST /v2/shipments` with the reference; its id is recorded at once
   (conditioned on still holding the lease, which also renews it).
4. *buy* - the rate the policy picks. The carrier refuses a second purchase of one shipment
   (EasyPost 422 `SHIPMENT.POSTAGE.EXISTS`, which the adapter answers with the shipment), so
   the buy is safe to resend after a lost answer.
5. *record* - the purchase is written once (first purchase wins); then, each at most once
   and marked done on the record: the order record transition, the storefront fulfilment
   (`StorefrontFulfilment`, optional until the Shopify implementation lands), and the
   `LabelCreated` event (deterministic id per order; published before it is marked, so a
   crash in between republishes the same id).

A crash after the buy call (bought at the carrier, not recorded) leaves the shipment id on
the record; the retry - after the lease expired (SQS redelivers after the visibility
timeout, longer than the lease) - reads the shipment, sees it bought and records it.

**Failures.** Carrier 5xx/429/timeouts are retried by `storewire.http`; what is left is a
`RetryableError` and SQS redelivers. A 4xx (an address the carrier refuses, 422) or no rate
that fits the policy is a `PermanentError`: the record and the order's `shipment` concern
are marked failed with the reason, the lease is released, and the handler dead-letters the
message at once (a redrive after fixing the cause tries again).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from storewire.domain.events import (
    Address,
    CanonicalEvent,
    OrderData,
    StockMoveData,
    to_bus_entry,
)
from storewire.domain.orders import OrderNotFound, OrderStore, ShipmentStatus, applied_key
from storewire.domain.shipments import (
    LABELS_SOURCE,
    ORDER_SHIPMENT_STATUS,
    CarrierShipment,
    InvalidShipment,
    LabelCreated,
    LabelData,
    LabelPurchase,
    LabelRecord,
    LabelStep,
    ParcelPolicy,
    RatePolicy,
    ShipmentRequest,
    ShipmentStatusData,
    ShippingDetailsMissing,
    ShippingOrder,
    TrackingBeforeLabel,
    TrackingState,
    build_parcel,
    choose_rate,
    label_event_id,
    label_reference,
    lines_to_ship,
    pick_existing,
    shipping_order,
)
from storewire.errors import PermanentError
from storewire.ports import EventPublisher

logger = logging.getLogger(__name__)

SNAPSHOT_EVENT_TYPES = frozenset({"OrderPlaced", "OrderUpdated", "OrderCancelled"})
LABEL_EVENT_TYPES = frozenset({"StockCommitted"})
TRACKING_EVENT_TYPES = frozenset({"ShipmentStatusChanged"})
HANDLED_EVENT_TYPES = SNAPSHOT_EVENT_TYPES | LABEL_EVENT_TYPES | TRACKING_EVENT_TYPES

FIND_WINDOW = timedelta(days=2)
"""How far back before the claim the carrier is searched for the order's shipments."""


# --------------------------------------------------------------------------- ports


class Carrier(Protocol):
    """A carrier aggregator that rates and sells labels (EasyPost; a fake in tests)."""

    name: str

    def create_shipment(self, request: ShipmentRequest) -> CarrierShipment:
        """Create a shipment tagged with `request.reference`; it comes back rated."""
        ...

    def get_shipment(self, shipment_id: str) -> CarrierShipment:
        """The shipment as the carrier holds it now (bought or not)."""
        ...

    def find_shipments(self, reference: str, *, since: datetime | None) -> list[CarrierShipment]:
        """Shipments tagged `reference` created since `since` (newest first)."""
        ...

    def buy(self, shipment_id: str, rate_id: str) -> CarrierShipment:
        """Buy `rate_id` for the shipment; a shipment bought before comes back as it is."""
        ...


class LabelStore(Protocol):
    """Label records by order id (DynamoDB label table; in memory in tests).

    Every write is conditional: the claim takes a lease only when no other attempt holds a
    live one and nothing was bought; the shipment id is recorded only by the lease holder;
    the purchase is recorded once (a second, different purchase is refused).
    """

    def get(self, order_id: str) -> LabelRecord | None:
        """The order's label record (strongly consistent), or None."""
        ...

    def save_order(self, order: ShippingOrder) -> bool:
        """Keep the shipping snapshot if newer (storefront `updated_at`) than the stored one."""
        ...

    def claim(
        self, order_id: str, *, owner: str, reference: str, now: datetime, lease_seconds: int
    ) -> LabelRecord:
        """Record the intent and take the lease; the record as it stands after the claim.

        A purchased record is returned as is (no lease needed). Another attempt's live
        lease raises `LabelInProgress`.
        """
        ...

    def record_shipment(
        self, order_id: str, *, owner: str, shipment_id: str, now: datetime, lease_seconds: int
    ) -> None:
        """Record the carrier shipment and renew the lease; `LabelInProgress` if it was lost."""
        ...

    def record_purchase(
        self, order_id: str, purchase: LabelPurchase, *, now: datetime
    ) -> LabelRecord:
        """Record the purchase once; the stored record (with the first purchase) either way."""
        ...

    def record_failure(self, order_id: str, *, owner: str, reason: str, now: datetime) -> None:
        """Mark a permanent failure and release the lease (no-op once purchased)."""
        ...

    def mark_steps(self, order_id: str, steps: Collection[LabelStep], *, now: datetime) -> None:
        """Note that steps after the purchase are done (one write for all; none: no write)."""
        ...

    def find_by_shipment(self, shipment_id: str) -> LabelRecord | None:
        """The label record of a carrier shipment (tracking webhooks name the shipment)."""
        ...

    def record_tracking(self, order_id: str, state: TrackingState, *, now: datetime) -> bool:
        """Keep `state` as the last tracking applied, if `tracking_update_applies` to it (or it
        is the same event again); False when the update is stale or after `delivered`."""
        ...


@dataclass(frozen=True)
class FulfilmentRequest:
    """What the storefront needs to mark the order fulfilled with its tracking."""

    order_id: str
    external_order_id: str
    shop: str
    channel: str
    carrier: str
    service: str
    tracking_number: str
    idempotency_key: str


class StorefrontFulfilment(Protocol):
    """Pushes the fulfilment with carrier and tracking number to the storefront, idempotently
    (Shopify `fulfillmentCreate` on the order's fulfillment orders: a later step)."""

    def push(self, request: FulfilmentRequest) -> str | None:
        """Create the fulfilment once per `idempotency_key`; the storefront's id if known."""
        ...


# --------------------------------------------------------------------------- configuration


class LabelPolicies:
    """Where parcels ship from, how they are sized, which rate is bought, the lease."""

    def __init__(
        self,
        ship_from: Address,
        *,
        rates: RatePolicy | None = None,
        parcel: ParcelPolicy | None = None,
        lease_seconds: int = 120,
    ) -> None:
        self.ship_from = ship_from
        self.rates = rates or RatePolicy()
        self.parcel = parcel or ParcelPolicy()
        self.lease_seconds = lease_seconds


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _attempt_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class LabelDeps:
    """The ports label creation works with (wired once per cold start)."""

    carrier: Carrier
    labels: LabelStore
    publisher: EventPublisher
    policies: LabelPolicies
    orders: OrderStore | None = None
    fulfilment: StorefrontFulfilment | None = None
    clock: Callable[[], datetime] = _utcnow
    new_owner: Callable[[], str] = field(default=_attempt_id)


Action = Literal[
    "snapshot",
    "unchanged",
    "created",
    "already_created",
    "failed",
    "ignored",
    "tracking_applied",
    "tracking_stale",
]


@dataclass(frozen=True)
class LabelResult:
    action: Action
    order_id: str | None
    purchase: LabelPurchase | None = None
    published: tuple[str, ...] = ()
    reason: str = ""


# --------------------------------------------------------------------------- the service


def handle_label_event(event: CanonicalEvent, deps: LabelDeps) -> LabelResult:
    """Apply one event of the label creation queue (see the module docstring)."""
    if event.event_type in SNAPSHOT_EVENT_TYPES and isinstance(event.data, OrderData):
        saved = deps.labels.save_order(shipping_order(event))
        return LabelResult("snapshot" if saved else "unchanged", event.order_id)
    if event.event_type in LABEL_EVENT_TYPES:
        return create_label(event, deps)
    if event.event_type in TRACKING_EVENT_TYPES:
        return apply_tracking(event, deps)
    return LabelResult("ignored", event.order_id, reason=f"{event.event_type} is not handled")


def committed_units(event: CanonicalEvent) -> dict[str, int] | None:
    """Units per line a StockCommitted moved out of stock (None when it says nothing)."""
    data = event.data
    if isinstance(data, StockMoveData):
        return {line.line_id: line.reserved for line in data.lines}
    if isinstance(data, Mapping) and isinstance(data.get("lines"), list):
        parsed = StockMoveData.model_validate(data)
        return {line.line_id: line.reserved for line in parsed.lines}
    return None


def create_label(event: CanonicalEvent, deps: LabelDeps) -> LabelResult:
    """Buy the order's label once and follow it up (see the module docstring)."""
    order_id = event.order_id
    if not order_id:
        raise InvalidShipment(f"{event.event_type} {event.event_id} names no order")
    record = deps.labels.get(order_id)
    if record is not None and record.purchased:
        return _follow_up(event, record, deps, action="already_created")
    order = record.order if record is not None else None
    if order is None:
        raise ShippingDetailsMissing(
            f"no shipping details for {order_id} yet ({event.event_type} {event.event_id} "
            "arrived before its OrderPlaced reached label creation)"
        )
    if order.cancelled:
        return LabelResult("ignored", order_id, reason="the order is cancelled")

    owner = deps.new_owner()
    reference = label_reference(order_id)
    retry = record is not None and record.status is not None
    record = deps.labels.claim(
        order_id,
        owner=owner,
        reference=reference,
        now=deps.clock(),
        lease_seconds=deps.policies.lease_seconds,
    )
    if record.purchased:
        return _follow_up(event, record, deps, action="already_created")
    try:
        shipment = _shipment(event, record, order, owner, retry, deps)
        if not shipment.purchased:
            rate = choose_rate(
                shipment.rates, deps.policies.rates, carrier_messages=shipment.messages
            )
            logger.info(
                "buying label",
                extra={
                    "order_id": order_id,
                    "shipment_id": shipment.shipment_id,
                    "carrier": rate.carrier,
                    "service": rate.service,
                    "cost": str(rate.amount),
                },
            )
            shipment = deps.carrier.buy(shipment.shipment_id, rate.rate_id)
    except PermanentError as error:
        _fail(event, order_id, owner, error, deps)
        raise
    purchase = LabelPurchase.from_shipment(shipment, deps.clock())
    record = deps.labels.record_purchase(order_id, purchase, now=deps.clock())
    return _follow_up(event, record, deps, action="created")


def _shipment(
    event: CanonicalEvent,
    record: LabelRecord,
    order: ShippingOrder,
    owner: str,
    retry: bool,
    deps: LabelDeps,
) -> CarrierShipment:
    """The carrier shipment to buy (or already bought): found again, else created."""
    reference = record.reference or label_reference(order.order_id)
    shipment: CarrierShipment | None = None
    if record.shipment_id:
        shipment = deps.carrier.get_shipment(record.shipment_id)
    if retry and (shipment is None or not shipment.purchased):
        since = (record.claimed_at or deps.clock()) - FIND_WINDOW
        found = pick_existing(deps.carrier.find_shipments(reference, since=since), reference)
        if found is not None and (shipment is None or found.purchased):
            logger.info(
                "found the order's shipment at the carrier",
                extra={
                    "order_id": order.order_id,
                    "shipment_id": found.shipment_id,
                    "purchased": found.purchased,
                },
            )
            shipment = found
    if shipment is None:
        shipment = deps.carrier.create_shipment(_request(event, order, reference, deps))
    # Recorded before buying, by the lease holder only (this also renews the lease).
    deps.labels.record_shipment(
        order.order_id,
        owner=owner,
        shipment_id=shipment.shipment_id,
        now=deps.clock(),
        lease_seconds=deps.policies.lease_seconds,
    )
    return shipment


def _request(
    event: CanonicalEvent, order: ShippingOrder, reference: str, deps: LabelDeps
) -> ShipmentRequest:
    if order.ship_to is None or not order.ship_to.address1:
        raise InvalidShipment(f"order {order.order_id} has no shipping address")
    lines = lines_to_ship(order, committed_units(event))
    return ShipmentRequest(
        reference=reference,
        to_address=order.ship_to,
        from_address=deps.policies.ship_from,
        parcel=build_parcel(lines, deps.policies.parcel),
    )


def _fail(
    event: CanonicalEvent, order_id: str, owner: str, error: PermanentError, deps: LabelDeps
) -> None:
    reason = f"{type(error).__name__}: {error.message}"[:500]
    now = deps.clock()
    deps.labels.record_failure(order_id, owner=owner, reason=reason, now=now)
    if deps.orders is not None:
        try:
            deps.orders.transition(
                order_id,
                "shipment",
                ShipmentStatus.FAILED,
                event_id=event.event_id,
                at=now,
                details={"status": ShipmentStatus.FAILED.value, "reason": reason},
                event_type="LabelFailed",
                summary=f"label not created: {reason}"[:300],
            )
        except OrderNotFound:
            logger.info("no order record to mark failed", extra={"order_id": order_id})
    logger.error("label failed permanently", extra={"order_id": order_id, "reason": reason})


def _follow_up(
    event: CanonicalEvent, record: LabelRecord, deps: LabelDeps, *, action: Action
) -> LabelResult:
    """The steps after the purchase: order record, storefront, LabelCreated.

    Each step is idempotent on its own (the order record applies an event id once, the
    storefront push finds an existing fulfilment first, `LabelCreated` has a fixed id), so the
    steps done are marked with one write at the end rather than one write each; when a step
    fails, those done before it are marked on the way out. A crash in between only makes a
    redelivery redo a step, to no effect: the marks spare those redos, they do not make them
    safe.
    """
    purchase = record.purchase
    assert purchase is not None
    order_id = record.order_id
    label_id = label_event_id(order_id)
    done: list[LabelStep] = []
    published: tuple[str, ...] = ()
    try:
        if "order" not in record.steps and deps.orders is not None:
            deps.orders.transition(
                order_id,
                "shipment",
                ShipmentStatus.LABEL_CREATED,
                event_id=label_id,
                at=purchase.purchased_at,
                details=purchase.concern_details(),
                event_type="LabelCreated",
                summary=f"label {purchase.carrier} {purchase.service} {purchase.tracking_number}",
            )
            done.append("order")
        if "fulfilment" not in record.steps and deps.fulfilment is not None:
            order = record.order
            deps.fulfilment.push(
                FulfilmentRequest(
                    order_id=order_id,
                    external_order_id=order.external_order_id
                    if order
                    else event.external_order_id or "",
                    shop=order.shop if order else event.shop,
                    channel=order.channel if order else event.channel,
                    carrier=purchase.carrier,
                    service=purchase.service,
                    tracking_number=purchase.tracking_number,
                    idempotency_key=label_id,
                )
            )
            done.append("fulfilment")
        if "published" not in record.steps:
            deps.publisher.publish([to_bus_entry(label_created(event, record))])
            done.append("published")
            published = (label_id,)
            logger.info(
                "LabelCreated published",
                extra={
                    "order_id": order_id,
                    "event_id": label_id,
                    "shipment_id": purchase.shipment_id,
                },
            )
    except Exception:
        with contextlib.suppress(Exception):  # the step's own error is the one to report
            deps.labels.mark_steps(order_id, done, now=deps.clock())
        raise
    deps.labels.mark_steps(order_id, done, now=deps.clock())
    return LabelResult(action, order_id, purchase, published)


def label_created(cause: CanonicalEvent, record: LabelRecord) -> LabelCreated:
    """The order's LabelCreated: the same id and body however often it is rebuilt."""
    purchase = record.purchase
    assert purchase is not None
    order = record.order
    return LabelCreated(
        event_id=label_event_id(record.order_id),
        occurred_at=purchase.purchased_at,
        source=LABELS_SOURCE,
        shop=order.shop if order else cause.shop,
        channel=order.channel if order else cause.channel,
        order_id=record.order_id,
        external_order_id=order.external_order_id if order else cause.external_order_id,
        customer_id=cause.customer_id,
        correlation_id=record.order_id,
        delivery_id=cause.event_id,
        data=LabelData(
            carrier=purchase.carrier,
            service=purchase.service,
            tracking_number=purchase.tracking_number,
            label_url=purchase.label_url,
            cost=purchase.cost,
            shipment_id=purchase.shipment_id,
            rate_id=purchase.rate_id,
            tracker_id=purchase.tracker_id,
            purchased_at=purchase.purchased_at,
        ),
    )


# --------------------------------------------------------------------------- tracking


def apply_tracking(event: CanonicalEvent, deps: LabelDeps) -> LabelResult:
    """Apply a carrier tracking update (`ShipmentStatusChanged`) to the order's shipment.

    1. The order is found through the shipment (`LabelStore.find_by_shipment`): the tracker
       names its shipment, not the order. A shipment Storewire did not start is ignored.
    2. Until the label's purchase is recorded and the label is on the order record, the
       update is retried (`TrackingBeforeLabel`).
    3. The label record is the guard (`record_tracking`, one conditional write): an update
       older than the last applied one, or any after `delivered`, changes nothing.
    4. The order record: `shipment` moves to the status the tracking implies (`shipped`,
       `delivered`; once per event id, along the concern's graph, so never back), with the
       tracking details; other statuses (pre-transit, exception, returned...) only add a
       timeline entry.
    """
    data = event.data
    if not isinstance(data, ShipmentStatusData):
        raise InvalidShipment(f"{event.event_type} {event.event_id} carries no tracking data")
    record: LabelRecord | None = None
    if event.order_id:
        record = deps.labels.get(event.order_id)
    elif data.shipment_id:
        record = deps.labels.find_by_shipment(data.shipment_id)
    if (
        record is not None
        and record.purchase is None
        and record.shipment_id
        and record.shipment_id == (data.shipment_id or record.shipment_id)
    ):
        # an attempt started this shipment and its purchase is not recorded yet (in flight,
        # or the attempt died after buying): the label may still land, so retry
        raise TrackingBeforeLabel(
            f"tracking for {record.order_id} arrived before its label purchase was recorded"
        )
    if record is None or record.purchase is None:
        logger.info(
            "tracking for a shipment without a label here: ignored",
            extra={"shipment_id": data.shipment_id, "tracker_id": data.tracker_id},
        )
        return LabelResult("ignored", event.order_id, reason="no label for this shipment")
    order_id = record.order_id
    if deps.orders is not None and "order" not in record.steps:
        raise TrackingBeforeLabel(
            f"tracking for {order_id} arrived before its label was recorded on the order"
        )
    state = TrackingState(status=data.status, updated_at=data.updated_at, event_id=event.event_id)
    if not deps.labels.record_tracking(order_id, state, now=deps.clock()):
        logger.info(
            "stale tracking update ignored",
            extra={"order_id": order_id, "status": data.status.value},
        )
        return LabelResult("tracking_stale", order_id, reason="older than the applied tracking")
    if deps.orders is not None:
        _apply_tracking_to_order(event, order_id, data, deps.orders)
    logger.info("tracking applied", extra={"order_id": order_id, "status": data.status.value})
    return LabelResult("tracking_applied", order_id, record.purchase)


def _apply_tracking_to_order(
    event: CanonicalEvent, order_id: str, data: ShipmentStatusData, orders: OrderStore
) -> None:
    current = orders.get(order_id)
    if current is None:
        raise OrderNotFound(f"no order record for {order_id}")
    if applied_key("shipment", event.event_id) in current.applied:
        return  # a redelivery after the order step
    latest = data.latest.message if data.latest and data.latest.message else None
    summary = f"tracking {data.status.value}" + (f": {latest}" if latest else "")
    implied = ORDER_SHIPMENT_STATUS.get(data.status)
    if implied is not None and orders.transition(
        order_id,
        "shipment",
        implied,
        event_id=event.event_id,
        at=data.updated_at,
        details={
            "tracking_status": data.status.value,
            "tracking_updated_at": data.updated_at.isoformat(),
            "tracking_url": data.public_url,
            "est_delivery_date": (
                data.est_delivery_date.isoformat() if data.est_delivery_date else None
            ),
        },
        event_type=event.event_type,
        summary=summary[:300],
    ):
        return
    orders.append_timeline(
        order_id,
        event_id=event.event_id,
        event_type=event.event_type,
        at=data.updated_at,
        summary=summary[:300],
    )
