"""Shipments: parcels, rates, label purchases and tracking, as pure data and pure functions.

Nothing here talks to a carrier or a table. The label service (`storewire.labels`) moves
these values between the ports; the EasyPost adapter and source translate them to and from
EasyPost's shapes.

* **Parcel.** EasyPost weighs in ounces and measures in inches. Line weights come from the
  storefront in grams (`OrderLine.grams`, per unit); the parcel weight is their sum plus a
  tare, converted with the exact factor and rounded *up* to 0.1 oz (never under-declared).
  When a line that ships has no weight, the weight is at least the configured default
  (`ParcelPolicy.default_weight_oz`) and the parcel says it was estimated.
* **Rate policy.** Either the cheapest rate among allowed carriers/services (empty lists
  allow all), or one fixed carrier + service. Money is exact; ties break on delivery days,
  then carrier and service names, so the choice is deterministic.
* **Tracking.** EasyPost tracker statuses map onto `TrackingStatus`; `delivered` is terminal
  and an update older than what was applied never wins (`tracking_update_applies`).

The events this concern emits (`LabelCreated`, `ShipmentStatusChanged`) and their bodies live
in `storewire.domain.events` with the other canonical events; they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from storewire.domain.events import Address, CanonicalEvent, OrderData, event_id

# The shipment events and their bodies, re-exported (they live with the other events).
from storewire.domain.events import LabelCreated as LabelCreated
from storewire.domain.events import LabelData as LabelData
from storewire.domain.events import ShipmentStatusChanged as ShipmentStatusChanged
from storewire.domain.events import ShipmentStatusData as ShipmentStatusData
from storewire.domain.events import TrackingEvent as TrackingEvent
from storewire.domain.events import TrackingStatus as TrackingStatus
from storewire.domain.money import Money
from storewire.errors import PermanentError, RetryableError

LABELS_SOURCE = "labels"
"""`source` of the events label creation publishes (`Source: storewire.labels`)."""

GRAMS_PER_OUNCE = Decimal("28.349523125")
"""Exact: 1 avoirdupois ounce = 28.349523125 g."""

OUNCE_STEP = Decimal("0.1")
"""EasyPost weights go to one decimal place."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# --------------------------------------------------------------------------- errors


class ShippingDetailsMissing(RetryableError):
    """No shipping snapshot for the order yet (its OrderPlaced has not reached label
    creation): retryable, so SQS redelivers until it has (or the DLQ keeps it, with this
    reason)."""


class LabelInProgress(RetryableError):
    """Another attempt holds the order's label lease: retry after it finished or expired."""


class TrackingBeforeLabel(RetryableError):
    """A tracking update for a shipment whose label is not on the order record yet (the label
    service is still recording it): retry, so the update is not applied out of order."""


class NoRatesOffered(RetryableError):
    """The carriers returned no rate at all (carrier outage or rating errors): retry later."""


class NoMatchingRate(PermanentError):
    """Rates were offered, but none fits the configured policy: fix the policy, then redrive."""


class InvalidShipment(PermanentError):
    """The order cannot be shipped as recorded (no shipping address, nothing that ships)."""


# --------------------------------------------------------------------------- the order side


class ShippingLine(_Frozen):
    line_id: str
    sku: str | None = None
    quantity: int = Field(ge=0)
    grams: int = Field(ge=0, description="Weight of one unit, in grams (0: unknown)")
    requires_shipping: bool = True


class ShippingOrder(_Frozen):
    """What label creation needs of an order, kept from its newest storefront snapshot."""

    order_id: str
    external_order_id: str
    order_number: str
    shop: str
    channel: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    ship_to: Address | None
    lines: tuple[ShippingLine, ...]
    storefront_updated_at: AwareDatetime = Field(description="Guards monotonic replacement")
    cancelled: bool = False


def shipping_order(event: CanonicalEvent) -> ShippingOrder:
    """The shipping snapshot of an order event (`OrderPlaced`, `OrderUpdated`, ...)."""
    data = event.data
    if not isinstance(data, OrderData) or event.order_id is None:
        raise ValueError(f"{event.event_type} {event.event_id} carries no inline order data")
    return ShippingOrder(
        order_id=event.order_id,
        external_order_id=data.external_order_id,
        order_number=data.order_number,
        shop=event.shop,
        channel=event.channel,
        currency=data.currency,
        ship_to=data.shipping_address,
        lines=tuple(
            ShippingLine(
                line_id=line.line_id,
                sku=line.sku,
                quantity=line.quantity,
                grams=line.grams,
                requires_shipping=line.requires_shipping,
            )
            for line in data.lines
        ),
        storefront_updated_at=data.updated_at,
        cancelled=data.cancelled_at is not None,
    )


