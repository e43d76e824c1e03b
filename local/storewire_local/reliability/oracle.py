"""The reliability suite's oracle: what a lossless, exactly-once run of a history ends with.

Which order gets scarce stock depends on arrival order and concurrency, so the oracle never
predicts the allocation. It reads the allocation the run made (the ledger's reserve entries
per order, line and location) and checks that it is *valid*, then that, given it, everything
else is *exact*:

* **Allocation.** Every order that was not cancelled (or refused by its gateway) before its
  reservation is placed; each line reserved in full or short, the short lines being the
  `backordered` the ledger records; a line is short only if its SKU ran out (the units
  reserved for it over the whole run reach the SKU's starting stock); pieces only at our
  locations, never more than the line asks.
* **Stock moves.** Per order, by its plan: paid -> every reservation committed; cancelled or
  payment failed -> released; cancelled after payment -> each line committed or released
  (which one depends on timing: left free); unpaid -> still reserved. Never both for one line.
  A refund with restock restocks exactly the committed units it names (capped at what was
  committed), at the locations they were committed from; no other restock.
* **Conservation** per (SKU, location): on hand = start - committed + restocked; available =
  on hand - reservations neither committed nor released; available never negative.
* **Per order**: payment status, stock status (as the order record derives it from the moves),
  one label at the EasyPost fake iff something was committed (at most one, and only if
  committed, for an order cancelled after payment: label creation drops the order once it
  knows of the cancel), the order record's shipment and tracking, the storefront fulfilment
  with the label's tracking number, and CRM `synced`.
* **Once on the bus.** One distinct `PaymentConfirmed` id per paid order (zero otherwise), one
  `PaymentFailed` per refused payment, no `PaymentMismatch`, one `LabelCreated` id per label.
  The same id delivered twice is a republish after a crash (legitimate: consumers dedupe on
  it) and is only counted; two different ids for one order is a double effect.
* **CRM**: one HubSpot contact per email with order count, total spent (reporting currency
  USD, never converted), per-currency totals, last order date / status / number and profile,
  all as `storewire.domain.crm` computes them; one deal per order, associated with its contact.
* **Channels**: each listing's storefront level equals the ledger's available as channel sync
  defines it (its location's, or the total for `*`, never below 0); the pushes per listing are
  at most the SKU's distinct stock versions.

Deliberately left free: which orders got scarce units and from which location; for orders
cancelled after payment, whether the cancel overtook the commit (and so whether a label was
bought); carriers, services, rates and tracking numbers (read from the fake and then checked
for consistency); event times.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from storewire.adapters.dynamodb_orders import record_from_item

from .traffic import ALL_LOCATIONS, SHIPPED_STATUSES, History, OrderPlan

if TYPE_CHECKING:
    from storewire_local.testing import EmulatorHandle

REPORTING_CURRENCY = "USD"

# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class LedgerRow:
    """One ledger entry of an order: a move of one line (restocks: per refund, `ref`)."""

    line_id: str
    kind: str
    sku: str
    pieces: tuple[tuple[str, int], ...]
    ref: str = ""

    @property
    def quantity(self) -> int:
        return sum(q for _, q in self.pieces)


@dataclass(frozen=True)
class OrderFlags:
    """The ledger's `#order` item."""

    placed: bool = False
    cancelled: bool = False
    committed: bool = False
    backordered: tuple[str, ...] = ()
    """Line ids that were short when the order was placed."""


@dataclass(frozen=True)
class RecordView:
    """What the order record says, per concern."""

    payment: str
    stock: str
    shipment: str
    crm: str
    cancelled: bool = False
    tracking_number: str | None = None
    tracking_status: str | None = None


@dataclass(frozen=True)
class Label:
    """One label sold at the EasyPost fake."""

    reference: str
    shipment_id: str
    tracking_code: str | None


@dataclass(frozen=True)
class CrmObject:
    id: str
    properties: dict[str, str]


@dataclass(frozen=True)
class BusEvent:
    detail_type: str
    event_id: str
    order_id: str | None = None
    sku: str | None = None
    version: int | None = None


