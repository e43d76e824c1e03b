"""Hand-written fakes and builders for label creation (no Mock()).

* `InMemoryLabelStore`: the `LabelStore` rules of the DynamoDB adapter (lease, first purchase
  wins, shipment recorded by the lease holder only), in a dict.
* `FakeCarrier`: a stateful carrier aggregator (shipments, rates, one purchase per shipment,
  references), which can refuse addresses, crash right after a buy or after a create.
* `RecordingFulfilment`, `Clock`, and builders of the events label creation consumes.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from storewire.domain.events import (
    Address,
    OrderData,
    OrderLine,
    OrderPlaced,
    OrderTotals,
    OrderUpdated,
    StockCommitted,
    StockLine,
    StockMoveData,
    canonical_order_id,
    event_id,
)
from storewire.domain.money import Money
from storewire.domain.shipments import (
    CarrierShipment,
    LabelInProgress,
    LabelPurchase,
    LabelRecord,
    LabelStatus,
    LabelStep,
    Rate,
    ShipmentRequest,
    ShippingOrder,
    TrackingState,
    tracking_update_applies,
)
from storewire.errors import PermanentUpstreamError
from storewire.labels import FulfilmentRequest, LabelDeps, LabelPolicies

SHOP = "storewire-demo.myshopify.com"
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
EXTERNAL = "5745289347382"
ORDER_ID = canonical_order_id("shopify", SHOP, EXTERNAL)

SHIP_FROM = Address(
    name="Storewire Warehouse",
    company="Storewire",
    address1="417 Montgomery Street",
    address2="Floor 5",
    city="San Francisco",
    province_code="CA",
    zip="94104",
    country_code="US",
    phone="4153334445",
)
SHIP_TO = Address(
    name="Ada Lovelace",
    address1="179 N Harbor Dr",
    city="Redondo Beach",
    province_code="CA",
    zip="90277",
    country_code="US",
    phone="3105551212",
)


class CarrierCrash(Exception):
    """The Lambda died here (raised by the fakes to inject a crash)."""


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# --------------------------------------------------------------------------- the label store


class InMemoryLabelStore:
    """`LabelStore` in a dict, with the DynamoDB adapter's conditions."""

    def __init__(self) -> None:
        self.records: dict[str, LabelRecord] = {}
        self.by_shipment: dict[str, str] = {}
        self.writes = 0
        self.step_writes = 0

    def _put(self, record: LabelRecord) -> None:
        self.records[record.order_id] = record
        self.writes += 1

    def get(self, order_id: str) -> LabelRecord | None:
        return self.records.get(order_id)

    def find_by_shipment(self, shipment_id: str) -> LabelRecord | None:
        order_id = self.by_shipment.get(shipment_id)
        return self.records.get(order_id) if order_id else None

    def save_order(self, order: ShippingOrder) -> bool:
        current = self.records.get(order.order_id) or LabelRecord(order_id=order.order_id)
        if current.order and current.order.storefront_updated_at >= order.storefront_updated_at:
            return False
        self._put(current.model_copy(update={"order": order}))
        return True

    def claim(
        self, order_id: str, *, owner: str, reference: str, now: datetime, lease_seconds: int
    ) -> LabelRecord:
        current = self.records.get(order_id) or LabelRecord(order_id=order_id)
        if current.purchased:
            return current
        if current.lease_until is not None and current.lease_until > now and current.owner != owner:
            raise LabelInProgress(f"another attempt holds the label lease of {order_id}")
        claimed = current.model_copy(
            update={
                "status": LabelStatus.CREATED if current.shipment_id else LabelStatus.CLAIMED,
                "owner": owner,
                "lease_until": now + timedelta(seconds=lease_seconds),
                "reference": reference,
                "attempts": current.attempts + 1,
                "claimed_at": current.claimed_at or now,
                "updated_at": now,
            }
        )
        self._put(claimed)
        return claimed

    def record_shipment(
        self, order_id: str, *, owner: str, shipment_id: str, now: datetime, lease_seconds: int
    ) -> None:
        current = self.records.get(order_id)
        if current is None or current.owner != owner or current.purchased:
            raise LabelInProgress(f"the label lease of {order_id} was lost")
        self._put(
            current.model_copy(
                update={
                    "shipment_id": shipment_id,
                    "status": LabelStatus.CREATED,
                    "lease_until": now + timedelta(seconds=lease_seconds),
                    "updated_at": now,
                }
            )
        )
        self.by_shipment[shipment_id] = order_id

    def record_purchase(
        self, order_id: str, purchase: LabelPurchase, *, now: datetime
    ) -> LabelRecord:
        current = self.records.get(order_id) or LabelRecord(order_id=order_id)
        if current.purchase is None:
            self._put(
                current.model_copy(
                    update={
                        "purchase": purchase,
                        "shipment_id": purchase.shipment_id,
                        "status": LabelStatus.PURCHASED,
                        "owner": None,
                        "lease_until": None,
                        "failure": None,
                        "updated_at": now,
                    }
                )
            )
        self.by_shipment[purchase.shipment_id] = order_id
        return self.records[order_id]

    def record_failure(self, order_id: str, *, owner: str, reason: str, now: datetime) -> None:
        current = self.records.get(order_id)
        if current is None or current.owner != owner or current.purchased:
            return
        self._put(
            current.model_copy(
                update={
                    "status": LabelStatus.FAILED,
                    "failure": reason,
                    "owner": None,
                    "lease_until": None,
                    "updated_at": now,
                }
            )
        )

    def record_tracking(self, order_id: str, state: TrackingState, *, now: datetime) -> bool:
        current = self.records.get(order_id)
        if current is None:
            return False
        applied = current.tracking
        same_event = applied is not None and applied.event_id == state.event_id
        if not same_event and not tracking_update_applies(applied, state.status, state.updated_at):
            return False
        self._put(current.model_copy(update={"tracking": state, "updated_at": now}))
        return True

    def mark_steps(self, order_id: str, steps: Collection[LabelStep], *, now: datetime) -> None:
        if not steps:
            return
        self.step_writes += 1
        current = self.records.get(order_id) or LabelRecord(order_id=order_id)
        self._put(
            current.model_copy(update={"steps": current.steps | set(steps), "updated_at": now})
        )


