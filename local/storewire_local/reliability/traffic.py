"""The reliability suite's traffic: a seeded history of orders, as a storefront sends it.

`generate(seed, orders)` plans a history, deterministic for its seed: a catalogue of SKUs over
two locations (a few of them *scarce*: more demand than supply, so some orders are
backordered), customers reused across orders (about one per three orders), and per order its
lines, currency, payment path (Shopify `orders/paid`, Stripe `payment_intent.succeeded`, a
Stripe `payment_intent.payment_failed`, or no payment), cancellation (before or after
payment), refund (with or without restock) and tracking plan. `History.prepare(http, emulator)`
puts in the tables and fakes what must be there before the first webhook (stock, locations,
channel listings, the Shopify Admin fake's copy of every order, the Stripe fake's
PaymentIntents); `History.deliveries` are then the webhooks, signed at send time by
`Delivery.headers`.

Phases. A real store sends refunds, cancellations of paid orders and profile edits hours or
days after checkout, when the order has long been processed. Each delivery carries its
`phase`: 0 checkout (customers/create, orders/create, the payment report, orders/updated, the
cancellation of an unpaid order), 1 after fulfilment (refunds, cancellations of paid orders,
customers/update), 2 tracking (`tracking_deliveries`, after the labels are bought). Within a
phase deliveries are in storefront time order, interleaved across orders, and causal per order
(create before paid, etc.). A runner that wants real-world timing drains the graph between
phases; one that does not is injecting a reordering fault.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Literal

import httpx

if TYPE_CHECKING:
    from storewire_local.testing import EmulatorHandle

SHOP = "storewire-reliability.myshopify.com"
SHOPIFY_WEBHOOK_SECRET = "shpss_storewire_dev_secret"  # noqa: S105 - the public dev default
STRIPE_WEBHOOK_SECRET = "whsec_storewire_dev_secret"  # noqa: S105 - the public dev default
EASYPOST_WEBHOOK_SECRET = "whsec_storewire_easypost_dev"  # noqa: S105 - the public dev default
STRIPE_API_KEY = "sk_test_storewire_dev"
LOCATIONS = ("east", "west")
"""Our two stock locations, in priority order (east is reserved from first)."""
LOCATION_PRIORITY = {"east": 10, "west": 20}
STOREFRONT_LOCATIONS = {"east": "gid://shopify/Location/1", "west": "gid://shopify/Location/2"}
ALL_LOCATIONS = "*"
EPOCH = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""Storefront time of the first order of every history."""
PREPARE_THREADS = 8
SHIPPED_STATUSES = frozenset({"in_transit", "out_for_delivery", "available_for_pickup"})

Payment = Literal["shopify", "stripe", "stripe_failed", "none"]
Cancel = Literal["", "unpaid", "paid"]

# (sku, title, USD price in cents, grams); the generator takes the first 6-10.
_CATALOGUE: tuple[tuple[str, str, int, int], ...] = (
    ("RW-TEE-BLK-M", "Organic Tee - Black / M", 2900, 180),
    ("RW-TEE-WHT-L", "Organic Tee - White / L", 2900, 190),
    ("RW-HOOD-GRY-L", "Heavy Hoodie - Grey / L", 6800, 620),
    ("RW-MUG-WHT", "Enamel Mug - White", 1850, 340),
    ("RW-CAP-NVY", "Dad Cap - Navy", 2400, 110),
    ("RW-SOCK-3PK", "Socks - 3 pack", 1500, 150),
    ("RW-TOTE-NAT", "Canvas Tote - Natural", 2200, 260),
    ("RW-BOTTLE-SS", "Steel Bottle 750 ml", 3400, 410),
    ("RW-BEANIE-RED", "Rib Beanie - Red", 2600, 120),
    ("RW-POSTER-A2", "Poster A2", 1900, 300),
)
_CURRENCIES = (("USD", 0.85), ("EUR", 0.10), ("JPY", 0.05))
_ADDRESSES = (
    ("123 Atlantic Ave", "Brooklyn", "New York", "NY", "11201"),
    ("500 Castro St", "Mountain View", "California", "CA", "94041"),
    ("2100 Main St", "Dallas", "Texas", "TX", "75201"),
    ("77 Water St", "Boston", "Massachusetts", "MA", "02109"),
    ("901 Pike St", "Seattle", "Washington", "WA", "98101"),
)
_FIRST = ("Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Radia", "Edsger", "Frances", "Tim")
_LAST = ("Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Perlman", "Dijkstra")
_TRACKING_PLANS: tuple[tuple[str, ...], ...] = (
    ("in_transit",),
    ("in_transit", "out_for_delivery"),
    ("in_transit", "out_for_delivery", "delivered"),
    ("pre_transit", "in_transit", "delivered"),
    ("delivered",),
)


