"""Stripe webhooks: verify `Stripe-Signature` and normalise payment events.

Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 (hex) and sends
`Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]`. A delivery verifies
when any `v1` matches under the current or the previous secret (several `v1` values appear
while Stripe rolls an endpoint's secret); one older than `TOLERANCE_SECONDS` (or that far in
the future) is `StaleWebhook` (401) even when correctly signed. The delivery id (dedupe key)
is the Stripe event id (`evt_...`), which Stripe keeps across its retries.

======================================  ===================================================
Stripe event                            canonical event
======================================  ===================================================
payment_intent.succeeded                OrderPaymentReported (data: PaymentReport, succeeded)
payment_intent.payment_failed           OrderPaymentReported (data: PaymentReport, failed)
charge.refunded                         RefundIssued (no lines: Stripe knows no stock)
======================================  ===================================================

Every other type is acknowledged and ignored. A report is never trusted: the payment
confirmation consumer asks Stripe for the PaymentIntent before concluding anything.

**Finding the order.** The PaymentIntent's (or charge's) `metadata.order_id` says which order
it pays, either as

* the canonical order id (`shopify:{shop}:{id}`), used as is; or
* the storefront's own order id (what a Shopify-backed checkout carries). With
  `metadata.shop` (and optionally `metadata.channel`, default `shopify`) it becomes the
  canonical id here; without, the event carries it as `external_order_id` only and the
  consumer resolves it through the order store (`OrderStore.find`).

An event without `metadata.order_id` cannot be tied to an order: it is ignored (200) and
logged with its event id, so the payment must be reconciled by hand. `charge.refunded` also
needs the canonical id (or the storefront id with `metadata.shop`): its RefundIssued goes to
stock and CRM too, which key on the canonical order id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storewire.domain.events import (
    CanonicalEvent,
    OrderPaymentReported,
    RefundData,
    RefundIssued,
    RefundTransaction,
    canonical_order_id,
    event_id,
)
from storewire.domain.money import Money
from storewire.domain.payments import PaymentReport
from storewire.errors import MalformedPayload, SignatureInvalid, StaleWebhook
from storewire.sources import Delivery, Headers, Normalised, WebhookSecrets

logger = logging.getLogger(__name__)

SOURCE = "stripe"
SIGNATURE_HEADER = "Stripe-Signature"
TOLERANCE_SECONDS = 300
DEFAULT_CHANNEL = "shopify"

PAYMENT_SUCCEEDED = "payment_intent.succeeded"
PAYMENT_FAILED = "payment_intent.payment_failed"
CHARGE_REFUNDED = "charge.refunded"
HANDLED_TYPES: frozenset[str] = frozenset({PAYMENT_SUCCEEDED, PAYMENT_FAILED, CHARGE_REFUNDED})


# --------------------------------------------------------------------------- signing


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The hex `v1` signature Stripe computes for `body` sent at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secrets: str | list[str], timestamp: int | None = None) -> str:
    """A `Stripe-Signature` value: `t=...,v1=...` with one `v1` per secret given."""
    t = int(time.time()) if timestamp is None else timestamp
    keys = [secrets] if isinstance(secrets, str) else secrets
    return ",".join([f"t={t}", *(f"v1={sign(body, key, t)}" for key in keys)])


def parse_signature_header(value: str) -> tuple[int, tuple[str, ...]]:
    """(timestamp, v1 signatures) of a `Stripe-Signature` value; `SignatureInvalid` if bad."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(val)
            except ValueError:
                raise SignatureInvalid(f"{SIGNATURE_HEADER} has a malformed timestamp") from None
        elif key == "v1" and val:
            signatures.append(val.strip().lower())
    if timestamp is None:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} has no timestamp")
    if not signatures:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} has no v1 signature")
    return timestamp, tuple(signatures)