# --------------------------------------------------------------------------- the carrier

_SERVICES = (
    ("USPS", "GroundAdvantage", "5.57", 4),
    ("USPS", "Priority", "9.85", 2),
    ("UPS", "Ground", "10.94", 4),
    ("FedEx", "FEDEX_2_DAY", "22.45", 2),
)


class FakeCarrier:
    """A stateful carrier aggregator: EasyPost's rules, in memory."""

    name = "easypost"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.shipments: dict[str, CarrierShipment] = {}
        self.requests: list[ShipmentRequest] = []
        self.purchases: list[tuple[str, str]] = []
        self.calls: list[str] = []
        self.crash_after_buy = 0
        self.crash_after_create = 0
        self.refuse_street: str | None = None
        self.rates: tuple[tuple[str, str, str, int], ...] = _SERVICES
        self._ids = itertools.count(1)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):032x}"

    def create_shipment(self, request: ShipmentRequest) -> CarrierShipment:
        self.calls.append("create")
        if self.refuse_street and request.to_address.address1 == self.refuse_street:
            raise PermanentUpstreamError(
                "easypost POST /v2/shipments: 422 Unable to verify address. "
                "(shipment.to_address.street1: Address not found)",
                service="easypost",
                status=422,
                code="ADDRESS.VERIFY.FAILURE",
            )
        shipment_id = self._id("shp")
        shipment = CarrierShipment(
            shipment_id=shipment_id,
            reference=request.reference,
            rates=tuple(
                Rate(
                    rate_id=self._id("rate"),
                    carrier=carrier,
                    service=service,
                    amount=Money.parse(Decimal(amount), "USD"),
                    delivery_days=days,
                )
                for carrier, service, amount, days in self.rates
            ),
            created_at=self.clock(),
        )
        self.shipments[shipment_id] = shipment
        self.requests.append(request)
        if self.crash_after_create:
            self.crash_after_create -= 1
            raise CarrierCrash("the Lambda died right after the create call")
        return shipment

    def get_shipment(self, shipment_id: str) -> CarrierShipment:
        self.calls.append("get")
        return self.shipments[shipment_id]

    def find_shipments(self, reference: str, *, since: datetime | None) -> list[CarrierShipment]:
        self.calls.append("find")
        found = [
            s
            for s in self.shipments.values()
            if s.reference == reference
            and (since is None or s.created_at is None or s.created_at >= since)
        ]
        return sorted(found, key=lambda s: s.shipment_id, reverse=True)

    def buy(self, shipment_id: str, rate_id: str) -> CarrierShipment:
        self.calls.append("buy")
        shipment = self.shipments[shipment_id]
        if shipment.purchased:
            return shipment  # EasyPost's 422 SHIPMENT.POSTAGE.EXISTS, as the adapter answers it
        rate = next(r for r in shipment.rates if r.rate_id == rate_id)
        bought = shipment.model_copy(
            update={
                "selected_rate": rate,
                "tracking_code": f"9400{len(self.purchases) + 1:018d}",
                "label_url": f"https://labels.example/{shipment_id}.png",
                "tracker_id": self._id("trk"),
            }
        )
        self.shipments[shipment_id] = bought
        self.purchases.append((shipment_id, rate_id))
        if self.crash_after_buy:
            self.crash_after_buy -= 1
            raise CarrierCrash("the Lambda died right after the buy call")
        return bought


