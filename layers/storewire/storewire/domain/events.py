"""Canonical business events: the only thing Storewire puts on the bus.

Every event is one frozen pydantic model: a common envelope (`CanonicalEvent`) plus a typed
`data` body. An event type evolves by bumping `event_version`; consumers look the model up
in `EVENT_MODELS` by `(event_type, event_version)`. When an event is too large for the bus
its `data` is stored elsewhere and `claim_check` says where (then `data` is null).
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Literal, Self, TypedDict

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from storewire.domain.money import Money
from storewire.domain.payments import PaymentReport, PaymentVerification

MAX_ENTRY_BYTES = 256 * 1024
"""EventBridge's limit for one PutEvents request (and so for one entry), in bytes."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# --------------------------------------------------------------------------- data bodies


class Address(_Frozen):
    """A postal address (personal data: never logged)."""

    name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country_code: str | None = None
    phone: str | None = None


class CustomerRef(_Frozen):
    """Who placed the order: the storefront's customer id and the contact email."""

    external_customer_id: str | None = None
    email: str | None = None


class OrderLine(_Frozen):
    line_id: str = Field(description="The storefront's line item id")
    sku: str | None = None
    product_id: str | None = None
    variant_id: str | None = None
    title: str
    variant_title: str | None = None
    name: str | None = Field(default=None, description="Display name, e.g. 'Tee - Black / M'")
    vendor: str | None = None
    quantity: int = Field(ge=0)
    unit_price: Money
    total_discount: Money
    grams: int = Field(ge=0, description="Weight of one unit, in grams")
    requires_shipping: bool = True


class OrderTotals(_Frozen):
    subtotal: Money = Field(description="Lines after line discounts, before shipping and tax")
    discounts: Money
    shipping: Money
    tax: Money
    total: Money
    outstanding: Money | None = Field(default=None, description="Still to be paid, if known")


class OrderData(_Frozen):
    """The order as the storefront reported it in this delivery."""

    external_order_id: str
    order_number: str = Field(description="The shop-facing name, e.g. '#1001'")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    financial_status: str | None = None
    fulfillment_status: str | None = None
    lines: tuple[OrderLine, ...]
    totals: OrderTotals
    customer: CustomerRef | None = None
    shipping_address: Address | None = None
    payment_gateway_names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    test: bool = False
    created_at: AwareDatetime
    updated_at: AwareDatetime = Field(description="Storefront time; guards monotonic updates")
    cancelled_at: AwareDatetime | None = None
    cancel_reason: str | None = None


class RefundLine(_Frozen):
    refund_line_id: str
    line_id: str = Field(description="The order line this refunds")
    sku: str | None = None
    product_id: str | None = None
    variant_id: str | None = None
    quantity: int = Field(ge=0)
    restock: bool = Field(description="True when the units go back to stock")
    restock_type: str = Field(description="'return', 'cancel', 'no_restock' or 'legacy_restock'")
    location_id: str | None = None
    subtotal: Money
    total_tax: Money


class RefundTransaction(_Frozen):
    transaction_id: str
    kind: str
    status: str
    gateway: str | None = None
    amount: Money


class RefundData(_Frozen):
    refund_id: str
    external_order_id: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    lines: tuple[RefundLine, ...]
    transactions: tuple[RefundTransaction, ...]
    amount: Money = Field(description="Sum of successful refund transactions")
    restock: bool = Field(description="True when any line is restocked")
    note: str | None = None
    created_at: AwareDatetime
    processed_at: AwareDatetime | None = None


class CustomerData(_Frozen):
    """A customer record as the storefront reported it (personal data: never logged)."""

    external_customer_id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    state: str | None = None
    email_marketing_consent: str | None = None
    tags: tuple[str, ...] = ()
    default_address: Address | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime


# --------------------------------------------------------------------------- the envelope