@dataclass
class Observed:
    """What the run ended with: the stack's tables, the fakes' state, the bus recorder."""

    stock: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(sku, location) -> (on_hand, available)."""
    ledger: dict[str, list[LedgerRow]] = field(default_factory=dict)
    flags: dict[str, OrderFlags] = field(default_factory=dict)
    records: dict[str, RecordView] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)
    fulfilments: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    """Storefront order id -> per fulfilment, its tracking numbers."""
    contacts: list[CrmObject] = field(default_factory=list)
    deals: list[CrmObject] = field(default_factory=list)
    associations: set[tuple[str, str]] = field(default_factory=set)
    """(deal id, contact id)."""
    channel: dict[tuple[str, str], int] = field(default_factory=dict)
    """(inventory item gid, storefront location gid) -> available on the storefront."""
    pushes: dict[tuple[str, str], int] = field(default_factory=dict)
    """(inventory item gid, storefront location gid) -> inventorySetQuantities applied."""
    events: list[BusEvent] = field(default_factory=list)


def observe(emulator: EmulatorHandle, http: httpx.Client) -> Observed:
    """Read the run's end state: paginated table scans, `/_fake/state`, the bus recorder."""
    ddb = emulator.client("dynamodb")
    fakes: dict[str, str] = emulator.emu.info()["fakes"]
    observed = Observed()
    _read_inventory(_scan(ddb, emulator.resource("InventoryTable")), observed)
    for item in _scan(ddb, emulator.resource("OrdersTable")):
        record = record_from_item(item).model_dump(mode="json")
        observed.records[record["order_id"]] = _record_view(record)
    _read_fakes(
        {
            name: http.get(f"{url}/_fake/state").raise_for_status().json()
            for name, url in fakes.items()
        },
        observed,
    )
    observed.events = [_bus_event(e) for e in emulator.events()]
    return observed


