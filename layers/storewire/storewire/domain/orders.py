"""The order record: one order's story, per concern, with guarded transitions. Pure.

An order record holds the storefront's view of the order (totals, `updated_at`) and the
state Storewire keeps per concern: `payment`, `stock`, later `shipment` and `crm`. Each
concern moves along its own transition graph (`TRANSITIONS`); a transition is applied at
most once per (concern, event id) and never to a state the graph does not allow, so
duplicates, redeliveries and late events cannot roll an order back. The storefront snapshot
is only replaced by one with a newer storefront `updated_at` (a late `orders/updated` never
wins over a newer one).

Every change is computed here, by pure functions that return a new record (or None when
nothing applies); the stores (`storewire.ports.OrderStore`) only persist the result under
an optimistic version check. The timeline keeps what was applied: event id, type, time and
a one-line summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from storewire.domain.events import CanonicalEvent, OrderData, OrderTotals
from storewire.errors import PrerequisiteMissing

Concern = Literal["payment", "stock", "shipment", "crm"]
CONCERNS: tuple[Concern, ...] = ("payment", "stock", "shipment", "crm")


class PaymentStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    MISMATCH = "mismatch"
    REFUNDED = "refunded"


class StockStatus(StrEnum):
    PENDING = "pending"
    """Nothing reserved yet (the OrderPlaced has not been processed by stock adjustment)."""
    RESERVED = "reserved"
    PARTIALLY_RESERVED = "partially_reserved"
    BACKORDERED = "backordered"
    COMMITTED = "committed"
    RELEASED = "released"
    RESTOCKED = "restocked"


class ShipmentStatus(StrEnum):
    PENDING = "pending"
    LABEL_CREATED = "label_created"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    FAILED = "failed"


class CrmStatus(StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


_P, _S, _H, _C = PaymentStatus, StockStatus, ShipmentStatus, CrmStatus

TRANSITIONS: Mapping[Concern, Mapping[str, frozenset[str]]] = {
    # confirmed is final except for a refund; a mismatch waits for a person (or a later,
    # matching confirmation); a failed payment may still be paid by another attempt.
    "payment": {
        _P.PENDING: frozenset({_P.CONFIRMED, _P.FAILED, _P.MISMATCH}),
        _P.FAILED: frozenset({_P.CONFIRMED, _P.MISMATCH}),
        _P.MISMATCH: frozenset({_P.CONFIRMED, _P.FAILED, _P.REFUNDED}),
        _P.CONFIRMED: frozenset({_P.REFUNDED}),
        _P.REFUNDED: frozenset({_P.REFUNDED}),  # a second partial refund
    },
    # released and restocked end the story of the reserved units; partial restocks repeat.
    # Forward only, but a state may be skipped: the record follows the stock ledger, whose
    # moves are written before their record update, so a later move's update can land first
    # (a commit between the reservation's ledger write and its record update: pending ->
    # committed; a restock before the commit's update: reserved -> restocked). The earlier
    # update then finds a later state and is refused, instead of refusing the later one.
    "stock": {
        _S.PENDING: frozenset(
            {
                _S.RESERVED,
                _S.PARTIALLY_RESERVED,
                _S.BACKORDERED,
                _S.RELEASED,
                _S.COMMITTED,
                _S.RESTOCKED,
            }
        ),
        _S.RESERVED: frozenset({_S.COMMITTED, _S.RELEASED, _S.RESTOCKED}),
        _S.PARTIALLY_RESERVED: frozenset({_S.COMMITTED, _S.RELEASED, _S.RESTOCKED}),
        _S.BACKORDERED: frozenset({_S.COMMITTED, _S.RELEASED, _S.RESTOCKED}),
        _S.COMMITTED: frozenset({_S.RESTOCKED}),
        _S.RESTOCKED: frozenset({_S.RESTOCKED}),
        _S.RELEASED: frozenset(),
    },
    "shipment": {
        _H.PENDING: frozenset({_H.LABEL_CREATED, _H.FAILED}),
        _H.FAILED: frozenset({_H.LABEL_CREATED}),
        # A tracker may report delivered without an in-transit scan first; shipped repeats
        # (out for delivery, available for pickup: each refreshes the tracking details).
        _H.LABEL_CREATED: frozenset({_H.SHIPPED, _H.DELIVERED}),
        _H.SHIPPED: frozenset({_H.SHIPPED, _H.DELIVERED}),
        _H.DELIVERED: frozenset(),
    },
    "crm": {
        _C.PENDING: frozenset({_C.SYNCED, _C.FAILED}),
        _C.FAILED: frozenset({_C.SYNCED, _C.FAILED}),
        _C.SYNCED: frozenset({_C.SYNCED}),
    },
}
"""Per concern: status -> the statuses it may move to. Anything else is refused."""


def can_transition(concern: Concern, from_status: str, to_status: str) -> bool:
    """Whether `concern` may move from `from_status` to `to_status`."""
    return to_status in TRANSITIONS[concern].get(from_status, frozenset())


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConcernState(_Frozen):
    """Where one concern of an order stands, and what put it there."""

    status: str = "pending"
    updated_at: AwareDatetime | None = None
    event_id: str | None = Field(default=None, description="The event that set this status")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Concern-specific JSON, e.g. stock 'lines', payment 'payment_intent_id'",
    )


class TimelineEntry(_Frozen):
    event_id: str
    event_type: str
    at: AwareDatetime
    summary: str


class OrderRecord(_Frozen):
    """One order's state, as the orders table keeps it (`pk = ORDER#{order_id}`)."""

    order_id: str = Field(description="Canonical: 'shopify:{shop}:{id}'")
    external_order_id: str
    shop: str
    channel: str
    order_number: str
    currency: str
    totals: OrderTotals
    storefront_updated_at: AwareDatetime
    financial_status: str | None = None
    cancelled_at: AwareDatetime | None = None
    payment: ConcernState = Field(default_factory=ConcernState)
    stock: ConcernState = Field(default_factory=ConcernState)
    shipment: ConcernState = Field(default_factory=ConcernState)
    crm: ConcernState = Field(default_factory=ConcernState)
    timeline: tuple[TimelineEntry, ...] = ()
    applied: frozenset[str] = Field(
        default=frozenset(), description="'{concern}:{event_id}' keys of applied transitions"
    )
    version: int = Field(default=0, description="Optimistic lock: +1 on every write")

    def concern(self, name: Concern) -> ConcernState:
        state: ConcernState = getattr(self, name)
        return state

    @property
    def status(self) -> str:
        """One word for people: the most telling concern state."""
        stock, payment = self.stock.status, self.payment.status
        if self.cancelled_at is not None or stock == StockStatus.RELEASED:
            return "cancelled"
        if payment == PaymentStatus.REFUNDED:
            return "refunded"
        if self.shipment.status not in (ShipmentStatus.PENDING, ShipmentStatus.FAILED):
            return "shipped" if self.shipment.status != ShipmentStatus.DELIVERED else "delivered"
        if payment == PaymentStatus.MISMATCH:
            return "payment_review"
        if payment == PaymentStatus.FAILED:
            return "payment_failed"
        if stock == StockStatus.COMMITTED:
            return "ready_to_ship"
        if stock in (StockStatus.BACKORDERED, StockStatus.PARTIALLY_RESERVED):
            return "backordered"
        if payment == PaymentStatus.CONFIRMED:
            return "paid"
        return "open"

    def view(self) -> dict[str, Any]:
        """The JSON `storewire order show --json` prints."""

        def concern(state: ConcernState) -> dict[str, Any]:
            return {
                **state.details,
                "status": state.status,
                "updated_at": state.updated_at.isoformat() if state.updated_at else None,
                "event_id": state.event_id,
            }

        stock = concern(self.stock)
        stock.setdefault("lines", [])
        return {
            "order_id": self.order_id,
            "external_order_id": self.external_order_id,
            "order_number": self.order_number,
            "shop": self.shop,
            "status": self.status,
            "total": self.totals.total.model_dump(mode="json"),
            "storefront_updated_at": self.storefront_updated_at.isoformat(),
            "payment": concern(self.payment),
            "stock": stock,
            "shipment": concern(self.shipment),
            "crm": concern(self.crm),
            "timeline": [e.model_dump(mode="json") for e in self.timeline],
            "version": self.version,
        }


