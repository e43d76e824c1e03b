"""CRM sync: a whole SQS batch of events becomes one contact upsert. Pure of AWS and HTTP.

`sync_batch` takes every record of a batch at once (SQS message id -> canonical event) and
answers an `ItemResult` per record:

1. **Record** each event in the contact's aggregate (`CrmStore.update_contact`, pure changes
   from `storewire.domain.crm`): a customer's profile, an order's snapshot, a refund, a
   label. Contributions are per order id and per refund id, so a redelivered or reordered
   event never counts twice. Refunds and labels find their contact through the order link
   written with the order; before that they are retried (`CrmOrderUnknown`).
2. **Coalesce** by contact: N events of one customer make one input, carrying the
   properties recomputed from the stored aggregate (exact and idempotent to set).
3. **One call** `upsert_contacts` for the batch (idProperty email). A per-input error (an
   email HubSpot calls invalid) fails only the records of that contact, permanently; a call
   that fails after the HTTP layer's retries (429 with `Retry-After` honoured within the
   Lambda's remaining time, 5xx) fails every record of the batch as retryable, and SQS
   redelivers them.
4. **Orders as deals**: one `upsert_deals` call (on the unique `storewire_order_id`) for the
   orders the batch touched, and one `associate_deals` call for the deals not yet associated
   with their contact.
5. **Confirm**: `mark_synced` checks nobody changed the contact while it was pushed (two
   Lambdas racing on one contact); if someone did, the records are retried so the last push
   carries the latest totals. A push *in doubt* (`BatchOutcome.in_doubt`: an attempt timed
   out or lost its connection before a retry succeeded, so the CRM may still apply that
   older copy later, over a newer push) is never confirmed either: its records are retried
   (`CrmPushInDoubt`) and push the latest after it. `InDoubtWatch` wraps a gateway to set the
   flag from the HTTP client's attempts. Then the order record's `crm` concern moves to
   `synced` with the `contact_id` and `deal_id` (`OrderStore.transition`, once per event id).

Nothing here logs a property value: emails, names and phones are personal data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from storewire.domain import crm as domain
from storewire.domain.crm import (
    BatchOutcome,
    ContactAggregate,
    ContactChanged,
    CrmGateway,
    CrmInput,
    CrmOrderUnknown,
    CrmPushInDoubt,
    CrmStore,
    InvalidContact,
    OrderLink,
)
from storewire.domain.events import (
    CanonicalEvent,
    CustomerData,
    CustomerUpserted,
    OrderCancelled,
    OrderData,
    OrderPlaced,
    OrderUpdated,
    RefundData,
    RefundIssued,
)
from storewire.domain.orders import CrmStatus, OrderNotFound, OrderStore
from storewire.errors import (
    ConfigurationError,
    MalformedPayload,
    PermanentError,
    RetryableError,
    StorewireError,
)
from storewire.ports import ClaimCheckStore

logger = logging.getLogger(__name__)

MAX_BATCH_INPUTS = 100
"""HubSpot's limit of inputs per batch call; a larger batch is sent in chunks."""

ORDER_SNAPSHOTS = (OrderPlaced, OrderUpdated, OrderCancelled)
LABEL_CREATED = "LabelCreated"


class Outcome(StrEnum):
    SYNCED = "synced"
    """The contact (and the order's deal) carry this event's effect."""
    IGNORED = "ignored"
    """Nothing to sync (no email on the order, an event type the CRM does not use)."""
    RETRY = "retry"
    """Transient: fail the record so SQS redelivers it."""
    PERMANENT = "permanent"
    """Retrying cannot help: dead-letter the record with its reason."""


@dataclass(frozen=True)
class ItemResult:
    outcome: Outcome
    reason: str = ""
    error: StorewireError | None = None
    contact_id: str | None = None
    deal_id: str | None = None

    @property
    def error_type(self) -> str:
        return type(self.error).__name__ if self.error is not None else ""


def _utcnow() -> datetime:
    return domain.now_utc()