# --------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Secrets:
    """What deliveries are signed with; the defaults are the emulator's development values."""

    shopify: str = SHOPIFY_WEBHOOK_SECRET
    stripe: str = STRIPE_WEBHOOK_SECRET
    easypost: str = EASYPOST_WEBHOOK_SECRET
    shop: str = SHOP


@dataclass(frozen=True)
class Delivery:
    """One webhook as its sender posts it to `/webhooks/{source}`."""

    source: str
    """"shopify" | "stripe" | "easypost"."""
    topic: str
    """The Shopify topic ("orders/create"...) or the Stripe / EasyPost event type."""
    delivery_id: str
    """X-Shopify-Webhook-Id / the Stripe evt_ id / the EasyPost Event id; from the seed."""
    body: bytes
    """Exactly what the vendor sends (compact JSON)."""
    order: int | None
    """The storefront (Shopify) order id it concerns, if any."""
    phase: int = 0
    """0 checkout, 1 after fulfilment, 2 tracking (see the module docstring)."""

    @property
    def path(self) -> str:
        return f"/webhooks/{self.source}"

    def headers(self, secrets: Secrets, now: float) -> dict[str, str]:
        """The headers the sender puts on it, signed with `secrets`, stamped at `now`."""
        if self.source == "shopify":
            from storewire_local.signing import shopify_headers

            return shopify_headers(
                self.topic,
                self.body,
                secret=secrets.shopify,
                shop=secrets.shop,
                webhook_id=self.delivery_id,
                event_id=_uuid(f"event|{self.delivery_id}"),
                triggered_at=datetime.fromtimestamp(now, UTC),
            )
        if self.source == "stripe":
            from storewire_local.fakes.stripe import sign_payload

            return {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": sign_payload(self.body, secrets.stripe, int(now)),
            }
        if self.source == "easypost":
            from storewire_local.fakes.easypost import sign_body

            return {
                "Content-Type": "application/json",
                "User-Agent": "EasyPost WebHook Agent 1.0",
                "X-Hmac-Signature": sign_body(self.body, secrets.easypost),
            }
        raise ValueError(f"unknown source {self.source!r}")


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Product:
    sku: str
    title: str
    price_cents: int
    """USD cents; EUR uses the same number, JPY x1.5 of the cents as yen."""
    grams: int
    scarce: bool

    def price(self, currency: str) -> Decimal:
        if currency == "JPY":
            return Decimal(self.price_cents * 3 // 2)
        return Decimal(self.price_cents) / 100


@dataclass(frozen=True)
class LinePlan:
    line_id: int
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class RefundLinePlan:
    line_id: int
    sku: str
    quantity: int
    restock: bool


@dataclass(frozen=True)
class RefundPlan:
    refund_id: int
    lines: tuple[RefundLinePlan, ...]
    amount: Decimal
    full: bool
    at: datetime

    @property
    def restock(self) -> bool:
        return any(line.restock for line in self.lines)


@dataclass(frozen=True)
class Snapshot:
    """An order snapshot the storefront sends (orders/create, orders/updated, orders/cancelled)."""

    topic: str
    updated_at: datetime
    financial_status: str
    cancelled: bool


@dataclass(frozen=True)
class TrackingStep:
    status: str
    updated_at: datetime


@dataclass(frozen=True)
class OrderPlan:
    """Everything the history does to one order."""

    index: int
    external: int
    order_id: str
    """Canonical: shopify:{shop}:{external}."""
    name: str
    customer: int
    email: str
    currency: str
    lines: tuple[LinePlan, ...]
    subtotal: Decimal
    tax: Decimal
    shipping: Decimal
    total: Decimal
    created_at: datetime
    payment: Payment
    cancel: Cancel
    refund: RefundPlan | None
    snapshots: tuple[Snapshot, ...]
    tracking: tuple[TrackingStep, ...]
    """What the carrier will report, if the order gets a label (empty: no tracking)."""
    address: int

    @property
    def paid(self) -> bool:
        return self.payment in ("shopify", "stripe")

    @property
    def cancelled(self) -> bool:
        return self.cancel != ""

    @property
    def latest_snapshot(self) -> Snapshot:
        return max(self.snapshots, key=lambda s: s.updated_at)


@dataclass(frozen=True)
class Profile:
    """One customers/create or customers/update the storefront sends."""

    topic: str
    first_name: str
    last_name: str
    phone: str
    updated_at: datetime


@dataclass(frozen=True)
class CustomerPlan:
    customer: int
    email: str
    profiles: tuple[Profile, ...]

    @property
    def latest_profile(self) -> Profile | None:
        return max(self.profiles, key=lambda p: p.updated_at) if self.profiles else None


@dataclass(frozen=True)
class ListingPlan:
    """A channel listing: our (sku, location or '*') on a storefront item and location."""

    sku: str
    location: str
    inventory_item_id: str
    location_id: str


@dataclass(frozen=True)
class _StripeSlot:
    """A Stripe delivery whose body needs the PaymentIntent the fake assigns in prepare()."""

    order: int
    topic: str
    delivery_id: str
    created: int
    phase: int


@dataclass
class History:
    """A planned history of `orders` orders, deterministic for `seed` (see `generate`)."""

    seed: int
    orders: int
    shop: str
    locations: tuple[str, ...]
    catalogue: dict[str, Product]
    stock: dict[tuple[str, str], int]
    """(sku, location) -> on hand at the start."""
    plans: tuple[OrderPlan, ...]
    customers: dict[int, CustomerPlan]
    listings: tuple[ListingPlan, ...]
    _items: list[Delivery | _StripeSlot] = field(default_factory=list, repr=False)
    intents: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)
    """Storefront order id -> the Stripe fake's PaymentIntent (filled by prepare())."""
    tracked: dict[str, tuple[TrackingStep, ...]] = field(default_factory=dict, repr=False)
    """Canonical order id -> the tracking steps `tracking_deliveries` produced."""
    _by_order: dict[str, OrderPlan] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_order = {p.order_id: p for p in self.plans}

    def plan(self, order_id: str) -> OrderPlan:
        return self._by_order[order_id]

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook of phases 0 and 1, in the order the senders send them.

        Stripe bodies carry the PaymentIntent the Stripe fake assigned: call prepare() (or
        `bind_intents`) first.
        """
        out: list[Delivery] = []
        for item in self._items:
            if isinstance(item, Delivery):
                out.append(item)
                continue
            intent = self.intents.get(item.order)
            if intent is None:
                raise RuntimeError(
                    f"no PaymentIntent for order {item.order}: call prepare() before deliveries"
                )
            event = _stripe_event(item, intent, self.seed)
            out.append(
                Delivery(
                    "stripe", item.topic, item.delivery_id, _compact(event), item.order, item.phase
                )
            )
        return out

    @property
    def planned(self) -> list[tuple[str, str, str, int | None, int]]:
        """(source, topic, delivery_id, order, phase) of every delivery: no fake needed."""
        return [(i.source if isinstance(i, Delivery) else "stripe", i.topic, i.delivery_id,
                 i.order, i.phase) for i in self._items]  # fmt: skip

    def bind_intents(self, intents: Mapping[int, dict[str, Any]]) -> None:
        """Record the Stripe fake's PaymentIntent per storefront order id."""
        self.intents.update(intents)

    # ------------------------------------------------------------------ prepare

    def prepare(self, http: httpx.Client, emulator: EmulatorHandle) -> None:
        """Put in the tables and fakes what must be there before the first webhook."""
        fakes: dict[str, str] = emulator.emu.info()["fakes"]
        self.prepare_stock(emulator)
        self.prepare_fakes(http, fakes)

    def prepare_stock(self, emulator: EmulatorHandle) -> None:
        """Locations, stock counts and channel listings in the stack's tables."""
        from storewire.adapters.dynamodb_channels import DynamoDBChannelListingStore
        from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
        from storewire.domain.channels import ChannelListing
        from storewire.domain.inventory import Location

        ddb = emulator.client("dynamodb")
        store = DynamoDBStockStore(ddb, emulator.resource("InventoryTable"))
        for name in self.locations:
            store.put_location(Location(name=name, priority=LOCATION_PRIORITY.get(name, 50)))
        for (sku, location), units in sorted(self.stock.items()):
            store.set_on_hand(sku, location, units, ref=f"reliability-{self.seed}")
        listings = DynamoDBChannelListingStore(ddb, emulator.resource("ChannelListingsTable"))
        now = datetime.now(UTC)
        for listing in self.listings:
            listings.put_mapping(
                ChannelListing(
                    sku=listing.sku,
                    location=listing.location,
                    inventory_item_id=listing.inventory_item_id,
                    location_id=listing.location_id,
                    mapped_at=now,
                )
            )

    def prepare_fakes(self, http: httpx.Client, fakes: Mapping[str, str]) -> None:
        """The storefront's items and orders (Shopify Admin fake), the PaymentIntents (Stripe)."""
        admin, stripe = fakes["shopify_admin"], fakes["stripe"]
        for listing in self.listings:
            http.post(
                f"{admin}/_fake/inventory",
                json={
                    "inventory_item_id": listing.inventory_item_id,
                    "location_id": listing.location_id,
                    "available": self.channel_start(listing),
                    "sku": listing.sku,
                },
            ).raise_for_status()

        def seed_order(plan: OrderPlan) -> None:
            # Shopify holds the order (its transactions when paid at Shopify, its fulfillment
            # order) before it sends the webhooks.
            status = "paid" if plan.payment == "shopify" else "pending"
            raw = order_payload(plan, self.shop, plan.snapshots[0])
            http.post(
                f"{admin}/_fake/orders", json={**raw, "financial_status": status}
            ).raise_for_status()

        def create_intent(plan: OrderPlan) -> tuple[int, dict[str, Any]]:
            declined = plan.payment == "stripe_failed"
            answer = http.post(
                f"{stripe}/v1/payment_intents",
                headers={
                    "Authorization": f"Bearer {STRIPE_API_KEY}",
                    "Idempotency-Key": f"reliability-{self.seed}-{plan.order_id}",
                },
                data={
                    "amount": str(minor_units(plan.total, plan.currency)),
                    "currency": plan.currency.lower(),
                    "confirm": "true",
                    "payment_method": "pm_card_chargeDeclined" if declined else "pm_card_visa",
                    "metadata[order_id]": plan.order_id,
                },
            )
            if declined:
                if answer.status_code != 402:
                    answer.raise_for_status()
                return plan.external, dict(answer.json()["error"]["payment_intent"])
            answer.raise_for_status()
            return plan.external, dict(answer.json())

        with ThreadPoolExecutor(PREPARE_THREADS) as pool:
            list(pool.map(seed_order, self.plans))
            wanted = [p for p in self.plans if p.payment in ("stripe", "stripe_failed")]
            wanted = [p for p in wanted if p.external not in self.intents]
            self.bind_intents(dict(pool.map(create_intent, wanted)))

    def channel_start(self, listing: ListingPlan) -> int:
        """What the storefront shows for a listing before the run: our available then."""
        if listing.location == ALL_LOCATIONS:
            return sum(n for (sku, _), n in self.stock.items() if sku == listing.sku)
        return self.stock.get((listing.sku, listing.location), 0)

    # ------------------------------------------------------------------ tracking

    def tracking_deliveries(self, http: httpx.Client, easypost_url: str) -> list[Delivery]:
        """EasyPost `tracker.updated` Events for the orders planned to be tracked that got a
        label (found at the EasyPost fake by reference = canonical order id), in time order."""
        state = http.get(f"{easypost_url}/_fake/state").raise_for_status().json()
        bought = {p["shipment_id"] for p in state.get("purchases", [])}
        shipments: dict[str, dict[str, Any]] = {}
        for shipment in state.get("shipments", {}).values():
            if shipment.get("id") in bought and shipment.get("reference"):
                shipments.setdefault(str(shipment["reference"]), shipment)
        items: list[tuple[datetime, int, Delivery]] = []
        for plan in self.plans:
            shipment = shipments.get(plan.order_id)
            if not plan.tracking or shipment is None or not shipment.get("tracker"):
                continue
            tracker = dict(shipment["tracker"])
            self.tracked[plan.order_id] = plan.tracking
            previous = str(tracker.get("status") or "pre_transit")
            details = list(tracker.get("tracking_details") or [])
            for n, step in enumerate(plan.tracking):
                at = _iso(step.updated_at)
                details = [
                    *details,
                    {
                        "object": "TrackingDetail",
                        "message": step.status.replace("_", " ").capitalize(),
                        "status": step.status,
                        "status_detail": "status_update",
                        "datetime": at,
                        "source": tracker.get("carrier"),
                        "tracking_location": {
                            "object": "TrackingLocation",
                            "city": "Memphis",
                            "state": "TN",
                            "country": "US",
                            "zip": None,
                        },
                    },
                ]
                result = {
                    **tracker,
                    "status": step.status,
                    "status_detail": "status_update",
                    "updated_at": at,
                    "tracking_details": details,
                }
                event_id = "evt_" + _hex(f"{self.seed}|track|{plan.external}|{n}", 32)
                event = {
                    "object": "Event",
                    "id": event_id,
                    "mode": "test",
                    "description": "tracker.updated",
                    "previous_attributes": {"status": previous},
                    "result": result,
                    "status": "pending",
                    "pending_urls": [],
                    "completed_urls": [],
                    "user_id": "user_storewirefake",
                    "created_at": at,
                    "updated_at": at,
                }
                previous = step.status
                delivery = Delivery(
                    "easypost", "tracker.updated", event_id, _compact(event), plan.external, 2
                )
                items.append((step.updated_at, plan.index, delivery))
        items.sort(key=lambda item: (item[0], item[1]))
        return [delivery for _, _, delivery in items]


