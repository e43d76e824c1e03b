"""The CRM view of a customer: one aggregate per contact, exact and idempotent. Pure.

A contact is keyed by its normalised email (HubSpot's `idProperty: email`). Its aggregate
keeps, per order id, that order's *contribution* (total, refunds by refund id, status,
dates), never a running counter: a redelivered or reordered event replaces or re-adds the
same contribution, so nothing is counted twice, and the totals are recomputed from the
contributions every time (`contact_properties`).

* an order snapshot (`OrderPlaced`, `OrderUpdated`, `OrderCancelled`) replaces the order's
  contribution only when its storefront `updated_at` is newer (a cancellation always sticks);
  refunds and the shipped flag already recorded are kept;
* a refund is recorded under its `refund_id` once;
* a profile (`CustomerUpserted`) replaces the stored one only when its `updated_at` is newer.

Money stays exact and per currency (`Money`, never float). HubSpot's `storewire_total_spent`
is the sum in the *reporting currency* (the store's, from configuration); spending in other
currencies is listed exactly in `storewire_total_spent_by_currency` and never converted (a
conversion would need a rate and would not be exact).

The ports the CRM sync needs (`CrmStore`, `CrmGateway`) are defined here as Protocols, next to
the values they carry, as `storewire.domain.orders` does for `OrderStore`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from storewire.domain.events import CustomerData, OrderData, RefundData
from storewire.domain.money import Money
from storewire.errors import PermanentError, RetryableError

# A deliberately lenient local check: HubSpot is the judge of a valid email; this only stops
# values that cannot be an address at all (no "@", spaces) before they become a contact key.
_PLAUSIBLE_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

CONTACT_ID_PROPERTY = "email"
DEAL_ID_PROPERTY = "storewire_order_id"
"""The deal property declared with `hasUniqueValue: true`: deal upserts are keyed on it."""


class InvalidContact(PermanentError):
    """The event cannot become a contact (malformed email, refused by the CRM as invalid)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class CrmOrderUnknown(RetryableError):
    """A refund or label for an order the CRM store has not seen yet: retried until its
    order snapshot has been applied (or dead-lettered by the queue's redrive policy)."""


class ContactChanged(RetryableError):
    """The contact changed while its properties were being pushed: push again later."""


class CrmPushInDoubt(RetryableError):
    """An attempt of a push failed in transit (timed out, connection dropped) before a retry
    succeeded: the CRM may still apply that attempt's older properties *later*, after a newer
    push. Not confirmed; the records are retried so a push after it carries the latest."""


def normalise_email(raw: str) -> str:
    """The contact key of an email: trimmed and lower-cased (HubSpot ignores the case)."""
    return raw.strip().lower()


def is_plausible_email(email: str) -> bool:
    return bool(_PLAUSIBLE_EMAIL.match(email))


def contact_key(email: str) -> str:
    """An opaque key for a contact (the email itself is personal data: not in table keys)."""
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()[:40]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderContribution(_Frozen):
    """What one order adds to its contact."""

    order_id: str
    order_number: str
    currency: str
    total: Money
    refunds: dict[str, Money] = Field(default_factory=dict, description="refund_id -> amount")
    financial_status: str | None = None
    fulfillment_status: str | None = None
    shipped: bool = False
    cancelled: bool = False
    placed_at: AwareDatetime
    storefront_updated_at: AwareDatetime

    @property
    def refunded(self) -> Money:
        result = Money.zero(self.currency)
        for amount in self.refunds.values():
            if amount.currency == self.currency:
                result = result + amount
        return result

    @property
    def net(self) -> Money:
        """What the customer spent on this order: 0 when cancelled, else total - refunds."""
        if self.cancelled:
            return Money.zero(self.currency)
        net = self.total - self.refunded
        return net if net.amount > 0 else Money.zero(self.currency)

    @property
    def status(self) -> str:
        """One word for the CRM: cancelled, refunded, partially_refunded, shipped, paid, ..."""
        if self.cancelled:
            return "cancelled"
        refunded = self.refunded
        if refunded.amount > 0:
            return "refunded" if refunded.amount >= self.total.amount else "partially_refunded"
        if self.shipped or self.fulfillment_status == "fulfilled":
            return "shipped"
        return self.financial_status or "open"


class ContactProfile(_Frozen):
    """The storefront's customer record (personal data: never logged)."""

    customer_id: str | None = None
    external_customer_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    updated_at: AwareDatetime