class ClaimCheck(_Frozen):
    """Where the `data` of an oversized event was stored, and how to verify it."""

    bucket: str
    key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class CanonicalEvent(_Frozen):
    """The envelope every canonical event shares (see docs/architecture.md, "The bus")."""

    event_id: str = Field(pattern=r"^evt_[0-9a-f]{32}$")
    event_type: str
    event_version: int
    occurred_at: AwareDatetime
    source: str = Field(description="Where the event came from, e.g. 'shopify'")
    shop: str = Field(description="The store it concerns, e.g. 'x.myshopify.com'")
    channel: str = Field(description="The sales channel that owns the order, e.g. 'shopify'")
    order_id: str | None = Field(default=None, description="Canonical: 'shopify:{shop}:{id}'")
    external_order_id: str | None = None
    customer_id: str | None = Field(
        default=None, description="Canonical: 'shopify:{shop}:customer:{id}'"
    )
    correlation_id: str = Field(description="The order id, or the customer id for customers")
    delivery_id: str = Field(description="The sender's delivery id the event came from")
    data: Any = None
    claim_check: ClaimCheck | None = None

    @model_validator(mode="after")
    def _data_xor_claim_check(self) -> Self:
        if (self.data is None) == (self.claim_check is None):
            raise ValueError("exactly one of data and claim_check must be set")
        return self

    def data_json(self) -> bytes:
        """The `data` body as the JSON bytes a claim check stores."""
        if self.data is None:
            raise ValueError("event has no inline data")
        payload = self.data.model_dump(mode="json") if isinstance(self.data, BaseModel) else None
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

    def with_claim_check(self, claim_check: ClaimCheck) -> Self:
        """This event with its data replaced by a claim check."""
        return type(self).model_validate(
            {**self.model_dump(exclude={"data", "claim_check"}), "claim_check": claim_check}
        )


class OrderPlaced(CanonicalEvent):
    """A new order was created on the storefront (Shopify `orders/create`)."""

    event_type: Literal["OrderPlaced"] = "OrderPlaced"
    event_version: Literal[1] = 1
    data: OrderData | None = None


class OrderUpdated(CanonicalEvent):
    """An order changed on the storefront (Shopify `orders/updated`)."""

    event_type: Literal["OrderUpdated"] = "OrderUpdated"
    event_version: Literal[1] = 1
    data: OrderData | None = None


class OrderPaymentReported(CanonicalEvent):
    """A payment was reported, not yet verified: the storefront says the order is paid
    (Shopify `orders/paid`: `data` is the order) or a payment gateway reports a payment
    (Stripe `payment_intent.*`: `data` is a `PaymentReport` naming gateway and reference)."""

    event_type: Literal["OrderPaymentReported"] = "OrderPaymentReported"
    event_version: Literal[1] = 1
    data: OrderData | PaymentReport | None = None


class OrderCancelled(CanonicalEvent):
    """The order was cancelled on the storefront (Shopify `orders/cancelled`)."""

    event_type: Literal["OrderCancelled"] = "OrderCancelled"
    event_version: Literal[1] = 1
    data: OrderData | None = None


class RefundIssued(CanonicalEvent):
    """A refund was created, possibly restocking lines (Shopify `refunds/create`)."""

    event_type: Literal["RefundIssued"] = "RefundIssued"
    event_version: Literal[1] = 1
    data: RefundData | None = None


class CustomerUpserted(CanonicalEvent):
    """A customer was created or updated (Shopify `customers/create`, `customers/update`)."""

    event_type: Literal["CustomerUpserted"] = "CustomerUpserted"
    event_version: Literal[1] = 1
    data: CustomerData | None = None


class PaymentConfirmed(CanonicalEvent):
    """The gateway confirmed the order's payment in full (published once per order)."""

    event_type: Literal["PaymentConfirmed"] = "PaymentConfirmed"
    event_version: Literal[1] = 1
    data: PaymentVerification | None = None


class PaymentFailed(CanonicalEvent):
    """The gateway says the order's payment failed (declined, canceled)."""

    event_type: Literal["PaymentFailed"] = "PaymentFailed"
    event_version: Literal[1] = 1
    data: PaymentVerification | None = None


class PaymentMismatch(CanonicalEvent):
    """The gateway received another amount or currency than the order total: a person
    reviews it; stock stays reserved."""

    event_type: Literal["PaymentMismatch"] = "PaymentMismatch"
    event_version: Literal[1] = 1
    data: PaymentVerification | None = None