@dataclass(frozen=True)
class CrmDeps:
    """The ports `sync_batch` works with (wired once per cold start)."""

    store: CrmStore
    crm: CrmGateway
    orders: OrderStore | None = None
    claim_checks: ClaimCheckStore | None = None
    reporting_currency: str = "USD"
    clock: Callable[[], datetime] = _utcnow


@dataclass
class _Pending:
    """A record that reached the push: its contact, and its order if it has one."""

    email: str
    event: CanonicalEvent
    order_id: str | None = None


@dataclass
class _Batch:
    results: dict[str, ItemResult] = field(default_factory=dict)
    pending: dict[str, _Pending] = field(default_factory=dict)
    contacts: dict[str, ContactAggregate] = field(default_factory=dict)

    def fail(self, key: str, error: StorewireError) -> None:
        outcome = Outcome.RETRY if isinstance(error, RetryableError) else Outcome.PERMANENT
        self.results[key] = ItemResult(outcome, error.message, error)
        self.pending.pop(key, None)

    def keys_of(self, email: str) -> list[str]:
        return [k for k, p in self.pending.items() if p.email == email]


def sync_batch(events: Mapping[str, CanonicalEvent], deps: CrmDeps) -> dict[str, ItemResult]:
    """Sync one SQS batch (message id -> event) with one contact upsert; a result per id."""
    batch = _Batch()
    for key, event in events.items():
        try:
            _record(key, _resolved(event, deps), deps, batch)
        except StorewireError as error:
            batch.fail(key, error)
    if batch.pending:
        _push_contacts(batch, deps)
    if any(p.order_id for p in batch.pending.values()):
        _push_deals(batch, deps)
    for email in {p.email for p in batch.pending.values()}:
        _confirm(email, batch, deps)
    for key, pending in list(batch.pending.items()):
        _mark_order(key, pending, batch, deps)
    for key in batch.pending:
        batch.results.setdefault(key, ItemResult(Outcome.SYNCED))
    _record_failed_orders(events, batch, deps)
    return {key: batch.results[key] for key in events}


# --------------------------------------------------------------------------- in doubt


class InTransitCounter:
    """A `storewire.http` observer counting the attempts that got no HTTP answer at all
    (timeouts, dropped connections, connect errors), passing every attempt on to `forward`.

    A connect error never reached the CRM, but the observer cannot tell it from a read
    timeout; counting it too only costs a retry.
    """

    def __init__(
        self, forward: Callable[[str, str, int | None, float], None] | None = None
    ) -> None:
        self.count = 0
        self._forward = forward

    def __call__(self, service: str, method: str, status: int | None, seconds: float) -> None:
        if status is None:
            self.count += 1
        if self._forward is not None:
            self._forward(service, method, status, seconds)