# --------------------------------------------------------------------------- pure changes


def applied_key(concern: str, event_id: str) -> str:
    return f"{concern}:{event_id}"


def order_data(event: CanonicalEvent) -> OrderData:
    """The `OrderData` body of an order event (the claim check must be resolved first)."""
    if not isinstance(event.data, OrderData) or event.order_id is None:
        raise ValueError(f"{event.event_type} {event.event_id} carries no inline order data")
    return event.data


def new_record(event: CanonicalEvent) -> OrderRecord:
    """The record an order event creates: totals from the storefront, every concern pending."""
    data = order_data(event)
    assert event.order_id is not None
    return OrderRecord(
        order_id=event.order_id,
        external_order_id=data.external_order_id,
        shop=event.shop,
        channel=event.channel,
        order_number=data.order_number,
        currency=data.currency,
        totals=data.totals,
        storefront_updated_at=data.updated_at,
        financial_status=data.financial_status,
        cancelled_at=data.cancelled_at,
        timeline=(_entry(event, f"order {data.order_number} recorded"),),
        applied=frozenset({applied_key("order", event.event_id)}),
    )


def merge_storefront(record: OrderRecord, event: CanonicalEvent) -> OrderRecord | None:
    """`record` with the event's storefront snapshot, if it is newer; else None.

    The storefront `updated_at` is the guard: an older or equal snapshot never replaces a
    newer one, so a late `orders/updated` cannot roll the record back. Concern states are
    untouched (they move only through `transition`).
    """
    data = order_data(event)
    if applied_key("order", event.event_id) in record.applied:
        return None
    newer = data.updated_at > record.storefront_updated_at
    cancelled_at = record.cancelled_at or data.cancelled_at
    if not newer and cancelled_at == record.cancelled_at:
        return None
    changes: dict[str, Any] = {"cancelled_at": cancelled_at}
    if newer:
        changes |= {
            "totals": data.totals,
            "storefront_updated_at": data.updated_at,
            "financial_status": data.financial_status,
            "order_number": data.order_number,
        }
    return record.model_copy(
        update={
            **changes,
            "timeline": (*record.timeline, _entry(event, "storefront snapshot updated")),
            "applied": record.applied | {applied_key("order", event.event_id)},
        }
    )