# --------------------------------------------------------------------------- stock events
# Published by stock adjustment as `Source: storewire.stock`.
# Ids derive from the order (or the SKU and its version), never from the delivery that caused
# them, so a redelivery or a duplicate webhook re-emits the same ids.


class StockPiece(_Frozen):
    location: str
    quantity: int = Field(gt=0)


class StockLine(_Frozen):
    """One order line's stock outcome."""

    line_id: str
    sku: str
    quantity: int = Field(ge=0, description="Ordered (or, for restocks, refunded) units")
    reserved: int = Field(ge=0, description="Units this move concerns")
    short: int = Field(default=0, ge=0, description="Units that could not be reserved")
    pieces: tuple[StockPiece, ...] = ()


StockOutcome = Literal["reserved", "partially_reserved", "backordered"]


class StockReservationData(_Frozen):
    status: StockOutcome
    lines: tuple[StockLine, ...]


class OrderBackorderedData(_Frozen):
    status: StockOutcome
    lines: tuple[StockLine, ...]
    short_lines: tuple[StockLine, ...] = Field(description="The lines with units short")


class StockMoveData(_Frozen):
    """Commit, release or restock: the lines and pieces moved."""

    lines: tuple[StockLine, ...]
    refund_id: str | None = None
    reason: str | None = None


class StockLocationLevel(_Frozen):
    location: str
    on_hand: int
    reserved: int
    available: int


class StockLevelData(_Frozen):
    sku: str
    on_hand: int
    reserved: int
    available: int
    version: int = Field(description="Grows with every write to the SKU: keep the highest")
    locations: tuple[StockLocationLevel, ...]


class StockReserved(CanonicalEvent):
    """Every line of an order is reserved in full (→ payment may commit it)."""

    event_type: Literal["StockReserved"] = "StockReserved"
    event_version: Literal[1] = 1
    data: StockReservationData | None = None


class OrderBackordered(CanonicalEvent):
    """Some lines of an order could not be reserved (in full): `short_lines` says which."""

    event_type: Literal["OrderBackordered"] = "OrderBackordered"
    event_version: Literal[1] = 1
    data: OrderBackorderedData | None = None


class StockCommitted(CanonicalEvent):
    """The order's reservations left stock (on_hand down): label creation may start."""

    event_type: Literal["StockCommitted"] = "StockCommitted"
    event_version: Literal[1] = 1
    data: StockMoveData | None = None


class StockReleased(CanonicalEvent):
    """The order's open reservations went back to available (cancel or failed payment)."""

    event_type: Literal["StockReleased"] = "StockReleased"
    event_version: Literal[1] = 1
    data: StockMoveData | None = None


class StockRestocked(CanonicalEvent):
    """Refunded units came back to stock (on_hand and available up)."""

    event_type: Literal["StockRestocked"] = "StockRestocked"
    event_version: Literal[1] = 1
    data: StockMoveData | None = None


class StockLevelChanged(CanonicalEvent):
    """A SKU's quantities after a move, per location and in total."""

    event_type: Literal["StockLevelChanged"] = "StockLevelChanged"
    event_version: Literal[1] = 1
    data: StockLevelData | None = None


# --------------------------------------------------------------------------- shipment events
# LabelCreated is published by label creation (`Source: storewire.labels`, one id per order);
# ShipmentStatusChanged is normalised from carrier tracking webhooks (`storewire.easypost`).
# The pure logic around them (parcels, rates, the tracking guard) is in
# `storewire.domain.shipments`.


class LabelData(_Frozen):
    carrier: str
    service: str
    tracking_number: str
    label_url: str | None
    cost: Money
    shipment_id: str
    rate_id: str
    tracker_id: str | None = None
    aggregator: str = Field(default="easypost", description="Who sold the label")
    purchased_at: AwareDatetime


class LabelCreated(CanonicalEvent):
    """A shipping label was bought for the order (once per order)."""

    event_type: Literal["LabelCreated"] = "LabelCreated"
    event_version: Literal[1] = 1
    data: LabelData | None = None