def verify_signature(
    headers: Headers,
    body: bytes,
    secrets: WebhookSecrets,
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """The delivery's timestamp, once a `v1` matches `body` under a secret and it is fresh.

    `SignatureInvalid` (401) when missing or no match; `StaleWebhook` (401) when signed but
    outside `tolerance` seconds of `now`. Every comparison runs (constant time per secret).
    """
    provided = headers.get(SIGNATURE_HEADER)
    if not provided:
        raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = parse_signature_header(provided)
    matched = False
    for secret in secrets.candidates():
        expected = sign(body, secret, timestamp).encode()
        for candidate in signatures:
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", errors="replace"))
    if not matched:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")
    if tolerance and abs(now - timestamp) > tolerance:
        raise StaleWebhook(
            f"Stripe signed this delivery {int(now - timestamp)} s ago; "
            f"the tolerance is {tolerance} s"
        )
    return timestamp


# --------------------------------------------------------------------------- payload models


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class _EventData(_Payload):
    object: dict[str, Any]


class _Event(_Payload):
    id: str = Field(pattern=r"^evt_")
    object: str = "event"
    type: str
    created: int
    livemode: bool = False
    account: str | None = None
    data: _EventData


class _LastError(_Payload):
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class _PaymentIntent(_Payload):
    id: str = Field(pattern=r"^pi_")
    amount: int = Field(ge=0)
    amount_received: int = 0
    currency: str = Field(min_length=3, max_length=3)
    status: str
    metadata: dict[str, str] = {}
    last_payment_error: _LastError | None = None


class _Refund(_Payload):
    id: str
    amount: int
    currency: str
    status: str | None = None
    created: int | None = None


class _RefundList(_Payload):
    data: list[_Refund] = []


class _Charge(_Payload):
    id: str = Field(pattern=r"^(ch|py)_")
    amount: int
    amount_refunded: int
    currency: str = Field(min_length=3, max_length=3)
    payment_intent: str | None = None
    refunded: bool = False
    metadata: dict[str, str] = {}
    refunds: _RefundList | None = None


def _validate[M: BaseModel](model: type[M], what: str, payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        fields = [".".join(str(p) for p in e["loc"]) or "(body)" for e in problems]
        raise MalformedPayload(
            f"Stripe {what} does not fit its shape: {', '.join(fields)[:500]}", fields=fields
        ) from None


# --------------------------------------------------------------------------- order reference


class OrderRef(BaseModel):
    """Which order a Stripe object pays, from its metadata."""

    model_config = ConfigDict(frozen=True)

    order_id: str | None
    external_order_id: str
    shop: str | None
    channel: str


def order_ref(metadata: dict[str, str]) -> OrderRef | None:
    """The order named by `metadata.order_id` (see the module docstring); None if absent."""
    ref = (metadata.get("order_id") or "").strip()
    if not ref:
        return None
    parts = ref.split(":")
    if len(parts) >= 3 and all(parts):
        return OrderRef(
            order_id=ref,
            external_order_id=parts[-1],
            shop=":".join(parts[1:-1]),
            channel=parts[0],
        )
    channel = (metadata.get("channel") or DEFAULT_CHANNEL).strip()
    shop = (metadata.get("shop") or "").strip()
    return OrderRef(
        order_id=canonical_order_id(channel, shop, ref) if shop else None,
        external_order_id=ref,
        shop=shop or None,
        channel=channel,
    )


# --------------------------------------------------------------------------- normalisation


def _money(units: int, currency: str) -> Money:
    return Money.from_minor_units(units, currency.upper())


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def normalise_event(event: _Event) -> tuple[CanonicalEvent, ...]:
    """The canonical events of one handled, verified Stripe event (none if no order ref)."""
    if event.type in (PAYMENT_SUCCEEDED, PAYMENT_FAILED):
        intent = _validate(_PaymentIntent, "PaymentIntent", event.data.object)
        ref = order_ref(intent.metadata)
        if ref is None:
            _log_unreferenced(event, intent.id)
            return ()
        report = PaymentReport(
            gateway=SOURCE,
            reference=intent.id,
            status="succeeded" if event.type == PAYMENT_SUCCEEDED else "failed",
            amount=_money(intent.amount, intent.currency),
            gateway_event_id=event.id,
            gateway_event_type=event.type,
            livemode=event.livemode,
            reported_at=_at(event.created),
        )
        return (
            OrderPaymentReported(
                **_envelope(event, ref, intent.id, "OrderPaymentReported", report)
            ),
        )
    charge = _validate(_Charge, "Charge", event.data.object)
    ref = order_ref(charge.metadata)
    if ref is None or ref.order_id is None:
        # RefundIssued also goes to stock and CRM, which key on the canonical order id.
        _log_unreferenced(event, charge.payment_intent or charge.id)
        return ()
    currency = charge.currency.upper()
    refunds = (charge.refunds.data if charge.refunds else []) or []
    latest = max(refunds, key=lambda r: (r.created or 0, r.id)) if refunds else None
    transactions = tuple(
        RefundTransaction(
            transaction_id=r.id,
            kind="refund",
            status="success" if r.status in (None, "succeeded") else str(r.status),
            gateway=SOURCE,
            amount=_money(r.amount, r.currency),
        )
        for r in refunds
    )
    refund = RefundData(
        # Without the (unexpanded) refunds list, the cumulative amount names the refund step.
        refund_id=latest.id if latest else f"{charge.id}:{charge.amount_refunded}",
        external_order_id=ref.external_order_id,
        currency=currency,
        lines=(),
        transactions=transactions,
        amount=_money(charge.amount_refunded, currency),
        restock=False,
        note=f"Stripe charge {charge.id} refunded",
        created_at=_at(event.created),
        processed_at=_at(latest.created) if latest and latest.created else None,
    )
    return (RefundIssued(**_envelope(event, ref, charge.id, "RefundIssued", refund)),)


def _envelope(
    event: _Event, ref: OrderRef, reference: str, event_type: str, data: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id(SOURCE, event.id, event_type, 0),
        "occurred_at": _at(event.created),
        "source": SOURCE,
        # The store the order belongs to when known; else the Stripe account (Connect) or
        # "stripe" (the consumer resolves the order by its storefront id).
        "shop": ref.shop or event.account or SOURCE,
        "channel": ref.channel,
        "order_id": ref.order_id,
        "external_order_id": ref.external_order_id,
        "correlation_id": ref.order_id or ref.external_order_id or reference,
        "delivery_id": event.id,
        "data": data,
    }


def _log_unreferenced(event: _Event, reference: str) -> None:
    logger.warning(
        "stripe event has no metadata.order_id; ignored",
        extra={"stripe_event_id": event.id, "stripe_type": event.type, "reference": reference},
    )


def _decode(body: bytes) -> _Event:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedPayload("Stripe event body is not valid JSON", fields=["(body)"]) from None
    if not isinstance(payload, dict):
        raise MalformedPayload("Stripe event body must be a JSON object", fields=["(body)"])
    return _validate(_Event, "event", payload)


# --------------------------------------------------------------------------- the adapter


class StripeSource:
    """The `stripe` source adapter (see `storewire.sources.SourceAdapter`)."""

    name = SOURCE

    def __init__(
        self, *, clock: Callable[[], float] = time.time, tolerance: int = TOLERANCE_SECONDS
    ) -> None:
        self._clock = clock
        self._tolerance = tolerance

    def describe(self, headers: Headers) -> Delivery:
        # The event id and type live in the body; the header only gives the time.
        sent_at: datetime | None = None
        value = headers.get(SIGNATURE_HEADER)
        if value:
            try:
                sent_at = _at(parse_signature_header(value)[0])
            except (SignatureInvalid, OverflowError, OSError, ValueError):
                sent_at = None
        return Delivery(topic=None, shop=None, delivery_id=None, sent_at=sent_at)

    def verify(self, headers: Headers, body: bytes, secrets: WebhookSecrets) -> None:
        verify_signature(headers, body, secrets, now=self._clock(), tolerance=self._tolerance)

    def normalise(self, headers: Headers, body: bytes) -> Normalised:
        event = _decode(body)
        shop = event.account or SOURCE
        if event.type not in HANDLED_TYPES:
            return Normalised(topic=event.type, shop=shop, delivery_id=event.id, ignored=True)
        events = normalise_event(event)
        if not events:
            return Normalised(topic=event.type, shop=shop, delivery_id=event.id, ignored=True)
        return Normalised(
            topic=event.type, shop=events[0].shop, delivery_id=event.id, events=events
        )


ADAPTER = StripeSource()