def _scan(ddb: Any, table: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while True:
        page = ddb.scan(
            TableName=table, **kwargs, **({"ExclusiveStartKey": start} if start else {})
        )
        items.extend(page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def _read_inventory(items: Iterable[Mapping[str, Any]], observed: Observed) -> None:
    for item in items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk.startswith("STOCK#"):
            key = (pk.removeprefix("STOCK#"), sk.removeprefix("LOC#"))
            observed.stock[key] = (int(item["on_hand"]["N"]), int(item["available"]["N"]))
        elif pk.startswith("LEDGER#") and not pk.startswith("LEDGER#manual#"):
            order_id = pk.removeprefix("LEDGER#")
            if sk == "#order":
                backordered = json.loads(item.get("backordered", {}).get("S", "[]"))
                observed.flags[order_id] = OrderFlags(
                    placed=item.get("placed", {}).get("BOOL", False),
                    cancelled=item.get("cancelled", {}).get("BOOL", False),
                    committed=item.get("committed", {}).get("BOOL", False),
                    backordered=tuple(str(b["line_id"]) for b in backordered),
                )
                continue
            observed.ledger.setdefault(order_id, []).append(
                LedgerRow(
                    line_id=item["line_id"]["S"],
                    kind=item["kind"]["S"],
                    sku=item["sku"]["S"],
                    pieces=tuple(
                        (p["M"]["location"]["S"], int(p["M"]["quantity"]["N"]))
                        for p in item["pieces"]["L"]
                    ),
                    ref=item.get("ref", {}).get("S", ""),
                )
            )


def _record_view(record: Mapping[str, Any]) -> RecordView:
    shipment = record.get("shipment") or {}
    details = shipment.get("details") or {}
    return RecordView(
        payment=str((record.get("payment") or {}).get("status", "pending")),
        stock=str((record.get("stock") or {}).get("status", "pending")),
        shipment=str(shipment.get("status", "pending")),
        crm=str((record.get("crm") or {}).get("status", "pending")),
        cancelled=record.get("cancelled_at") is not None,
        tracking_number=details.get("tracking_number"),
        tracking_status=details.get("tracking_status"),
    )


def _read_fakes(states: Mapping[str, Mapping[str, Any]], observed: Observed) -> None:
    easypost = states.get("easypost", {})
    shipments = easypost.get("shipments", {})
    for purchase in easypost.get("purchases", []):
        shipment = shipments.get(purchase["shipment_id"], {})
        observed.labels.append(
            Label(
                reference=str(purchase.get("reference") or shipment.get("reference") or ""),
                shipment_id=str(purchase["shipment_id"]),
                tracking_code=shipment.get("tracking_code"),
            )
        )
    admin = states.get("shopify_admin", {})
    for key, order in admin.get("orders", {}).items():
        observed.fulfilments[str(key)] = [
            tuple(str(t.get("number")) for t in f["view"].get("trackingInfo", []))
            for f in order.get("fulfillments", [])
        ]
    for item_id, item in admin.get("inventory", {}).items():
        for location_id, level in item.get("levels", {}).items():
            observed.channel[(str(item_id), str(location_id))] = int(level)
    pushes: Counter[tuple[str, str]] = Counter(
        (str(a["inventory_item_id"]), str(a["location_id"])) for a in admin.get("adjustments", [])
    )
    observed.pushes = dict(pushes)
    hubspot = states.get("hubspot", {})
    observed.contacts = [
        CrmObject(str(c["id"]), {k: str(v) for k, v in c.get("properties", {}).items()})
        for c in hubspot.get("contacts", [])
        if not c.get("archived")
    ]
    observed.deals = [
        CrmObject(str(d["id"]), {k: str(v) for k, v in d.get("properties", {}).items()})
        for d in hubspot.get("deals", [])
        if not d.get("archived")
    ]
    observed.associations = {
        (str(a[1]), str(a[3]))
        for a in hubspot.get("associations", [])
        if len(a) == 4 and a[0] == "deals" and a[2] == "contacts"
    }


def _bus_event(envelope: Mapping[str, Any]) -> BusEvent:
    detail = envelope.get("detail") or {}
    raw = detail.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    version = data.get("version") if envelope.get("detail-type") == "StockLevelChanged" else None
    return BusEvent(
        detail_type=str(envelope.get("detail-type")),
        event_id=str(detail.get("event_id") or envelope.get("id")),
        order_id=detail.get("order_id"),
        sku=data.get("sku") if version is not None else None,
        version=int(version) if version is not None else None,
    )


# --------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class OrderExpectation:
    """What a lossless run ends with for one order, whatever the allocation."""

    order_id: str
    payment: str
    confirmations: int
    failures: int
    tombstoned: bool
    """A cancel or a failed payment marks the ledger: nothing more is reserved."""
    financial_status: str
    refunded: Decimal


@dataclass(frozen=True)
class ContactExpectation:
    email: str
    orders: tuple[str, ...]
    profile: dict[str, str]


@dataclass(frozen=True)
class Expected:
    orders: dict[str, OrderExpectation]
    contacts: dict[str, ContactExpectation]


def expected(history: History) -> Expected:
    """The allocation-independent expectations of `history` (see the module docstring)."""
    orders: dict[str, OrderExpectation] = {}
    by_email: dict[str, list[str]] = defaultdict(list)
    for plan in history.plans:
        refund = plan.refund
        refunded = refund.amount if refund is not None else Decimal(0)
        if plan.paid:
            payment = (
                "refunded" if refund is not None and refund.amount >= plan.total else "confirmed"
            )
        else:
            payment = {"stripe_failed": "failed"}.get(plan.payment, "pending")
        orders[plan.order_id] = OrderExpectation(
            order_id=plan.order_id,
            payment=payment,
            confirmations=1 if plan.paid else 0,
            failures=1 if plan.payment == "stripe_failed" else 0,
            tombstoned=plan.cancelled or plan.payment == "stripe_failed",
            financial_status=plan.latest_snapshot.financial_status,
            refunded=refunded,
        )
        by_email[plan.email.lower()].append(plan.order_id)
    contacts: dict[str, ContactExpectation] = {}
    for customer in history.customers.values():
        email = customer.email.lower()
        if email not in by_email:
            continue
        profile: dict[str, str] = {}
        latest = customer.latest_profile
        if latest is not None:
            profile = {
                "firstname": latest.first_name,
                "lastname": latest.last_name,
                "phone": latest.phone,
                "storewire_customer_id": f"shopify:{history.shop}:customer:{customer.customer}",
            }
        contacts[email] = ContactExpectation(email, tuple(by_email[email]), profile)
    return Expected(orders=orders, contacts=contacts)


# --------------------------------------------------------------------------- compare


def compare(history: History, observed: Observed) -> list[str]:
    """Every way the run differs from a lossless exactly-once run; [] when it is correct."""
    exp = expected(history)
    problems: list[str] = []
    labels = _labels_by_order(observed)
    events = _events_by_order(observed)
    known = {p.order_id for p in history.plans}
    for order_id in sorted(set(observed.ledger) - known):
        problems.append(f"ledger entries for an order not in the history: {order_id}")
    for reference in sorted(set(labels) - known):
        problems.append(f"label bought for an unknown reference {reference!r}")
    short_skus: dict[str, list[str]] = defaultdict(list)
    for plan in history.plans:
        _check_order(
            plan, exp.orders[plan.order_id], history, observed, labels, events, short_skus, problems
        )
    _check_stock(history, observed, short_skus, problems)
    _check_crm(history, exp, observed, labels, problems)
    _check_channels(history, observed, problems)
    return problems


def _labels_by_order(observed: Observed) -> dict[str, list[Label]]:
    out: dict[str, list[Label]] = defaultdict(list)
    for label in observed.labels:
        out[label.reference].append(label)
    return out


def _events_by_order(observed: Observed) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for event in observed.events:
        if event.order_id:
            out[(event.detail_type, event.order_id)].append(event.event_id)
    return out


def _rows(observed: Observed, order_id: str) -> dict[tuple[str, str, str], LedgerRow]:
    return {(r.line_id, r.kind, r.ref): r for r in observed.ledger.get(order_id, [])}


def _check_order(
    plan: OrderPlan,
    exp: OrderExpectation,
    history: History,
    observed: Observed,
    labels: Mapping[str, list[Label]],
    events: Mapping[tuple[str, str], list[str]],
    short_skus: dict[str, list[str]],
    problems: list[str],
) -> None:
    oid = plan.order_id
    say = problems.append
    ledger = observed.ledger.get(oid, [])
    keys = Counter((r.line_id, r.kind, r.ref) for r in ledger)
    for (line_id, kind, ref), n in sorted(keys.items()):
        if n > 1:
            say(f"{oid} line {line_id}: {n} {kind} entries{f' for {ref}' if ref else ''} (double)")
    rows = _rows(observed, oid)
    lines = {str(line.line_id): line for line in plan.lines}
    reserves = {k[0]: r for k, r in rows.items() if k[1] == "reserve"}
    commits = {k[0]: r for k, r in rows.items() if k[1] == "commit"}
    releases = {k[0]: r for k, r in rows.items() if k[1] == "release"}
    restocks = {k: r for k, r in rows.items() if k[1] == "restock"}
    flags = observed.flags.get(oid, OrderFlags())

    # -- the reservation
    for line_id, row in sorted(reserves.items()):
        line = lines.get(line_id)
        if line is None:
            say(f"{oid}: reservation of unknown line {line_id}")
            continue
        if row.sku != line.sku:
            say(f"{oid} line {line_id}: reserved {row.sku}, the line is {line.sku}")
        if not 0 < row.quantity <= line.quantity or any(q <= 0 for _, q in row.pieces):
            say(f"{oid} line {line_id} ({line.sku}): reserved {row.pieces} of {line.quantity}")
        for location, _ in row.pieces:
            if location not in history.locations:
                say(f"{oid} line {line_id} ({line.sku}): reserved at unknown location {location}")
    if flags.cancelled != exp.tombstoned:
        say(f"{oid}: ledger tombstone is {flags.cancelled}, expected {exp.tombstoned}")
    if not exp.tombstoned and not flags.placed:
        say(f"{oid}: reservation never completed (order not placed in the ledger)")
    if flags.placed:
        short = set()
        for line_id, line in lines.items():
            got = reserves[line_id].quantity if line_id in reserves else 0
            if got < line.quantity:
                short.add(line_id)
                short_skus[line.sku].append(f"{oid} line {line_id}")
        if short != set(flags.backordered):
            say(
                f"{oid}: backordered lines recorded {sorted(flags.backordered)}, "
                f"short in the ledger {sorted(short)}"
            )

    # -- commit / release
    for kind, moves in (("commit", commits), ("release", releases)):
        for line_id, row in sorted(moves.items()):
            reserve = reserves.get(line_id)
            if reserve is None:
                say(f"{oid} line {line_id}: {kind} without a reservation")
            elif sorted(row.pieces) != sorted(reserve.pieces):
                say(f"{oid} line {line_id}: {kind} {row.pieces} != reserved {reserve.pieces}")
    for line_id in sorted(commits.keys() & releases.keys()):
        say(f"{oid} line {line_id}: both committed and released")
    for line_id in sorted(reserves):
        committed, released = line_id in commits, line_id in releases
        sku = reserves[line_id].sku
        if plan.paid and not plan.cancelled and not committed:
            say(f"{oid} line {line_id} ({sku}): paid but not committed")
        elif plan.cancel == "paid" and not (committed or released):
            say(f"{oid} line {line_id} ({sku}): cancelled but neither committed nor released")
        elif exp.tombstoned and not plan.paid and not released:
            say(f"{oid} line {line_id} ({sku}): {_why(plan)} but not released")
        elif not plan.paid and not exp.tombstoned and (committed or released):
            say(f"{oid} line {line_id} ({sku}): unpaid and open, yet committed={committed}")
        if committed and not plan.paid:
            say(f"{oid} line {line_id} ({sku}): committed without a payment")

    # -- restocks
    wanted: dict[tuple[str, str, str], int] = {}
    if plan.refund is not None:
        for refund_line in plan.refund.lines:
            commit = commits.get(str(refund_line.line_id))
            if refund_line.restock and commit is not None:
                key = (str(refund_line.line_id), "restock", str(plan.refund.refund_id))
                wanted[key] = min(refund_line.quantity, commit.quantity)
    for key, quantity in sorted(wanted.items()):
        restock = restocks.get(key)
        got = restock.quantity if restock is not None else 0
        if got != quantity:
            say(
                f"{oid} line {key[0]} ({lines[key[0]].sku}): refund {key[2]} should restock "
                f"{quantity} committed unit(s), the ledger restocked {got}"
            )
        elif restock is not None and not _within(restock.pieces, commits[key[0]].pieces):
            say(f"{oid} line {key[0]}: restocked {restock.pieces} not where committed")
    for key in sorted(restocks.keys() - wanted.keys()):
        say(f"{oid} line {key[0]}: unexpected restock {restocks[key].pieces} ({key[2]})")

    # -- the order record
    record = observed.records.get(oid)
    label_list = labels.get(oid, [])
    if record is None:
        say(f"{oid}: no order record")
    else:
        if record.payment != exp.payment:
            say(f"{oid}: payment {record.payment}, expected {exp.payment}")
        stock = _stock_status(plan, flags, reserves, commits, restocks)
        if record.stock != stock:
            say(f"{oid}: stock {record.stock}, expected {stock} (from its ledger)")
        if record.cancelled != plan.cancelled:
            say(f"{oid}: record cancelled={record.cancelled}, expected {plan.cancelled}")
        if record.crm != "synced":
            say(f"{oid}: crm {record.crm}, expected synced")
        _check_shipment(plan, history, record, label_list, problems)

    # -- labels and fulfilment
    if len(label_list) > 1:
        say(f"{oid}: {len(label_list)} labels bought (double)")
    if label_list and not commits:
        say(f"{oid}: label bought but nothing committed")
    if commits and not plan.cancelled and not label_list:
        say(f"{oid}: committed but no label bought")
    fulfilments = observed.fulfilments.get(str(plan.external), [])
    if len(label_list) == 1:
        code = label_list[0].tracking_code
        if fulfilments != [(str(code),)]:
            say(f"{oid}: storefront fulfilments {fulfilments}, expected one with {code}")
    elif fulfilments:
        say(f"{oid}: storefront fulfilments {fulfilments} without a label")

    # -- the bus
    for detail_type, want in (
        ("PaymentConfirmed", exp.confirmations),
        ("PaymentFailed", exp.failures),
        ("PaymentMismatch", 0),
        ("LabelCreated", min(len(label_list), 1)),
    ):
        ids = set(events.get((detail_type, oid), []))
        if len(ids) != want:
            kind = "double effect: " if len(ids) > 1 else ""
            say(f"{oid}: {kind}{len(ids)} distinct {detail_type} id(s), expected {want}")


def _why(plan: OrderPlan) -> str:
    return "payment failed" if plan.payment == "stripe_failed" else "cancelled"


def _within(pieces: Iterable[tuple[str, int]], committed: Iterable[tuple[str, int]]) -> bool:
    limit = dict(committed)
    return all(q <= limit.get(location, 0) for location, q in pieces)


def _stock_status(
    plan: OrderPlan,
    flags: OrderFlags,
    reserves: Mapping[str, LedgerRow],
    commits: Mapping[str, LedgerRow],
    restocks: Mapping[tuple[str, str, str], LedgerRow],
) -> str:
    """The order record's stock status as stock adjustment derives it from the moves."""
    if restocks:
        return "restocked"
    if commits:
        return "committed"
    if flags.cancelled:
        return "released"
    if not flags.placed:
        return "pending"
    got = {line_id: row.quantity for line_id, row in reserves.items()}
    shorts = [got.get(str(line.line_id), 0) < line.quantity for line in plan.lines]
    if not any(shorts):
        return "reserved"
    if all(got.get(str(line.line_id), 0) == 0 for line in plan.lines):
        return "backordered"
    return "partially_reserved"


def _check_shipment(
    plan: OrderPlan,
    history: History,
    record: RecordView,
    labels: list[Label],
    problems: list[str],
) -> None:
    oid = plan.order_id
    if not labels:
        if record.shipment != "pending":
            problems.append(f"{oid}: shipment {record.shipment} without a label")
        return
    code = labels[0].tracking_code
    if record.tracking_number != code:
        problems.append(f"{oid}: record tracking number {record.tracking_number}, label {code}")
    steps = history.tracked.get(oid, ())
    want, tracking = "label_created", None
    if steps:
        statuses = [s.status for s in sorted(steps, key=lambda s: s.updated_at)]
        if "delivered" in statuses:
            want, tracking = "delivered", "delivered"
        elif any(s in SHIPPED_STATUSES for s in statuses):
            want = "shipped"
            tracking = [s for s in statuses if s in SHIPPED_STATUSES][-1]
    if record.shipment != want:
        problems.append(f"{oid}: shipment {record.shipment}, expected {want}")
    if tracking is not None and record.tracking_status != tracking:
        problems.append(f"{oid}: tracking {record.tracking_status}, expected {tracking}")


def _check_stock(
    history: History,
    observed: Observed,
    short_skus: Mapping[str, list[str]],
    problems: list[str],
) -> None:
    committed: Counter[tuple[str, str]] = Counter()
    restocked: Counter[tuple[str, str]] = Counter()
    open_reserved: Counter[tuple[str, str]] = Counter()
    ever_reserved: Counter[str] = Counter()
    known = {p.order_id for p in history.plans}
    for order_id, rows in observed.ledger.items():
        if order_id not in known:
            continue
        closed = {r.line_id for r in rows if r.kind in ("commit", "release")}
        for row in rows:
            for location, quantity in row.pieces:
                key = (row.sku, location)
                if row.kind == "commit":
                    committed[key] += quantity
                elif row.kind == "restock":
                    restocked[key] += quantity
                elif row.kind == "reserve":
                    ever_reserved[row.sku] += quantity
                    if row.line_id not in closed:
                        open_reserved[key] += quantity
    for key in sorted(set(history.stock) | set(observed.stock)):
        sku, location = key
        start = history.stock.get(key, 0)
        on_hand = start - committed[key] + restocked[key]
        available = on_hand - open_reserved[key]
        got = observed.stock.get(key)
        if got is None:
            problems.append(f"{sku}@{location}: no stock row")
            continue
        if got[1] < 0 or got[1] > got[0]:
            problems.append(f"{sku}@{location}: OVERSOLD on_hand {got[0]} available {got[1]}")
        if got != (on_hand, available):
            problems.append(
                f"{sku}@{location}: on_hand/available {got[0]}/{got[1]}, the ledger says "
                f"{on_hand}/{available} (start {start}, committed {committed[key]}, "
                f"restocked {restocked[key]}, reserved open {open_reserved[key]})"
            )
    starts: Counter[str] = Counter()
    for (sku, _), units in history.stock.items():
        starts[sku] += units
    for sku, lines in sorted(short_skus.items()):
        if ever_reserved[sku] < starts[sku]:
            problems.append(
                f"{sku}: {len(lines)} line(s) backordered (first: {lines[0]}) though only "
                f"{ever_reserved[sku]} of {starts[sku]} units were ever reserved"
            )


def _money(amount: Decimal, currency: str) -> str:
    from storewire.domain.money import Money

    return str(Money.parse(amount, currency).amount)


def _check_crm(
    history: History,
    exp: Expected,
    observed: Observed,
    labels: Mapping[str, list[Label]],
    problems: list[str],
) -> None:
    say = problems.append
    by_email: dict[str, list[CrmObject]] = defaultdict(list)
    for contact in observed.contacts:
        by_email[contact.properties.get("email", "").lower()].append(contact)
    for email in sorted(set(by_email) - set(exp.contacts)):
        say(f"unexpected HubSpot contact {email}")
    deals: dict[str, list[CrmObject]] = defaultdict(list)
    for deal in observed.deals:
        deals[deal.properties.get("storewire_order_id", "")].append(deal)
    for email, contact_exp in sorted(exp.contacts.items()):
        found = by_email.get(email, [])
        if len(found) != 1:
            say(f"{email}: {len(found)} HubSpot contacts, expected 1")
            if not found:
                continue
        contact = found[0]
        plans = [history.plan(o) for o in contact_exp.orders]
        want = dict(contact_exp.profile)
        counted = [p for p in plans if not p.cancelled]
        spent: dict[str, Decimal] = {}
        for plan in plans:
            net = Decimal(0) if plan.cancelled else max(plan.total - _refunded(plan), Decimal(0))
            spent[plan.currency] = spent.get(plan.currency, Decimal(0)) + net
        want["storewire_order_count"] = str(len(counted))
        want["storewire_total_spent"] = _money(
            spent.get(REPORTING_CURRENCY, Decimal(0)), REPORTING_CURRENCY
        )
        want["storewire_total_spent_currency"] = REPORTING_CURRENCY
        want["storewire_total_spent_by_currency"] = "; ".join(
            f"{c} {_money(spent[c], c)}" for c in sorted(spent)
        )
        latest = max(plans, key=lambda p: (p.created_at, p.order_id))
        want["storewire_last_order_date"] = latest.created_at.astimezone(UTC).date().isoformat()
        want["storewire_last_order_status"] = _crm_status(latest, bool(labels.get(latest.order_id)))
        want["storewire_last_order_number"] = latest.name
        for name, value in sorted(want.items()):
            got = contact.properties.get(name)
            if got != value:
                say(f"{email}: HubSpot {name} is {got!r}, expected {value!r}")
        for plan in plans:
            _check_deal(plan, contact, deals.get(plan.order_id, []), labels, observed, problems)
    for order_id in sorted(set(deals) - {p.order_id for p in history.plans}):
        say(f"unexpected HubSpot deal for {order_id!r}")


def _refunded(plan: OrderPlan) -> Decimal:
    return plan.refund.amount if plan.refund is not None else Decimal(0)


def _crm_status(plan: OrderPlan, shipped: bool) -> str:
    """`OrderContribution.status` of the order as CRM sync sees it at the end."""
    if plan.cancelled:
        return "cancelled"
    refunded = _refunded(plan)
    if refunded > 0:
        return "refunded" if refunded >= plan.total else "partially_refunded"
    if shipped:
        return "shipped"
    return plan.latest_snapshot.financial_status


def _check_deal(
    plan: OrderPlan,
    contact: CrmObject,
    found: list[CrmObject],
    labels: Mapping[str, list[Label]],
    observed: Observed,
    problems: list[str],
) -> None:
    oid = plan.order_id
    if len(found) != 1:
        problems.append(f"{oid}: {len(found)} HubSpot deals, expected 1")
        if not found:
            return
    deal = found[0]
    want = {
        "dealname": f"Order {plan.name}",
        "amount": _money(plan.total, plan.currency),
        "deal_currency_code": plan.currency,
        "dealstage": "closedlost" if plan.cancelled else "closedwon",
        "closedate": plan.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "storewire_order_status": _crm_status(plan, bool(labels.get(oid))),
        "storewire_refunded": _money(_refunded(plan), plan.currency),
    }
    for name, value in sorted(want.items()):
        got = deal.properties.get(name)
        if got != value:
            problems.append(f"{oid}: deal {name} is {got!r}, expected {value!r}")
    if (deal.id, contact.id) not in observed.associations:
        problems.append(f"{oid}: deal {deal.id} not associated with contact {contact.id}")


def _check_channels(history: History, observed: Observed, problems: list[str]) -> None:
    versions: dict[str, set[str]] = defaultdict(set)
    for event in observed.events:
        if event.detail_type == "StockLevelChanged" and event.sku:
            versions[event.sku].add(event.event_id)
    for listing in history.listings:
        if listing.location == ALL_LOCATIONS:
            available = sum(
                observed.stock.get((listing.sku, loc), (0, 0))[1] for loc in history.locations
            )
        else:
            available = observed.stock.get((listing.sku, listing.location), (0, 0))[1]
        key = (listing.inventory_item_id, listing.location_id)
        got = observed.channel.get(key)
        if got != max(0, available):
            problems.append(
                f"{listing.sku}@{listing.location}: storefront shows {got}, "
                f"ledger available {available} (stale channel level)"
            )
        pushes = observed.pushes.get(key, 0)
        if pushes > len(versions[listing.sku]):
            problems.append(
                f"{listing.sku}@{listing.location}: {pushes} pushes for "
                f"{len(versions[listing.sku])} stock versions"
            )


# --------------------------------------------------------------------------- summary, oversold


def summary(observed: Observed) -> dict[str, int]:
    """The run's figures for the table (counts, not verdicts: `compare` gives those)."""
    by_id: Counter[str] = Counter(e.event_id for e in observed.events)
    confirmed: dict[str, set[str]] = defaultdict(set)
    labels_created: dict[str, set[str]] = defaultdict(set)
    for event in observed.events:
        if event.detail_type == "PaymentConfirmed" and event.order_id:
            confirmed[event.order_id].add(event.event_id)
        if event.detail_type == "LabelCreated" and event.order_id:
            labels_created[event.order_id].add(event.event_id)
    rows = [row for rows in observed.ledger.values() for row in rows]
    ledger_keys: Counter[tuple[str, str, str, str]] = Counter(
        (order_id, r.line_id, r.kind, r.ref) for order_id, rs in observed.ledger.items() for r in rs
    )
    labels: Counter[str] = Counter(label.reference for label in observed.labels)
    contacts: Counter[str] = Counter(
        c.properties.get("email", "").lower() for c in observed.contacts
    )
    deals: Counter[str] = Counter(
        d.properties.get("storewire_order_id", "") for d in observed.deals
    )
    double = (
        sum(1 for ids in confirmed.values() if len(ids) > 1)
        + sum(1 for ids in labels_created.values() if len(ids) > 1)
        + sum(1 for n in labels.values() if n > 1)
        + sum(1 for n in contacts.values() if n > 1)
        + sum(1 for n in deals.values() if n > 1)
        + sum(1 for n in ledger_keys.values() if n > 1)
    )
    return {
        "orders_recorded": len(observed.records),
        "reservations": sum(1 for r in rows if r.kind == "reserve"),
        "backordered_lines": sum(len(f.backordered) for f in observed.flags.values()),
        "commits": sum(1 for r in rows if r.kind == "commit"),
        "releases": sum(1 for r in rows if r.kind == "release"),
        "restocks": sum(1 for r in rows if r.kind == "restock"),
        "payments_confirmed": sum(len(ids) for ids in confirmed.values()),
        "labels_bought": len(observed.labels),
        "fulfilments": sum(len(f) for f in observed.fulfilments.values()),
        "contacts": len(observed.contacts),
        "deals": len(observed.deals),
        "channel_pushes": sum(observed.pushes.values()),
        "bus_events": len(observed.events),
        "republished": sum(n - 1 for n in by_id.values() if n > 1),
        "double_effects": double,
        "oversold_rows": sum(1 for on, av in observed.stock.values() if av < 0 or av > on),
    }


def oversold(emulator: EmulatorHandle, skus: Iterable[str] | None = None) -> list[str]:
    """A cheap mid-run check of every stock row: available < 0, or reserved > on hand.

    With `skus`, one Query per SKU's partition (cheap at any ledger size); without, a scan.
    """
    ddb = emulator.client("dynamodb")
    table = emulator.resource("InventoryTable")
    if skus is None:
        items = _scan(
            ddb,
            table,
            FilterExpression="begins_with(pk, :stock)",
            ExpressionAttributeValues={":stock": {"S": "STOCK#"}},
        )
    else:
        items = []
        for sku in skus:
            items += ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"STOCK#{sku}"}},
            )["Items"]
    found = []
    for item in items:
        on_hand, available = int(item["on_hand"]["N"]), int(item["available"]["N"])
        if available < 0 or on_hand - available > on_hand or on_hand < 0 or available > on_hand:
            sku = item["pk"]["S"].removeprefix("STOCK#")
            location = item["sk"]["S"].removeprefix("LOC#")
            found.append(f"{sku}@{location}: on_hand {on_hand} available {available}")
    return sorted(found)