class TrackingStatus(StrEnum):
    """Canonical tracking states (EasyPost's names where they are clear)."""

    UNKNOWN = "unknown"
    PRE_TRANSIT = "pre_transit"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERED = "delivered"
    RETURNED = "returned"
    EXCEPTION = "exception"
    CANCELLED = "cancelled"


class TrackingEvent(_Frozen):
    """The carrier's latest scan (no personal data: no signer, no street)."""

    message: str | None = None
    status: str | None = None
    at: AwareDatetime | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None


class ShipmentStatusData(_Frozen):
    aggregator: str = "easypost"
    tracker_id: str
    shipment_id: str | None = Field(
        default=None, description="Resolves the order through the label store"
    )
    tracking_code: str
    carrier: str | None = None
    status: TrackingStatus
    carrier_status: str = Field(description="The aggregator's own status word")
    status_detail: str | None = None
    previous_carrier_status: str | None = None
    updated_at: AwareDatetime = Field(description="The tracker's time: orders updates")
    est_delivery_date: AwareDatetime | None = None
    public_url: str | None = None
    latest: TrackingEvent | None = None


class ShipmentStatusChanged(CanonicalEvent):
    """A carrier reported a new tracking state for a shipment (EasyPost `tracker.updated`).

    `order_id` is null when the tracker alone cannot name the order: the consumer resolves
    it from `data.shipment_id` (the label store keeps shipment id -> order id).
    """

    event_type: Literal["ShipmentStatusChanged"] = "ShipmentStatusChanged"
    event_version: Literal[1] = 1
    data: ShipmentStatusData | None = None


# --------------------------------------------------------------------------- reconciliation


class ReconciliationData(_Frozen):
    """The counts of one scheduled reconciliation run (see storewire.reconciliation)."""

    kind: Literal["orders", "stock", "payments"]
    checked: int = Field(ge=0, description="Orders or listings looked at")
    corrected: int = Field(ge=0, description="Orders re-emitted, listings set, payments re-checked")
    missing: int = Field(default=0, ge=0, description="Orders never seen (no record)")
    behind: int = Field(default=0, ge=0, description="Orders whose record was older")
    republished: int = Field(default=0, ge=0, description="Canonical events re-emitted")
    failed: int = Field(default=0, ge=0)
    pages: int = Field(default=0, ge=0, description="Storefront pages listed")
    throttled_waits: int = Field(default=0, ge=0)
    complete: bool = Field(description="False: stopped early (time, throttling, an error)")
    since: AwareDatetime | None = None
    watermark: AwareDatetime | None = Field(default=None, description="Stored after the run")
    last_handled_updated_at: AwareDatetime | None = Field(
        default=None,
        description="orders: `updated_at` of the last order this run fully handled (a cursor)",
    )
    started_at: AwareDatetime
    finished_at: AwareDatetime
    corrections: tuple[dict[str, Any], ...] = Field(
        default=(), description="What was corrected (the first 50)"
    )


class ReconciliationCompleted(CanonicalEvent):
    """A scheduled reconciliation run finished (`Source: storewire.reconciliation`)."""

    event_type: Literal["ReconciliationCompleted"] = "ReconciliationCompleted"
    event_version: Literal[1] = 1
    data: ReconciliationData | None = None


# --------------------------------------------------------------------------- privacy


class PrivacyCustomerData(_Frozen):
    """Shopify's `customers/data_request` or `customers/redact`: who, and which orders.

    Only what is needed to find the customer's data: ids and the email (no name, phone or
    address). The email is personal data: events carrying it are never logged.
    """

    shop_id: str | None = None
    external_customer_id: str | None = None
    email: str | None = None
    external_order_ids: tuple[str, ...] = Field(
        default=(), description="orders_requested / orders_to_redact"
    )
    data_request_id: str | None = Field(default=None, description="data_request.id")


class ShopRedactionData(_Frozen):
    """Shopify's `shop/redact`: the shop whose data is to be erased (48 h after uninstall)."""

    shop_id: str | None = None
    shop_domain: str