class ContactAggregate(_Frozen):
    """One contact as the CRM table keeps it (`pk = CONTACT#{contact_key(email)}`)."""

    email: str = Field(description="Normalised email: the HubSpot idProperty value")
    profile: ContactProfile | None = None
    orders: dict[str, OrderContribution] = Field(default_factory=dict)
    contact_id: str | None = Field(default=None, description="HubSpot's id, once known")
    synced_version: int = Field(default=0, description="The version last pushed to the CRM")
    version: int = Field(default=0, description="Optimistic lock: +1 on every write")

    @property
    def key(self) -> str:
        return contact_key(self.email)


class OrderLink(_Frozen):
    """Which contact an order belongs to, and its CRM deal (`pk = ORDER#{order_id}`)."""

    order_id: str
    email: str
    deal_id: str | None = None
    associated_contact_id: str | None = Field(
        default=None, description="The contact the deal is associated with in the CRM"
    )


# --------------------------------------------------------------------------- pure changes


def empty(email: str) -> ContactAggregate:
    return ContactAggregate(email=normalise_email(email))


def apply_customer(
    aggregate: ContactAggregate, data: CustomerData, customer_id: str | None
) -> ContactAggregate | None:
    """`aggregate` with the newer profile; None when the stored one is as new or newer."""
    current = aggregate.profile
    if current is not None and data.updated_at <= current.updated_at:
        return None
    profile = ContactProfile(
        customer_id=customer_id,
        external_customer_id=data.external_customer_id,
        first_name=data.first_name,
        last_name=data.last_name,
        phone=data.phone,
        updated_at=data.updated_at,
    )
    return aggregate.model_copy(update={"profile": profile})


def apply_order(
    aggregate: ContactAggregate, order_id: str, data: OrderData, *, cancelled: bool = False
) -> ContactAggregate | None:
    """`aggregate` with the order's newer snapshot; None when nothing changes."""
    existing = aggregate.orders.get(order_id)
    is_cancelled = cancelled or data.cancelled_at is not None
    if existing is not None:
        newer = data.updated_at > existing.storefront_updated_at
        if not newer and (existing.cancelled or not is_cancelled):
            return None
        if not newer:
            changed = existing.model_copy(update={"cancelled": True})
            return _with_order(aggregate, changed)
    contribution = OrderContribution(
        order_id=order_id,
        order_number=data.order_number,
        currency=data.currency,
        total=data.totals.total,
        refunds=dict(existing.refunds) if existing else {},
        financial_status=data.financial_status,
        fulfillment_status=data.fulfillment_status,
        shipped=existing.shipped if existing else False,
        cancelled=is_cancelled or (existing.cancelled if existing else False),
        placed_at=data.created_at,
        storefront_updated_at=data.updated_at,
    )
    return _with_order(aggregate, contribution)


def apply_refund(
    aggregate: ContactAggregate, order_id: str, refund: RefundData
) -> ContactAggregate | None:
    """`aggregate` with the refund recorded once; `CrmOrderUnknown` before its order."""
    existing = aggregate.orders.get(order_id)
    if existing is None:
        raise CrmOrderUnknown(f"refund {refund.refund_id} for an order not synced yet")
    if refund.refund_id in existing.refunds:
        return None
    refunds = {**existing.refunds, refund.refund_id: refund.amount}
    return _with_order(aggregate, existing.model_copy(update={"refunds": refunds}))


def apply_shipped(aggregate: ContactAggregate, order_id: str) -> ContactAggregate | None:
    """`aggregate` with the order marked shipped (a label was bought)."""
    existing = aggregate.orders.get(order_id)
    if existing is None:
        raise CrmOrderUnknown(f"label for {order_id}, an order not synced yet")
    if existing.shipped:
        return None
    return _with_order(aggregate, existing.model_copy(update={"shipped": True}))


def _with_order(aggregate: ContactAggregate, contribution: OrderContribution) -> ContactAggregate:
    orders = {**aggregate.orders, contribution.order_id: contribution}
    return aggregate.model_copy(update={"orders": orders})


# --------------------------------------------------------------------------- CRM properties


def spent_by_currency(aggregate: ContactAggregate) -> dict[str, Money]:
    """The exact net spending per currency (currencies with orders only)."""
    totals: dict[str, Money] = {}
    for order in aggregate.orders.values():
        current = totals.get(order.currency, Money.zero(order.currency))
        totals[order.currency] = current + order.net
    return totals


def latest_order(aggregate: ContactAggregate) -> OrderContribution | None:
    """The most recently placed order (ties broken by order id, so the answer is stable)."""
    if not aggregate.orders:
        return None
    return max(aggregate.orders.values(), key=lambda o: (o.placed_at, o.order_id))