def lines_to_ship(
    order: ShippingOrder, committed: Mapping[str, int] | None = None
) -> tuple[ShippingLine, ...]:
    """The lines (and units) that go in the parcel.

    Lines that do not require shipping are left out. A line stock committed ships the
    committed units (`committed[line_id]`); a line stock does not track (no SKU, so absent
    from the commit) ships as ordered. Without `committed`, every shipping line ships as
    ordered.
    """
    shipped: list[ShippingLine] = []
    for line in order.lines:
        if not line.requires_shipping or line.quantity <= 0:
            continue
        quantity = line.quantity
        if committed is not None and line.line_id in committed:
            quantity = committed[line.line_id]
        if quantity > 0:
            shipped.append(line.model_copy(update={"quantity": quantity}))
    return tuple(shipped)


# --------------------------------------------------------------------------- parcel


class ParcelPolicy(_Frozen):
    """How a parcel is sized when the catalogue gives weights only (inches, ounces)."""

    length: Decimal = Field(default=Decimal(10), gt=0)
    width: Decimal = Field(default=Decimal(8), gt=0)
    height: Decimal = Field(default=Decimal(4), gt=0)
    default_weight_oz: Decimal = Field(
        default=Decimal(16), gt=0, description="Used when a line that ships has no weight"
    )
    tare_grams: int = Field(default=0, ge=0, description="Box and packing material")


class Parcel(_Frozen):
    length: Decimal
    width: Decimal
    height: Decimal
    weight_oz: Decimal = Field(gt=0)
    weight_estimated: bool = False


def grams_to_ounces(grams: int) -> Decimal:
    """`grams` in ounces, rounded up to EasyPost's 0.1 oz step (0 g -> 0)."""
    ounces = Decimal(grams) / GRAMS_PER_OUNCE
    return ounces.quantize(OUNCE_STEP, rounding=ROUND_CEILING)


def build_parcel(lines: Sequence[ShippingLine], policy: ParcelPolicy) -> Parcel:
    """The parcel for `lines`: summed unit weights plus tare, or the default when unknown."""
    if not lines:
        raise InvalidShipment("nothing in the order requires shipping")
    grams = sum(line.grams * line.quantity for line in lines)
    estimated = any(line.grams == 0 for line in lines)
    weight = grams_to_ounces(grams + policy.tare_grams)
    if estimated:
        weight = max(weight, policy.default_weight_oz)
    weight = max(weight, OUNCE_STEP)
    return Parcel(
        length=policy.length,
        width=policy.width,
        height=policy.height,
        weight_oz=weight,
        weight_estimated=estimated,
    )


# --------------------------------------------------------------------------- rates


class Rate(_Frozen):
    rate_id: str
    carrier: str
    service: str
    amount: Money
    delivery_days: int | None = None


class RatePolicy(_Frozen):
    """Which rate to buy: `cheapest` among allowed carriers/services, or a `fixed` one.

    Carrier and service names compare case-insensitively (EasyPost spells them `USPS`,
    `GroundAdvantage`, `UPS`, `Ground`...). Only rates in `currency` are considered.
    """

    mode: Literal["cheapest", "fixed"] = "cheapest"
    carriers: tuple[str, ...] = Field(default=(), description="cheapest: allowed (empty: any)")
    services: tuple[str, ...] = Field(default=(), description="cheapest: allowed (empty: any)")
    carrier: str | None = Field(default=None, description="fixed: the carrier")
    service: str | None = Field(default=None, description="fixed: the service")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _fixed_names_both(self) -> Self:
        if self.mode == "fixed" and not (self.carrier and self.service):
            raise ValueError("a fixed rate policy names both carrier and service")
        return self

    def allows(self, rate: Rate) -> bool:
        if rate.amount.currency != self.currency:
            return False
        carrier, service = rate.carrier.casefold(), rate.service.casefold()
        if self.mode == "fixed":
            assert self.carrier is not None
            assert self.service is not None
            return carrier == self.carrier.casefold() and service == self.service.casefold()
        return (not self.carriers or carrier in {c.casefold() for c in self.carriers}) and (
            not self.services or service in {s.casefold() for s in self.services}
        )

    def describe(self) -> str:
        if self.mode == "fixed":
            return f"fixed {self.carrier} {self.service} in {self.currency}"
        carriers = ", ".join(self.carriers) or "any carrier"
        services = ", ".join(self.services) or "any service"
        return f"cheapest of {carriers} / {services} in {self.currency}"