class CustomerDataReportData(_Frozen):
    """Where the report of a customer's data was stored (`privacy/` in the claim-check bucket)."""

    bucket: str
    key: str
    data_request_id: str | None = None
    orders: int = Field(ge=0, description="Orders found for the customer")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class CustomerDataRequested(CanonicalEvent):
    """A customer asked for their data (Shopify `customers/data_request`)."""

    event_type: Literal["CustomerDataRequested"] = "CustomerDataRequested"
    event_version: Literal[1] = 1
    data: PrivacyCustomerData | None = None


class CustomerRedactionRequested(CanonicalEvent):
    """A customer's personal data is to be erased (Shopify `customers/redact`)."""

    event_type: Literal["CustomerRedactionRequested"] = "CustomerRedactionRequested"
    event_version: Literal[1] = 1
    data: PrivacyCustomerData | None = None


class ShopRedactionRequested(CanonicalEvent):
    """A shop's data is to be erased (Shopify `shop/redact`)."""

    event_type: Literal["ShopRedactionRequested"] = "ShopRedactionRequested"
    event_version: Literal[1] = 1
    data: ShopRedactionData | None = None


class CustomerDataReportReady(CanonicalEvent):
    """The report for a `CustomerDataRequested` is stored (`Source: storewire.privacy`)."""

    event_type: Literal["CustomerDataReportReady"] = "CustomerDataReportReady"
    event_version: Literal[1] = 1
    data: CustomerDataReportData | None = None


EVENT_MODELS: dict[tuple[str, int], type[CanonicalEvent]] = {
    (model.model_fields["event_type"].default, model.model_fields["event_version"].default): model
    for model in (
        OrderPlaced,
        OrderUpdated,
        OrderPaymentReported,
        OrderCancelled,
        RefundIssued,
        CustomerUpserted,
        PaymentConfirmed,
        PaymentFailed,
        PaymentMismatch,
        StockReserved,
        OrderBackordered,
        StockCommitted,
        StockReleased,
        StockRestocked,
        StockLevelChanged,
        LabelCreated,
        ShipmentStatusChanged,
        ReconciliationCompleted,
        CustomerDataRequested,
        CustomerRedactionRequested,
        ShopRedactionRequested,
        CustomerDataReportReady,
    )
}
"""Every canonical event model, by (event_type, event_version)."""

EVENT_TYPES: dict[str, type[CanonicalEvent]] = {
    event_type: EVENT_MODELS[(event_type, version)] for event_type, version in sorted(EVENT_MODELS)
}
"""The current model of each event type (what producers emit)."""


def parse_event(detail: dict[str, Any] | str | bytes) -> CanonicalEvent:
    """The typed event for an EventBridge `detail` (dict or JSON)."""
    raw: dict[str, Any] = detail if isinstance(detail, dict) else json.loads(detail)
    key = (raw.get("event_type"), raw.get("event_version"))
    model = EVENT_MODELS.get(key)  # type: ignore[arg-type]
    if model is None:
        raise ValueError(f"unknown event type/version: {key}")
    return model.model_validate(raw)


def event_id(source: str, delivery_id: str, event_type: str, index: int) -> str:
    """A deterministic event id: the same delivery always yields the same ids."""
    digest = hashlib.sha256(f"{source}|{delivery_id}|{event_type}|{index}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def canonical_order_id(source: str, shop: str, external_id: str) -> str:
    return f"{source}:{shop}:{external_id}"


def canonical_customer_id(source: str, shop: str, external_id: str) -> str:
    return f"{source}:{shop}:customer:{external_id}"


# --------------------------------------------------------------------------- bus entries


class BusEntry(TypedDict):
    """One PutEvents entry, without `EventBusName` (the publisher adds it)."""

    Source: str
    DetailType: str
    Detail: str


def to_bus_entry(event: CanonicalEvent) -> BusEntry:
    """The EventBridge entry for `event`: Source `storewire.<source>`, DetailType the type."""
    return BusEntry(
        Source=f"storewire.{event.source}",
        DetailType=event.event_type,
        Detail=event.model_dump_json(),
    )


def entry_size(entry: BusEntry) -> int:
    """The size EventBridge counts for an entry (UTF-8 bytes of Source, DetailType, Detail)."""
    return (
        len(entry["Source"].encode())
        + len(entry["DetailType"].encode())
        + len(entry["Detail"].encode())
    )