class InDoubtWatch:
    """A `CrmGateway` whose upsert outcomes are `in_doubt` when an attempt of the call failed
    in transit (`counter` went up during it), however the call ended.

    The HTTP client retries an idempotent upsert after a read timeout and the retry
    succeeds, but the timed-out attempt may still be applied by the CRM after that, and
    after another Lambda's newer push: the last write to land wins, so the stale one would
    stay. Associations only add links and are passed through as they are.
    """

    def __init__(self, gateway: CrmGateway, counter: InTransitCounter) -> None:
        self._gateway = gateway
        self._counter = counter

    def upsert_contacts(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        before = self._counter.count
        return self._checked(self._gateway.upsert_contacts(inputs), before)

    def upsert_deals(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        before = self._counter.count
        return self._checked(self._gateway.upsert_deals(inputs), before)

    def associate_deals(self, pairs: Sequence[tuple[str, str]]) -> BatchOutcome:
        return self._gateway.associate_deals(pairs)

    def _checked(self, outcome: BatchOutcome, before: int) -> BatchOutcome:
        if self._counter.count == before or outcome.in_doubt:
            return outcome
        return outcome.model_copy(update={"in_doubt": True})


# --------------------------------------------------------------------------- 1. record


def _resolved[E: CanonicalEvent](event: E, deps: CrmDeps) -> E:
    """`event` with a claim-checked `data` loaded back inline."""
    if event.claim_check is None:
        return event
    if deps.claim_checks is None:
        raise ConfigurationError("a claim-checked event arrived but no claim check store is wired")
    body = deps.claim_checks.load(event.claim_check)
    raw = {**event.model_dump(mode="json", exclude={"claim_check"}), "data": json.loads(body)}
    return type(event).model_validate(raw)


def _email(raw: str | None) -> str | None:
    if not raw or not raw.strip():
        return None
    email = domain.normalise_email(raw)
    if not domain.is_plausible_email(email):
        raise InvalidContact("the email is not an address", code="INVALID_EMAIL")
    return email


def _record(key: str, event: CanonicalEvent, deps: CrmDeps, batch: _Batch) -> None:
    store = deps.store
    if isinstance(event, CustomerUpserted):
        if not isinstance(event.data, CustomerData):
            raise MalformedPayload(f"CustomerUpserted {event.event_id} carries no customer")
        data = event.data
        email = _email(data.email)
        if email is None:
            batch.results[key] = ItemResult(Outcome.IGNORED, "customer without an email")
            return
        aggregate = store.update_contact(
            email, lambda a: domain.apply_customer(a, data, event.customer_id)
        )
        _pend(batch, key, email, event, None, aggregate)
        return
    if isinstance(event, ORDER_SNAPSHOTS):
        if not isinstance(event.data, OrderData) or event.order_id is None:
            raise MalformedPayload(f"{event.event_type} {event.event_id} carries no order")
        order, order_id = event.data, event.order_id
        email = _email(order.customer.email if order.customer else None)
        if email is None:
            batch.results[key] = ItemResult(Outcome.IGNORED, "order without a customer email")
            return
        link = store.get_order(order_id)
        if link is None:
            store.put_order(OrderLink(order_id=order_id, email=email))
        else:
            email = link.email  # an order stays with the contact it was first recorded on
        cancelled = isinstance(event, OrderCancelled)
        aggregate = store.update_contact(
            email, lambda a: domain.apply_order(a, order_id, order, cancelled=cancelled)
        )
        _pend(batch, key, email, event, order_id, aggregate)
        return
    if isinstance(event, RefundIssued):
        if not isinstance(event.data, RefundData) or event.order_id is None:
            raise MalformedPayload(f"RefundIssued {event.event_id} carries no refund")
        refund, order_id = event.data, event.order_id
        email = _linked_email(order_id, store)
        aggregate = store.update_contact(email, lambda a: domain.apply_refund(a, order_id, refund))
        _pend(batch, key, email, event, order_id, aggregate)
        return
    if event.event_type == LABEL_CREATED and event.order_id is not None:
        order_id = event.order_id
        email = _linked_email(order_id, store)
        aggregate = store.update_contact(email, lambda a: domain.apply_shipped(a, order_id))
        _pend(batch, key, email, event, order_id, aggregate)
        return
    batch.results[key] = ItemResult(Outcome.IGNORED, f"{event.event_type} is not synced")


def _linked_email(order_id: str, store: CrmStore) -> str:
    link = store.get_order(order_id)
    if link is None:
        raise CrmOrderUnknown(f"order {order_id} is not in the CRM store yet")
    return link.email


def _pend(
    batch: _Batch,
    key: str,
    email: str,
    event: CanonicalEvent,
    order_id: str | None,
    aggregate: ContactAggregate,
) -> None:
    batch.pending[key] = _Pending(email=email, event=event, order_id=order_id)
    known = batch.contacts.get(email)
    if known is None or aggregate.version >= known.version:
        batch.contacts[email] = aggregate


# --------------------------------------------------------------------------- 2-3. contacts


def _chunks[T](items: Sequence[T], size: int = MAX_BATCH_INPUTS) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _push_contacts(batch: _Batch, deps: CrmDeps) -> None:
    emails = sorted({p.email for p in batch.pending.values()})
    inputs = [
        CrmInput(
            key=email,
            properties=domain.contact_properties(batch.contacts[email], deps.reporting_currency),
        )
        for email in emails
    ]
    for chunk in _chunks(inputs):
        try:
            outcome = deps.crm.upsert_contacts(chunk)
        except StorewireError as error:
            for item in chunk:
                for key in batch.keys_of(item.key):
                    batch.fail(key, error)
            continue
        _apply_contact_outcome(chunk, outcome, batch)


def _apply_contact_outcome(chunk: Sequence[CrmInput], outcome: BatchOutcome, batch: _Batch) -> None:
    for item in chunk:
        email = item.key
        refused = outcome.errors.get(email)
        contact_id = outcome.ids.get(email)
        if refused is not None or contact_id is None:
            error: StorewireError
            if refused is not None:
                # HubSpot's message may quote the email: only its codes travel on.
                codes = " ".join(c for c in (refused.category, refused.code) if c)
                error = InvalidContact(
                    f"the CRM refused the contact ({codes or 'no code'})", code=refused.code
                )
            else:
                error = RetryableError("the CRM answered without this contact; retry")
            for key in batch.keys_of(email):
                batch.fail(key, error)
            continue
        contact = batch.contacts[email]
        batch.contacts[email] = contact.model_copy(update={"contact_id": contact_id})
        if outcome.in_doubt:
            # An older copy of this push may still land after a newer one: never confirm
            # it; the records come back and push the latest after it (docs/crm.md).
            in_doubt = CrmPushInDoubt("a contact push attempt failed in transit; push again")
            for key in batch.keys_of(email):
                batch.fail(key, in_doubt)


# --------------------------------------------------------------------------- 4. deals


def _push_deals(batch: _Batch, deps: CrmDeps) -> None:
    orders: dict[str, str] = {}
    for pending in batch.pending.values():
        if pending.order_id is not None:
            orders[pending.order_id] = pending.email
    inputs = []
    for order_id, email in sorted(orders.items()):
        contribution = batch.contacts[email].orders.get(order_id)
        if contribution is not None:
            inputs.append(CrmInput(key=order_id, properties=domain.deal_properties(contribution)))
    deal_ids: dict[str, str] = {}
    for chunk in _chunks(inputs):
        try:
            outcome = deps.crm.upsert_deals(chunk)
        except StorewireError as error:
            _fail_orders(batch, [i.key for i in chunk], error)
            continue
        for item in chunk:
            refused = outcome.errors.get(item.key)
            if refused is not None or item.key not in outcome.ids:
                reason = refused.message if refused else "the CRM answered without this deal"
                failure: StorewireError = (
                    PermanentError(f"the CRM refused the deal: {reason}")
                    if refused
                    else RetryableError(reason)
                )
                _fail_orders(batch, [item.key], failure)
            elif outcome.in_doubt:
                in_doubt = CrmPushInDoubt("a deal push attempt failed in transit; push again")
                _fail_orders(batch, [item.key], in_doubt)
            else:
                deal_ids[item.key] = outcome.ids[item.key]
    _associate(batch, deps, orders, deal_ids)


def _associate(
    batch: _Batch, deps: CrmDeps, orders: Mapping[str, str], deal_ids: Mapping[str, str]
) -> None:
    """Associate each new deal with its contact (one call), then keep the order links."""
    links: dict[str, OrderLink] = {}
    pairs: list[tuple[str, str, str]] = []  # (order id, deal id, contact id)
    for order_id, deal_id in deal_ids.items():
        email = orders[order_id]
        contact_id = batch.contacts[email].contact_id
        if contact_id is None:
            continue
        link = deps.store.get_order(order_id) or OrderLink(order_id=order_id, email=email)
        if link.deal_id == deal_id and link.associated_contact_id == contact_id:
            links[order_id] = link
        else:
            links[order_id] = link.model_copy(update={"deal_id": deal_id})
            pairs.append((order_id, deal_id, contact_id))
    for chunk in _chunks(pairs):
        try:
            outcome = deps.crm.associate_deals([(deal, contact) for _, deal, contact in chunk])
        except StorewireError as error:
            _fail_orders(batch, [order_id for order_id, _, _ in chunk], error)
            continue
        for order_id, deal_id, contact_id in chunk:
            refused = outcome.errors.get(deal_id)
            if refused is not None:
                refusal = RetryableError(f"the CRM refused the association: {refused.message}")
                _fail_orders(batch, [order_id], refusal)
            else:
                links[order_id] = links[order_id].model_copy(
                    update={"associated_contact_id": contact_id}
                )
    for order_id, link in links.items():
        keys = [k for k, p in batch.pending.items() if p.order_id == order_id]
        if not keys:
            continue
        deps.store.put_order(link)
        for key in keys:
            batch.results[key] = ItemResult(Outcome.SYNCED, deal_id=link.deal_id)


def _fail_orders(batch: _Batch, order_ids: Sequence[str], error: StorewireError) -> None:
    wanted = set(order_ids)
    for key in [k for k, p in batch.pending.items() if p.order_id in wanted]:
        batch.fail(key, error)


# --------------------------------------------------------------------------- 5. confirm


def _confirm(email: str, batch: _Batch, deps: CrmDeps) -> None:
    contact = batch.contacts[email]
    if contact.contact_id is None:
        return
    if deps.store.mark_synced(email, contact.version, contact.contact_id):
        for key in batch.keys_of(email):
            previous = batch.results.get(key)
            batch.results[key] = ItemResult(
                Outcome.SYNCED,
                contact_id=contact.contact_id,
                deal_id=previous.deal_id if previous else None,
            )
        return
    error = ContactChanged("the contact changed while it was being pushed; push again")
    for key in batch.keys_of(email):
        batch.fail(key, error)


def _mark_order(key: str, pending: _Pending, batch: _Batch, deps: CrmDeps) -> None:
    """Move the order record's `crm` concern to synced (once per event id)."""
    if deps.orders is None or pending.order_id is None:
        return
    result = batch.results.get(key) or ItemResult(Outcome.SYNCED)
    details: dict[str, Any] = {"contact_id": result.contact_id, "deal_id": result.deal_id}
    try:
        if isinstance(pending.event, ORDER_SNAPSHOTS):
            deps.orders.record_placed(pending.event)
        deps.orders.transition(
            pending.order_id,
            "crm",
            CrmStatus.SYNCED,
            event_id=pending.event.event_id,
            at=deps.clock(),
            details=details,
            event_type="CrmSynced",
            summary=f"CRM contact {result.contact_id} synced ({pending.event.event_type})",
        )
    except OrderNotFound as error:
        batch.fail(key, error)
    except RetryableError as error:
        batch.fail(key, error)


def _record_failed_orders(
    events: Mapping[str, CanonicalEvent], batch: _Batch, deps: CrmDeps
) -> None:
    """Best effort: a permanent failure shows on the order record as `crm: failed`."""
    if deps.orders is None:
        return
    for key, result in batch.results.items():
        event = events[key]
        if result.outcome is not Outcome.PERMANENT or event.order_id is None:
            continue
        try:
            if isinstance(event, ORDER_SNAPSHOTS) and isinstance(event.data, OrderData):
                deps.orders.record_placed(event)
            deps.orders.transition(
                event.order_id,
                "crm",
                CrmStatus.FAILED,
                event_id=event.event_id,
                at=deps.clock(),
                details={"reason": result.reason[:300], "error_type": result.error_type},
                event_type="CrmSyncFailed",
                summary=f"CRM sync failed: {result.error_type}",
            )
        except StorewireError:
            logger.warning(
                "could not record the CRM failure on the order",
                extra={"order_id": event.order_id, "event_id": event.event_id},
            )