def transition(
    record: OrderRecord,
    concern: Concern,
    to_status: str,
    *,
    event_id: str,
    at: datetime,
    details: Mapping[str, Any] | None = None,
    event_type: str = "",
    summary: str | None = None,
) -> OrderRecord | None:
    """`record` with `concern` moved to `to_status`; None if already applied, not allowed, or
    a repeat that would change nothing (same status, details already as given).

    Repeats are not written: the CRM sync confirms `synced` with the same contact and deal for
    every event of an order, and each write is a whole-record rewrite (billed per KB) that
    would only add a timeline line saying nothing new.
    """
    key = applied_key(concern, event_id)
    current = record.concern(concern)
    if key in record.applied or not can_transition(concern, current.status, to_status):
        return None
    merged = {**current.details, **(details or {})}
    if to_status == current.status and merged == current.details:
        return None
    state = ConcernState(
        status=to_status,
        updated_at=at,
        event_id=event_id,
        details=merged,
    )
    entry = TimelineEntry(
        event_id=event_id,
        event_type=event_type or concern,
        at=at,
        summary=summary or f"{concern} {current.status} -> {to_status}",
    )
    return record.model_copy(
        update={
            concern: state,
            "timeline": (*record.timeline, entry),
            "applied": record.applied | {key},
        }
    )


def append_timeline(
    record: OrderRecord, *, event_id: str, event_type: str, at: datetime, summary: str
) -> OrderRecord | None:
    """`record` with one more timeline entry; None if this event is already on the timeline."""
    key = applied_key("timeline", event_id)
    if key in record.applied:
        return None
    entry = TimelineEntry(event_id=event_id, event_type=event_type, at=at, summary=summary)
    return record.model_copy(
        update={"timeline": (*record.timeline, entry), "applied": record.applied | {key}}
    )


def _entry(event: CanonicalEvent, summary: str) -> TimelineEntry:
    return TimelineEntry(
        event_id=event.event_id, event_type=event.event_type, at=event.occurred_at, summary=summary
    )


# --------------------------------------------------------------------------- the port


class OrderNotFound(PrerequisiteMissing):
    """The order record does not exist yet: the event came before its OrderPlaced.

    Retryable on purpose: SQS redelivers the message until the OrderPlaced has been applied
    (or the DLQ takes it, with this reason, if it never comes).
    """


class OrderStore(Protocol):
    """Keeps order records (DynamoDB orders table; an in-memory fake in tests).

    Every write is idempotent per event id and guarded by `TRANSITIONS`; a method returns
    False (or None) rather than raising when the change is a duplicate or not allowed.
    """

    def get(self, order_id: str) -> OrderRecord | None:
        """The record of a canonical order id, or None."""
        ...

    def find(self, ref: str) -> OrderRecord | None:
        """The record for a canonical order id or a storefront (external) order id."""
        ...

    def record_placed(self, event: CanonicalEvent) -> OrderRecord:
        """Create the record from an order event (payment and stock pending), idempotently.

        If the record exists, the event's snapshot is merged only when its storefront
        `updated_at` is newer; the stored record is returned either way.
        """
        ...

    def record_storefront_update(self, event: CanonicalEvent) -> bool:
        """Merge a newer storefront snapshot (`OrderUpdated`, `OrderCancelled`...).

        False when the snapshot is not newer or the event was applied before; raises
        `OrderNotFound` when there is no record yet.
        """
        ...

    def transition(
        self,
        order_id: str,
        concern: Concern,
        to_status: str,
        *,
        event_id: str,
        at: datetime,
        details: Mapping[str, Any] | None = None,
        event_type: str = "",
        summary: str | None = None,
    ) -> bool:
        """Move one concern; False when already applied for this event id or not allowed.

        Raises `OrderNotFound` when there is no record yet.
        """
        ...

    def append_timeline(
        self, order_id: str, *, event_id: str, event_type: str, at: datetime, summary: str
    ) -> bool:
        """Add a timeline entry once per event id; raises `OrderNotFound` without a record."""
        ...