def choose_rate(
    rates: Sequence[Rate], policy: RatePolicy, *, carrier_messages: Sequence[str] = ()
) -> Rate:
    """The rate `policy` picks; `NoRatesOffered` (retry) or `NoMatchingRate` (permanent)."""
    if not rates:
        detail = "; ".join(carrier_messages)[:300] or "no carrier answered"
        raise NoRatesOffered(f"the carriers offered no rate ({detail})")
    allowed = [rate for rate in rates if policy.allows(rate)]
    if not allowed:
        offered = ", ".join(sorted({f"{r.carrier} {r.service}" for r in rates}))
        raise NoMatchingRate(
            f"no offered rate fits the policy ({policy.describe()}); offered: {offered}"[:500]
        )
    return min(
        allowed,
        key=lambda r: (
            r.amount.amount,
            r.delivery_days if r.delivery_days is not None else 10**6,
            r.carrier.casefold(),
            r.service.casefold(),
            r.rate_id,
        ),
    )


# --------------------------------------------------------------------------- carrier shipments


class ShipmentRequest(_Frozen):
    """What to ask the carrier aggregator to rate (and later buy)."""

    reference: str = Field(description="The order's reference, found again on retry")
    to_address: Address
    from_address: Address
    parcel: Parcel


class CarrierShipment(_Frozen):
    """A shipment as the carrier aggregator holds it (EasyPost `Shipment`)."""

    shipment_id: str
    reference: str | None = None
    rates: tuple[Rate, ...] = ()
    selected_rate: Rate | None = None
    tracking_code: str | None = None
    label_url: str | None = None
    tracker_id: str | None = None
    messages: tuple[str, ...] = Field(default=(), description="Carrier rating errors")
    created_at: AwareDatetime | None = None

    @property
    def purchased(self) -> bool:
        """Postage was bought: a selected rate and a label (or tracking code) exist."""
        return self.selected_rate is not None and bool(self.label_url or self.tracking_code)


def label_reference(order_id: str) -> str:
    """The `reference` a label's shipment carries: the canonical order id."""
    return order_id


def pick_existing(shipments: Iterable[CarrierShipment], reference: str) -> CarrierShipment | None:
    """Of the shipments tagged `reference`, the bought one (oldest first), else the newest."""
    tagged = [s for s in shipments if s.reference == reference]
    if not tagged:
        return None
    bought = [s for s in tagged if s.purchased]
    if bought:
        return min(bought, key=_created)
    return max(tagged, key=_created)


def _created(shipment: CarrierShipment) -> tuple[float, str]:
    at = shipment.created_at.timestamp() if shipment.created_at else 0.0
    return at, shipment.shipment_id


class LabelPurchase(_Frozen):
    """A bought label: what the order record, the storefront and `LabelCreated` carry."""

    shipment_id: str
    rate_id: str
    carrier: str
    service: str
    tracking_number: str
    label_url: str | None
    cost: Money
    tracker_id: str | None = None
    purchased_at: AwareDatetime

    @classmethod
    def from_shipment(cls, shipment: CarrierShipment, at: datetime) -> LabelPurchase:
        rate = shipment.selected_rate
        if rate is None or not shipment.purchased:
            raise ValueError(f"shipment {shipment.shipment_id} has no postage")
        return cls(
            shipment_id=shipment.shipment_id,
            rate_id=rate.rate_id,
            carrier=rate.carrier,
            service=rate.service,
            tracking_number=shipment.tracking_code or "",
            label_url=shipment.label_url,
            cost=rate.amount,
            tracker_id=shipment.tracker_id,
            purchased_at=at,
        )

    def concern_details(self) -> dict[str, Any]:
        """The order record's `shipment` concern details (JSON)."""
        return {
            "status": "label_created",
            "carrier": self.carrier,
            "service": self.service,
            "tracking_number": self.tracking_number,
            "label_url": self.label_url,
            "cost": self.cost.model_dump(mode="json"),
            "shipment_id": self.shipment_id,
        }


# --------------------------------------------------------------------------- the label record


