"""Payment confirmation: verify every payment report with the gateway, decide once, publish once.

Pure of AWS and HTTP: the order record, the bus and the gateways are ports, so the same
function runs on Lambda and in unit tests with fakes. Per event on the queue:

* `OrderPlaced` -> `OrderStore.record_placed` (idempotent; the stock consumer may call it
  too): the order total the payment will be checked against.
* `OrderPaymentReported` -> find the order record (none yet: `OrderNotFound`, retryable, so
  SQS redelivers until the OrderPlaced has been applied), ask the gateway (a `PaymentReport`
  names Stripe and the PaymentIntent; Shopify's `orders/paid` means the Admin API's order
  transactions), `assess` against the order total, then:

  ==========  ==========================================  ===============================
  verdict     guarded transition of the payment concern   published (once)
  ==========  ==========================================  ===============================
  confirmed   pending|failed|mismatch -> confirmed         PaymentConfirmed
  mismatch    pending|failed -> mismatch                   PaymentMismatch (stock stays)
  failed      pending|mismatch -> failed                   PaymentFailed
  pending     none (timeline note); re-checked later       nothing
  ==========  ==========================================  ===============================

* `RefundIssued` -> a full refund moves payment to `refunded`; a partial one is a timeline
  note. A full refund of an order whose payment is still `pending` (or `failed`) overtook the
  confirmation: it raises `PrerequisiteMissing` (retryable), SQS redelivers it after the
  confirmation has been applied (and PaymentConfirmed published), and it then moves
  `confirmed -> refunded`. If no confirmation ever comes (nothing reported, a failed payment
  never retried), the refund dead-letters after MaxReceiveCount receives, for a person.

**Exactly once.** The transition is the once-guard: the order store applies it at most once
per (concern, event id) and only along the graph, so of all the reports for one order only
one can move it to `confirmed`. The outcome event is published by the report that applied the
transition, and only by it: the record's timeline names the event that decided each outcome.
Its id is deterministic (order id + deciding event id + type), and after a successful
publish a timeline marker keyed by that id is written ("publish, then mark published"). So:

* a duplicate or later report finds the transition not applicable, is not the decider, and
  publishes nothing;
* a crash or a bus failure after the transition and before the publish fails the record;
  SQS redelivers the same event, which is the decider, finds no marker, and publishes;
* a crash after the publish and before the marker republishes the same event id (at least
  once, with a stable id consumers dedupe on); with the marker written nothing more happens.

**Permanent failures** (`PermanentError`: a bad API key, an unknown PaymentIntent, a
malformed event) are not retried here: the handler sends the record to the DLQ at once with
the error type and reason (see `functions/payment_confirmation/app.py`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from storewire.domain.events import (
    CanonicalEvent,
    OrderData,
    OrderPaymentReported,
    OrderPlaced,
    PaymentConfirmed,
    PaymentFailed,
    PaymentMismatch,
    RefundData,
    RefundIssued,
    event_id,
    to_bus_entry,
)
from storewire.domain.orders import (
    OrderNotFound,
    OrderRecord,
    OrderStore,
    PaymentStatus,
    applied_key,
)
from storewire.domain.payments import (
    PaymentReport,
    PaymentVerification,
    Verdict,
    assess,
)
from storewire.errors import ConfigurationError, MalformedPayload, PrerequisiteMissing
from storewire.ports import ClaimCheckStore, EventPublisher, PaymentGateway

logger = logging.getLogger(__name__)

SOURCE = "payments"
SHOPIFY_GATEWAY = "shopify"

OUTCOMES: dict[Verdict, tuple[str, type[CanonicalEvent]]] = {
    Verdict.CONFIRMED: ("confirmed", PaymentConfirmed),
    Verdict.MISMATCH: ("mismatch", PaymentMismatch),
    Verdict.FAILED: ("failed", PaymentFailed),
}
REFUND_WAITS_FOR = frozenset({PaymentStatus.PENDING, PaymentStatus.FAILED})
"""Payment statuses a full refund waits on (retryable) until a confirmation moves them."""
OUTCOME_TYPES: dict[str, type[CanonicalEvent]] = {
    model.model_fields["event_type"].default: model for _, model in OUTCOMES.values()
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PaymentDeps:
    """The ports `handle_payment_event` works with (wired once per cold start)."""

    orders: OrderStore
    publisher: EventPublisher
    gateways: Mapping[str, PaymentGateway]
    claim_checks: ClaimCheckStore | None = None
    clock: Callable[[], datetime] = _utcnow


Action = Literal[
    "recorded", "confirmed", "mismatch", "failed", "pending", "refunded", "noted", "unchanged",
    "ignored",
]  # fmt: skip


OUTCOME_ACTIONS: dict[str, Action] = {
    "PaymentConfirmed": "confirmed",
    "PaymentMismatch": "mismatch",
    "PaymentFailed": "failed",
}


@dataclass(frozen=True)
class PaymentResult:
    action: Action
    order_id: str | None = None
    published: tuple[str, ...] = ()
    reason: str = ""


def outcome_event_id(order_id: str, decided_by: str, event_type: str) -> str:
    """The deterministic id of the outcome `decided_by` an event for `order_id`."""
    return event_id(SOURCE, f"{order_id}|{decided_by}", event_type, 0)


def handle_payment_event(event: CanonicalEvent, deps: PaymentDeps) -> PaymentResult:
    """Apply one event from the payment confirmation queue (see the module docstring)."""
    if isinstance(event, OrderPlaced):
        record = deps.orders.record_placed(_resolved(event, deps))
        return PaymentResult("recorded", record.order_id)
    if isinstance(event, OrderPaymentReported):
        return _verify(event, deps)
    if isinstance(event, RefundIssued):
        return _refund(_resolved(event, deps), deps)
    return PaymentResult("ignored", event.order_id, reason=f"{event.event_type} is not handled")


def _resolved[E: CanonicalEvent](event: E, deps: PaymentDeps) -> E:
    """`event` with a claim-checked `data` loaded back inline."""
    if event.claim_check is None:
        return event
    if deps.claim_checks is None:
        raise ConfigurationError("a claim-checked event arrived but no claim check store is wired")
    body = deps.claim_checks.load(event.claim_check)
    raw = {**event.model_dump(mode="json", exclude={"claim_check"}), "data": json.loads(body)}
    return type(event).model_validate(raw)


def _find_order(event: CanonicalEvent, deps: PaymentDeps) -> OrderRecord:
    record = None
    if event.order_id:
        record = deps.orders.get(event.order_id)
    elif event.external_order_id:
        record = deps.orders.find(event.external_order_id)
    else:
        raise MalformedPayload(f"{event.event_type} {event.event_id} names no order")
    if record is None:
        raise OrderNotFound(
            f"no order record for {event.order_id or event.external_order_id} yet "
            f"({event.event_type} {event.event_id} arrived before its OrderPlaced)"
        )
    return record


def _gateway(event: OrderPaymentReported, deps: PaymentDeps) -> tuple[PaymentGateway, str | None]:
    data = event.data
    if isinstance(data, PaymentReport):
        name, reference = data.gateway, data.reference
    elif isinstance(data, OrderData) or event.claim_check is not None:
        # The storefront says the order is paid: its own transactions are the truth.
        name, reference = SHOPIFY_GATEWAY, None
    else:
        raise MalformedPayload(f"OrderPaymentReported {event.event_id} carries no report")
    gateway = deps.gateways.get(name)
    if gateway is None:
        raise ConfigurationError(f"no payment gateway {name!r} is configured")
    return gateway, reference


def _verify(event: OrderPaymentReported, deps: PaymentDeps) -> PaymentResult:
    order = _find_order(event, deps)
    gateway, reference = _gateway(event, deps)
    payment = gateway.fetch_payment(order, reference)
    expected = order.totals.total
    assessment = assess(expected, payment)
    now = deps.clock()
    log = {"order_id": order.order_id, "event_id": event.event_id, "gateway": gateway.name}
    if assessment.verdict is Verdict.PENDING:
        deps.orders.append_timeline(
            order.order_id,
            event_id=event.event_id,
            event_type="PaymentPending",
            at=now,
            summary=assessment.reason,
        )
        logger.info("payment still pending at the gateway", extra=log)
        return PaymentResult("pending", order.order_id, reason=assessment.reason)

    to_status, model = OUTCOMES[assessment.verdict]
    outcome_type = str(model.model_fields["event_type"].default)
    verification = PaymentVerification(
        gateway=payment.gateway,
        reference=payment.reference,
        gateway_status=payment.gateway_status,
        expected=expected,
        received=payment.amount,
        reason=assessment.reason,
        report_event_id=event.event_id,
        verified_at=now,
    )
    deps.orders.transition(
        order.order_id,
        "payment",
        to_status,
        event_id=event.event_id,
        at=now,
        details={
            "gateway": payment.gateway,
            "reference": payment.reference,
            "reason": assessment.reason,
            "verification": verification.model_dump(mode="json"),
        },
        event_type=outcome_type,
        summary=assessment.reason,
    )
    return _publish_decided(event, deps, verification)


def _publish_decided(
    event: CanonicalEvent, deps: PaymentDeps, verification: PaymentVerification
) -> PaymentResult:
    """Publish the outcome `event` decided, unless another event decided or it is published."""
    record = _find_order(event, deps)
    decided = _decided_outcome(record, event.event_id)
    if decided is None:
        logger.info(
            "payment report changed nothing",
            extra={"order_id": record.order_id, "event_id": event.event_id},
        )
        return PaymentResult(
            "unchanged", record.order_id, reason=f"payment is {record.payment.status}"
        )
    outcome_type, model = decided
    outcome_id = outcome_event_id(record.order_id, event.event_id, outcome_type)
    action: Action = OUTCOME_ACTIONS[outcome_type]
    if applied_key("timeline", outcome_id) in record.applied:
        return PaymentResult(action, record.order_id, reason="already published")
    stored = record.payment.details.get("verification")
    if record.payment.event_id == event.event_id and isinstance(stored, dict):
        verification = PaymentVerification.model_validate(stored)
    outcome = model.model_validate(
        {
            "event_id": outcome_id,
            "occurred_at": verification.verified_at,
            "source": SOURCE,
            "shop": record.shop,
            "channel": record.channel,
            "order_id": record.order_id,
            "external_order_id": record.external_order_id,
            "correlation_id": record.order_id,
            "delivery_id": event.delivery_id,
            "data": verification,
        }
    )
    deps.publisher.publish([to_bus_entry(outcome)])
    deps.orders.append_timeline(
        record.order_id,
        event_id=outcome_id,
        event_type=outcome_type,
        at=deps.clock(),
        summary=f"{outcome_type} published",
    )
    logger.info(
        f"{outcome_type} published",
        extra={"order_id": record.order_id, "event_id": outcome_id, "decided_by": event.event_id},
    )
    return PaymentResult(action, record.order_id, (outcome_id,), verification.reason)


def _decided_outcome(record: OrderRecord, decider: str) -> tuple[str, type[CanonicalEvent]] | None:
    """The outcome the event `decider` applied to the payment concern, if it applied one."""
    if applied_key("payment", decider) not in record.applied:
        return None
    for entry in reversed(record.timeline):
        if entry.event_id == decider and entry.event_type in OUTCOME_TYPES:
            return entry.event_type, OUTCOME_TYPES[entry.event_type]
    return None


def _refund(event: RefundIssued, deps: PaymentDeps) -> PaymentResult:
    order = _find_order(event, deps)
    now = deps.clock()
    data = event.data
    if not isinstance(data, RefundData):
        raise MalformedPayload(f"RefundIssued {event.event_id} carries no refund data")
    total = order.totals.total
    full = data.amount.currency == total.currency and data.amount.amount >= total.amount
    if full and order.payment.status in REFUND_WAITS_FOR:
        # The money came in (it is going back), but the report that confirms it has not been
        # applied yet: pending|failed -> refunded is not an edge, and a note would leave the
        # later confirmation `confirmed`. Wait for it; the confirmation publishes
        # PaymentConfirmed as usual (stock commits), then the redelivered refund applies.
        raise PrerequisiteMissing(
            f"full refund {event.event_id} of {order.order_id} before its payment is "
            f"confirmed (payment is {order.payment.status}); retry after the confirmation"
        )
    if full and deps.orders.transition(
        order.order_id,
        "payment",
        "refunded",
        event_id=event.event_id,
        at=now,
        details={"refunded": data.amount.model_dump(mode="json")},
        event_type="RefundIssued",
        summary=f"refunded {data.amount}",
    ):
        return PaymentResult("refunded", order.order_id, reason=f"refunded {data.amount}")
    deps.orders.append_timeline(
        order.order_id,
        event_id=event.event_id,
        event_type="RefundIssued",
        at=now,
        summary=f"refund of {data.amount} ({'full' if full else 'partial'})",
    )
    return PaymentResult("noted", order.order_id, reason=f"refund of {data.amount}")