class RecordingFulfilment:
    def __init__(self) -> None:
        self.pushed: list[FulfilmentRequest] = []

    def push(self, request: FulfilmentRequest) -> str | None:
        self.pushed.append(request)
        return f"gid://shopify/Fulfillment/{len(self.pushed)}"


# --------------------------------------------------------------------------- builders


def line(
    line_id: str, sku: str | None, quantity: int, grams: int, *, ships: bool = True
) -> OrderLine:
    return OrderLine(
        line_id=line_id,
        sku=sku,
        title=f"Item {sku}",
        quantity=quantity,
        unit_price=Money.parse("10.00", "USD"),
        total_discount=Money.zero("USD"),
        grams=grams,
        requires_shipping=ships,
    )


DEFAULT_LINES = (line("L1", "TEE-M", 2, 200), line("L2", "MUG", 1, 350))


def order_data(
    lines: tuple[OrderLine, ...] = DEFAULT_LINES,
    *,
    ship_to: Address | None = SHIP_TO,
    updated_at: datetime = T0,
    cancelled: bool = False,
) -> OrderData:
    total = Money.parse("30.00", "USD")
    zero = Money.zero("USD")
    return OrderData(
        external_order_id=EXTERNAL,
        order_number="#1001",
        currency="USD",
        financial_status="paid",
        lines=lines,
        totals=OrderTotals(subtotal=total, discounts=zero, shipping=zero, tax=zero, total=total),
        shipping_address=ship_to,
        created_at=T0,
        updated_at=updated_at,
        cancelled_at=updated_at if cancelled else None,
    )


def _envelope(event_type: str, delivery: str, source: str = "shopify") -> dict[str, object]:
    return {
        "event_id": event_id(source, delivery, event_type, 0),
        "occurred_at": T0,
        "source": source,
        "shop": SHOP,
        "channel": "shopify",
        "order_id": ORDER_ID,
        "external_order_id": EXTERNAL,
        "correlation_id": ORDER_ID,
        "delivery_id": delivery,
    }


def order_placed(data: OrderData | None = None, delivery: str = "create-1") -> OrderPlaced:
    return OrderPlaced(**_envelope("OrderPlaced", delivery), data=data or order_data())


def order_updated(data: OrderData, delivery: str) -> OrderUpdated:
    return OrderUpdated(**_envelope("OrderUpdated", delivery), data=data)


def stock_committed(
    lines: tuple[tuple[str, str, int], ...] = (("L1", "TEE-M", 2), ("L2", "MUG", 1)),
) -> StockCommitted:
    return StockCommitted(
        **_envelope("StockCommitted", ORDER_ID, source="stock"),
        data=StockMoveData(
            lines=tuple(
                StockLine(line_id=lid, sku=sku, quantity=q, reserved=q) for lid, sku, q in lines
            )
        ),
    )


def deps(
    carrier: FakeCarrier,
    store: InMemoryLabelStore,
    publisher: object,
    clock: Clock,
    **overrides: object,
) -> LabelDeps:
    owners = (f"attempt-{n}" for n in itertools.count(1))
    values: dict[str, object] = {
        "carrier": carrier,
        "labels": store,
        "publisher": publisher,
        "policies": LabelPolicies(SHIP_FROM, lease_seconds=120),
        "clock": clock,
        "new_owner": lambda: next(owners),
    }
    values.update(overrides)
    return LabelDeps(**values)  # type: ignore[arg-type]


def load_app(name: str = "label_creation_app") -> ModuleType:
    """functions/label_creation/app.py, imported once under `name`."""
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "functions" / "label_creation" / "app.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def create_labels_table(client: Any, name: str) -> None:
    """The label table as the template declares it: `pk` (string) only."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