# --------------------------------------------------------------------------- generation


def generate(seed: int, orders: int, *, shop: str = SHOP) -> History:
    """Plan `orders` orders from `seed` (see the module docstring); fast: no I/O."""
    if orders < 1:
        raise ValueError("a history has at least one order")
    rng = random.Random(seed)
    catalogue = _catalogue(rng)
    skus = list(catalogue)
    base = 7_200_000_000_000 + (seed % 100_000) * 10_000_000
    customer_base = 8_200_000_000_000 + (seed % 100_000) * 10_000_000

    n_customers = max(1, orders // 3)
    # every customer has an order; the others are spread at random (repeat buyers)
    owners = [*range(n_customers), *(rng.randrange(n_customers) for _ in range(orders))]
    owners = owners[:orders]
    rng.shuffle(owners)
    first_order: dict[int, int] = {}
    for index, owner in enumerate(owners):
        first_order.setdefault(owner, index)

    plans: list[OrderPlan] = []
    items: list[tuple[int, datetime, int, Delivery | _StripeSlot]] = []
    seq = 0

    def add(phase: int, at: datetime, item: Delivery | _StripeSlot) -> None:
        nonlocal seq
        seq += 1
        items.append((phase, at, seq, item))

    def delivery_id(kind: str, *parts: object) -> str:
        return _uuid("|".join([str(seed), kind, *map(str, parts)]))

    customer_profiles: dict[int, list[Profile]] = {c: [] for c in range(n_customers)}
    customer_ids = {c: customer_base + c for c in range(n_customers)}
    emails = {c: f"shopper{c}.s{seed}@example.com" for c in range(n_customers)}

    for index in range(orders):
        owner = owners[index]
        external = base + index
        created = EPOCH + timedelta(minutes=3 * index, seconds=rng.randrange(0, 150))
        currency = _pick(rng, _CURRENCIES)
        n_lines = rng.choices((1, 2, 3), weights=(55, 30, 15))[0]
        chosen = rng.sample(range(len(skus)), n_lines)
        lines = tuple(
            LinePlan(
                line_id=9_000_000_000_000 + (seed % 100_000) * 10_000_000 + index * 4 + k,
                sku=skus[i],
                quantity=rng.choices((1, 2, 3), weights=(70, 22, 8))[0],
                unit_price=catalogue[skus[i]].price(currency),
            )
            for k, i in enumerate(chosen)
        )
        subtotal = sum((line.unit_price * line.quantity for line in lines), Decimal(0))
        tax = _round(subtotal * Decimal("0.08"), currency)
        shipping = Decimal(700) if currency == "JPY" else Decimal("5.00")
        total = subtotal + tax + shipping

        roll = rng.random()
        payment: Payment = (
            "shopify"
            if roll < 0.60
            else "stripe"
            if roll < 0.85
            else "stripe_failed"
            if roll < 0.88
            else "none"
        )
        cancel: Cancel = ""
        if payment == "none" and rng.random() < 0.42:
            cancel = "unpaid"
        elif payment in ("shopify", "stripe") and rng.random() < 0.035:
            cancel = "paid"
        paid_kept = payment in ("shopify", "stripe") and cancel == ""

        name = f"#R{seed % 1000}-{index + 1}"
        email = emails[owner]
        customer_id = customer_ids[owner]
        address = rng.randrange(len(_ADDRESSES))
        pay_at = created + timedelta(seconds=rng.randrange(5, 240))
        after = created + timedelta(days=2, minutes=rng.randrange(0, 3 * orders + 600))

        snapshots = [Snapshot("orders/create", created, _create_status(payment), False)]
        refund: RefundPlan | None = None
        refund_roll = rng.random()
        if cancel == "paid":
            refund = RefundPlan(
                refund_id=external + 500_000_000,
                lines=tuple(RefundLinePlan(x.line_id, x.sku, x.quantity, True) for x in lines),
                amount=total,
                full=True,
                at=after + timedelta(seconds=1),
            )
        elif paid_kept and refund_roll < 0.061:
            refund = _refund(rng, external, lines, total, restock=True, at=after)
        elif paid_kept and refund_roll < 0.061 + 0.0366:
            refund = _refund(rng, external, lines, total, restock=False, at=after)
        tracking: tuple[TrackingStep, ...] = ()
        if paid_kept and rng.random() < 0.30:
            steps = _TRACKING_PLANS[rng.randrange(len(_TRACKING_PLANS))]
            start = created + timedelta(days=1, hours=rng.randrange(0, 12))
            tracking = tuple(
                TrackingStep(status, start + timedelta(hours=6 * n))
                for n, status in enumerate(steps)
            )

        # phase 0: checkout
        if first_order[owner] == index and rng.random() < 0.75:
            profile = Profile(
                "customers/create",
                _FIRST[owner % len(_FIRST)],
                _LAST[owner % len(_LAST)],
                f"+1212555{owner % 10_000:04d}",
                created - timedelta(minutes=2),
            )
            customer_profiles[owner].append(profile)
            add(
                0,
                profile.updated_at,
                Delivery(
                    "shopify",
                    "customers/create",
                    delivery_id("customers/create", owner),
                    _compact(_customer_payload(customer_id, email, profile)),
                    None,
                ),
            )
        if payment == "stripe":
            snapshots.append(
                Snapshot("orders/updated", pay_at + timedelta(seconds=2), "paid", False)
            )
        if cancel == "unpaid":
            cancel_at = created + timedelta(minutes=rng.randrange(10, 90))
            snapshots.append(Snapshot("orders/cancelled", cancel_at, "voided", True))
        elif cancel == "paid":
            snapshots.append(Snapshot("orders/cancelled", after, "refunded", True))
        plan = OrderPlan(
            index=index,
            external=external,
            order_id=f"shopify:{shop}:{external}",
            name=name,
            customer=customer_id,
            email=email,
            currency=currency,
            lines=lines,
            subtotal=subtotal,
            tax=tax,
            shipping=shipping,
            total=total,
            created_at=created,
            payment=payment,
            cancel=cancel,
            refund=refund,
            snapshots=tuple(snapshots),
            tracking=tracking,
            address=address,
        )
        plans.append(plan)

        payload = _order_base(plan)

        def snapshot(
            s: Snapshot, phase: int, plan: OrderPlan = plan, payload: dict[str, Any] = payload
        ) -> None:
            external = plan.external
            add(
                phase,
                s.updated_at,
                Delivery(
                    "shopify",
                    s.topic,
                    delivery_id(s.topic, external),
                    _compact(_with_snapshot(payload, plan, s)),
                    external,
                    phase,
                ),
            )

        snapshot(snapshots[0], 0)
        if payment == "shopify":
            paid = Snapshot("orders/paid", pay_at, "paid", False)
            snapshot(paid, 0)
        elif payment in ("stripe", "stripe_failed"):
            topic = (
                "payment_intent.succeeded"
                if payment == "stripe"
                else "payment_intent.payment_failed"
            )
            add(
                0,
                pay_at,
                _StripeSlot(
                    external,
                    topic,
                    "evt_" + _hex(f"{seed}|stripe|{external}", 24),
                    int(pay_at.timestamp()),
                    0,
                ),
            )
        for s in snapshots[1:]:
            snapshot(s, 1 if s.updated_at >= after else 0)
        if refund is not None:
            add(
                1,
                refund.at,
                Delivery(
                    "shopify",
                    "refunds/create",
                    delivery_id("refunds/create", external),
                    _compact(_refund_payload(plan, refund)),
                    external,
                    1,
                ),
            )

    # phase 1: profile edits, days later
    for n in range(round(orders * 0.10)):
        owner = rng.randrange(n_customers)
        at = EPOCH + timedelta(days=3, minutes=5 * n)
        profile = Profile(
            "customers/update",
            _FIRST[(owner + n) % len(_FIRST)],
            f"{_LAST[owner % len(_LAST)]}-{n}",
            f"+1646555{n % 10_000:04d}",
            at,
        )
        customer_profiles[owner].append(profile)
        add(
            1,
            at,
            Delivery(
                "shopify",
                "customers/update",
                delivery_id("customers/update", owner, n),
                _compact(_customer_payload(customer_ids[owner], emails[owner], profile)),
                None,
                1,
            ),
        )

    items.sort(key=lambda item: (item[0], item[1], item[2]))
    demand: dict[str, int] = {}
    for plan in plans:
        for line in plan.lines:
            demand[line.sku] = demand.get(line.sku, 0) + line.quantity
    stock: dict[tuple[str, str], int] = {}
    for sku, product in catalogue.items():
        wanted = demand.get(sku, 0)
        supply = (
            max(1, math.floor(wanted * 0.6)) if product.scarce else wanted + max(3, wanted // 5)
        )
        east = supply * 2 // 5
        stock[(sku, "east")] = east
        stock[(sku, "west")] = supply - east
    listings = _listings(seed, skus)
    return History(
        seed=seed,
        orders=orders,
        shop=shop,
        locations=LOCATIONS,
        catalogue=catalogue,
        stock=stock,
        plans=tuple(plans),
        customers={
            customer_ids[c]: CustomerPlan(customer_ids[c], emails[c], tuple(customer_profiles[c]))
            for c in range(n_customers)
        },
        listings=listings,
        _items=[item for _, _, _, item in items],
    )


def _catalogue(rng: random.Random) -> dict[str, Product]:
    size = rng.randint(6, 10)
    picked = _CATALOGUE[:size]
    scarce = set(rng.sample(range(size), rng.randint(2, 3)))
    return {
        sku: Product(sku, title, cents, grams, i in scarce)
        for i, (sku, title, cents, grams) in enumerate(picked)
    }


def _listings(seed: int, skus: Sequence[str]) -> tuple[ListingPlan, ...]:
    """Every SKU on the storefront: per location, except two sold from one pool ('*')."""
    out: list[ListingPlan] = []
    for n, sku in enumerate(skus):
        item = f"gid://shopify/InventoryItem/{(seed % 100_000) * 1000 + 100 + n}"
        if n < 2:
            out.append(ListingPlan(sku, ALL_LOCATIONS, item, STOREFRONT_LOCATIONS["east"]))
            continue
        for location in LOCATIONS:
            out.append(ListingPlan(sku, location, item, STOREFRONT_LOCATIONS[location]))
    return tuple(out)


def _create_status(payment: Payment) -> str:
    return "paid" if payment == "shopify" else "pending"


def _refund(
    rng: random.Random,
    external: int,
    lines: tuple[LinePlan, ...],
    total: Decimal,
    *,
    restock: bool,
    at: datetime,
) -> RefundPlan:
    refund_id = external + 500_000_000
    if rng.random() < 0.5:  # the whole order back
        return RefundPlan(
            refund_id,
            tuple(RefundLinePlan(x.line_id, x.sku, x.quantity, restock) for x in lines),
            total,
            True,
            at,
        )
    line = lines[rng.randrange(len(lines))]
    quantity = rng.randint(1, line.quantity)
    return RefundPlan(
        refund_id,
        (RefundLinePlan(line.line_id, line.sku, quantity, restock),),
        line.unit_price * quantity,
        False,
        at,
    )


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    roll = rng.random()
    for value, weight in weighted:
        if roll < weight:
            return value
        roll -= weight
    return weighted[-1][0]


# --------------------------------------------------------------------------- payloads


def money_text(amount: Decimal, currency: str) -> str:
    """A Shopify amount string: `12.50`, `1500` for zero-decimal currencies."""
    if currency == "JPY":
        return str(amount.quantize(Decimal(1)))
    return str(amount.quantize(Decimal("0.01")))


def minor_units(amount: Decimal, currency: str) -> int:
    return int(amount) if currency == "JPY" else int((amount * 100).to_integral_value())


def _round(amount: Decimal, currency: str) -> Decimal:
    quantum = Decimal(1) if currency == "JPY" else Decimal("0.01")
    return amount.quantize(quantum, rounding=ROUND_HALF_UP)


def _money_set(amount: Decimal, currency: str) -> dict[str, Any]:
    bag = {"amount": money_text(amount, currency), "currency_code": currency}
    return {"shop_money": bag, "presentment_money": dict(bag)}


def order_payload(plan: OrderPlan, shop: str, snapshot: Snapshot) -> dict[str, Any]:
    """The Shopify order webhook body (REST shape) of `plan` as `snapshot` shows it."""
    return _with_snapshot(_order_base(plan), plan, snapshot)


def _with_snapshot(base: dict[str, Any], plan: OrderPlan, snapshot: Snapshot) -> dict[str, Any]:
    cancelled = snapshot.cancelled
    paid = snapshot.financial_status == "paid"
    return {
        **base,
        "updated_at": _iso(snapshot.updated_at),
        "cancelled_at": _iso(snapshot.updated_at) if cancelled else None,
        "cancel_reason": "customer" if cancelled else None,
        "financial_status": snapshot.financial_status,
        "total_outstanding": money_text(Decimal(0) if paid else plan.total, plan.currency),
    }


def _order_base(plan: OrderPlan) -> dict[str, Any]:
    c = plan.currency
    street, city, province, code, zip_code = _ADDRESSES[plan.address]
    first, last = "Shopper", str(plan.customer % 100_000)
    address = {
        "first_name": first,
        "last_name": last,
        "name": f"{first} {last}",
        "company": None,
        "address1": street,
        "address2": None,
        "city": city,
        "province": province,
        "province_code": code,
        "zip": zip_code,
        "country": "United States",
        "country_code": "US",
        "phone": None,
    }
    return {
        "id": plan.external,
        "admin_graphql_api_id": f"gid://shopify/Order/{plan.external}",
        "name": plan.name,
        "order_number": plan.index + 1,
        "email": plan.email,
        "contact_email": plan.email,
        "created_at": _iso(plan.created_at),
        "processed_at": _iso(plan.created_at),
        "closed_at": None,
        "currency": c,
        "presentment_currency": c,
        "fulfillment_status": None,
        "confirmed": True,
        "test": False,
        "subtotal_price": money_text(plan.subtotal, c),
        "subtotal_price_set": _money_set(plan.subtotal, c),
        "total_discounts": money_text(Decimal(0), c),
        "total_tax": money_text(plan.tax, c),
        "total_price": money_text(plan.total, c),
        "total_price_set": _money_set(plan.total, c),
        "total_shipping_price_set": _money_set(plan.shipping, c),
        "shipping_lines": [
            {"title": "Standard", "code": "STANDARD", "price": money_text(plan.shipping, c)}
        ],
        "payment_gateway_names": ["stripe"]
        if plan.payment.startswith("stripe")
        else ["shopify_payments"],
        "source_name": "web",
        "tags": "reliability",
        "customer": {
            "id": plan.customer,
            "email": plan.email,
            "first_name": first,
            "last_name": last,
            "state": "enabled",
        },
        "shipping_address": address,
        "billing_address": dict(address),
        "line_items": [
            {
                "id": line.line_id,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{line.line_id}",
                "product_id": 8_000_000_000 + int(_hex(line.sku, 6), 16),
                "variant_id": 4_000_000_000 + int(_hex(line.sku, 6), 16),
                "sku": line.sku,
                "title": line.sku.split("-")[1].title(),
                "name": line.sku,
                "variant_title": None,
                "vendor": "Storewire Reliability",
                "quantity": line.quantity,
                "fulfillable_quantity": line.quantity,
                "price": money_text(line.unit_price, c),
                "price_set": _money_set(line.unit_price, c),
                "total_discount": money_text(Decimal(0), c),
                "grams": 250,
                "requires_shipping": True,
                "taxable": True,
                "fulfillment_status": None,
            }
            for line in plan.lines
        ],
    }


def _refund_payload(plan: OrderPlan, refund: RefundPlan) -> dict[str, Any]:
    c = plan.currency
    prices = {line.line_id: line.unit_price for line in plan.lines}
    return {
        "id": refund.refund_id,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund.refund_id}",
        "order_id": plan.external,
        "created_at": _iso(refund.at),
        "processed_at": _iso(refund.at),
        "note": "cancelled" if plan.cancel == "paid" else "customer return",
        "restock": refund.restock,
        "refund_line_items": [
            {
                "id": refund.refund_id * 10 + n,
                "line_item_id": line.line_id,
                "location_id": None,
                "quantity": line.quantity,
                "restock_type": (
                    ("cancel" if plan.cancel == "paid" else "return")
                    if line.restock
                    else "no_restock"
                ),
                "subtotal_set": _money_set(prices[line.line_id] * line.quantity, c),
                "total_tax_set": _money_set(Decimal(0), c),
                "line_item": {
                    "id": line.line_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                },
            }
            for n, line in enumerate(refund.lines)
        ],
        "transactions": [
            {
                "id": refund.refund_id + 7,
                "order_id": plan.external,
                "kind": "refund",
                "status": "success",
                "gateway": "stripe" if plan.payment.startswith("stripe") else "shopify_payments",
                "amount": money_text(refund.amount, c),
                "currency": c,
            }
        ],
    }


def _customer_payload(customer_id: int, email: str, profile: Profile) -> dict[str, Any]:
    return {
        "id": customer_id,
        "email": email,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "phone": profile.phone,
        "state": "enabled",
        "verified_email": True,
        "tags": "",
        "currency": "USD",
        "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in"},
        "created_at": _iso(profile.updated_at - timedelta(seconds=1)),
        "updated_at": _iso(profile.updated_at),
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
    }


def _stripe_event(slot: _StripeSlot, intent: Mapping[str, Any], seed: int) -> dict[str, Any]:
    return {
        "id": slot.delivery_id,
        "object": "event",
        "api_version": "2025-07-30.basil",
        "created": slot.created,
        "data": {"object": dict(intent)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {
            "id": "req_" + _hex(f"{seed}|req|{slot.delivery_id}", 14),
            "idempotency_key": None,
        },
        "type": slot.topic,
    }


# --------------------------------------------------------------------------- helpers


def _compact(raw: Any) -> bytes:
    return json.dumps(raw, separators=(",", ":")).encode()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hex(material: str, length: int) -> str:
    return hashlib.sha256(material.encode()).hexdigest()[:length]


def _uuid(material: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(material.encode()).digest()[:16], version=4))