class LabelStatus(StrEnum):
    CLAIMED = "claimed"
    """Intent recorded: an attempt holds the lease and may create/buy."""
    CREATED = "created"
    """The carrier shipment exists (its id is recorded); not bought yet."""
    PURCHASED = "purchased"
    """Postage bought and recorded. Final: never bought again."""
    FAILED = "failed"
    """A permanent failure (bad address, no rate): a redrive may try again."""


class TrackingState(_Frozen):
    """What was last applied for a shipment's tracking (kept on the label record)."""

    status: TrackingStatus
    updated_at: AwareDatetime = Field(description="The tracker's own time of that status")
    event_id: str | None = Field(default=None, description="The event that applied it")


LabelStep = Literal["order", "fulfilment", "published"]
"""What follows the purchase, each once: order record, storefront fulfilment, LabelCreated."""


class LabelRecord(_Frozen):
    """One order's label: the intent, the carrier shipment, the purchase, what followed."""

    order_id: str
    reference: str | None = None
    status: LabelStatus | None = Field(default=None, description="None: no attempt yet")
    owner: str | None = Field(default=None, description="The attempt holding the lease")
    lease_until: AwareDatetime | None = None
    attempts: int = 0
    shipment_id: str | None = None
    purchase: LabelPurchase | None = None
    failure: str | None = None
    steps: frozenset[str] = frozenset()
    order: ShippingOrder | None = Field(default=None, description="The shipping snapshot")
    tracking: TrackingState | None = Field(default=None, description="The last tracking applied")
    claimed_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None

    @property
    def purchased(self) -> bool:
        return self.purchase is not None

    def lease_held(self, now: datetime, owner: str | None = None) -> bool:
        """Whether another attempt than `owner` holds a live lease."""
        return (
            self.status in (LabelStatus.CLAIMED, LabelStatus.CREATED)
            and self.owner not in (None, owner)
            and self.lease_until is not None
            and self.lease_until > now
        )


# --------------------------------------------------------------------------- events


def label_event_id(order_id: str) -> str:
    """The id of an order's LabelCreated: one label per order, so one id per order."""
    return event_id(LABELS_SOURCE, order_id, "LabelCreated", 0)


EASYPOST_TRACKING_STATUS: Mapping[str, TrackingStatus] = {
    "unknown": TrackingStatus.UNKNOWN,
    "pre_transit": TrackingStatus.PRE_TRANSIT,
    "in_transit": TrackingStatus.IN_TRANSIT,
    "out_for_delivery": TrackingStatus.OUT_FOR_DELIVERY,
    "available_for_pickup": TrackingStatus.AVAILABLE_FOR_PICKUP,
    "delivered": TrackingStatus.DELIVERED,
    "return_to_sender": TrackingStatus.RETURNED,
    "failure": TrackingStatus.EXCEPTION,
    "error": TrackingStatus.EXCEPTION,
    "cancelled": TrackingStatus.CANCELLED,
}
"""EasyPost tracker `status` -> canonical. Anything else is `unknown`."""

TERMINAL_TRACKING: frozenset[TrackingStatus] = frozenset({TrackingStatus.DELIVERED})


def canonical_tracking_status(carrier_status: str | None) -> TrackingStatus:
    return EASYPOST_TRACKING_STATUS.get(
        (carrier_status or "").strip().lower(), TrackingStatus.UNKNOWN
    )


def tracking_update_applies(
    current: TrackingState | None, status: TrackingStatus, updated_at: datetime
) -> bool:
    """Whether a tracker update (`status` as of the tracker's `updated_at`) may be applied.

    `delivered` is terminal: nothing after it applies, however new. Otherwise the tracker's
    own `updated_at` orders updates: an older one (a late or replayed webhook) never rolls
    the state back, and the same status at the same time is a duplicate.
    """
    if current is None:
        return True
    if current.status in TERMINAL_TRACKING:
        return False
    if updated_at < current.updated_at:
        return False
    return not (updated_at == current.updated_at and status == current.status)


ORDER_SHIPMENT_STATUS: Mapping[TrackingStatus, str] = {
    TrackingStatus.IN_TRANSIT: "shipped",
    TrackingStatus.OUT_FOR_DELIVERY: "shipped",
    TrackingStatus.AVAILABLE_FOR_PICKUP: "shipped",
    TrackingStatus.DELIVERED: "delivered",
}
"""Tracking status -> the order record's `shipment` status it implies (others: timeline only)."""