def contact_properties(aggregate: ContactAggregate, reporting_currency: str) -> dict[str, str]:
    """The HubSpot contact properties of `aggregate` (strings, as HubSpot takes them).

    Profile properties are sent only when known, so a contact created from an order does
    not blank out a name a person typed into the CRM.
    """
    props: dict[str, str] = {CONTACT_ID_PROPERTY: aggregate.email}
    profile = aggregate.profile
    if profile is not None:
        for name, value in (
            ("firstname", profile.first_name),
            ("lastname", profile.last_name),
            ("phone", profile.phone),
            ("storewire_customer_id", profile.customer_id),
        ):
            if value:
                props[name] = value
    counted = [o for o in aggregate.orders.values() if not o.cancelled]
    spent = spent_by_currency(aggregate)
    reporting = spent.get(reporting_currency, Money.zero(reporting_currency))
    props["storewire_order_count"] = str(len(counted))
    props["storewire_total_spent"] = str(reporting.amount)
    props["storewire_total_spent_currency"] = reporting_currency
    props["storewire_total_spent_by_currency"] = "; ".join(
        f"{currency} {spent[currency].amount}" for currency in sorted(spent)
    )
    latest = latest_order(aggregate)
    if latest is not None:
        props["storewire_last_order_date"] = latest.placed_at.astimezone(UTC).date().isoformat()
        props["storewire_last_order_status"] = latest.status
        props["storewire_last_order_number"] = latest.order_number
    return props


def deal_properties(order: OrderContribution) -> dict[str, str]:
    """The HubSpot deal recording one order (upserted on `storewire_order_id`)."""
    return {
        DEAL_ID_PROPERTY: order.order_id,
        "dealname": f"Order {order.order_number}",
        "amount": str(order.total.amount),
        "deal_currency_code": order.currency,
        "pipeline": "default",
        "dealstage": "closedlost" if order.cancelled else "closedwon",
        "closedate": order.placed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "storewire_order_status": order.status,
        "storewire_refunded": str(order.refunded.amount),
    }


def total_spent(aggregate: ContactAggregate, currency: str) -> Decimal:
    """The exact net spending of the contact in `currency` (for tests and `order show`)."""
    return spent_by_currency(aggregate).get(currency, Money.zero(currency)).amount


# --------------------------------------------------------------------------- CRM calls


class CrmInput(_Frozen):
    """One input of a batch upsert: the object's unique value and its properties."""

    key: str = Field(description="The idProperty value: an email, or a storewire order id")
    properties: dict[str, str]


class InputError(_Frozen):
    """The CRM refused one input of a batch (HubSpot's per-input `errors[]` entry)."""

    key: str
    category: str | None = None
    code: str | None = None
    message: str


class BatchOutcome(_Frozen):
    """What a batch call did per input: the CRM's object id, or the input's error."""

    ids: dict[str, str] = Field(default_factory=dict)
    created: frozenset[str] = frozenset()
    errors: dict[str, InputError] = Field(default_factory=dict)
    in_doubt: bool = Field(
        default=False,
        description=(
            "An earlier attempt of this call failed in transit (a timeout, a dropped "
            "connection): the CRM may still apply it later, over a newer write"
        ),
    )


class CrmGateway(Protocol):
    """A CRM that upserts contacts by email and records orders against them (HubSpot)."""

    def upsert_contacts(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        """Create or update every contact by email in one call (a batch of up to 100)."""
        ...

    def upsert_deals(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        """Create or update every order's deal by `storewire_order_id` in one call."""
        ...

    def associate_deals(self, pairs: Sequence[tuple[str, str]]) -> BatchOutcome:
        """Associate each (deal id, contact id) pair, idempotently; keys are deal ids."""
        ...


class CrmStore(Protocol):
    """Keeps contact aggregates and order links (DynamoDB CRM table; in memory in tests).

    `update_contact` reads the aggregate (or starts an empty one), applies the pure
    `change` and writes the result under an optimistic version check, re-reading on a
    conflict; it returns the stored aggregate (unchanged when `change` returns None).
    """

    def get_contact(self, email: str) -> ContactAggregate | None: ...

    def update_contact(
        self, email: str, change: Callable[[ContactAggregate], ContactAggregate | None]
    ) -> ContactAggregate: ...

    def mark_synced(self, email: str, version: int, contact_id: str) -> bool:
        """Record that `version` was pushed as `contact_id`; False if the aggregate moved
        past `version` meanwhile (so the push may have been stale: push again)."""
        ...

    def get_order(self, order_id: str) -> OrderLink | None: ...

    def put_order(self, link: OrderLink) -> None:
        """Store the order's link (idempotent; the latest deal/association wins)."""
        ...


def now_utc() -> datetime:
    return datetime.now(UTC)
