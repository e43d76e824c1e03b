"""Payments, pure: what a gateway says about an order's payment, and what we conclude.

A payment report (a Stripe webhook, Shopify's `orders/paid`) is never trusted as such: the
payment confirmation consumer asks the gateway (`storewire.ports.PaymentGateway`) and gets a
`GatewayPayment`, then `assess` compares it with the order total the order record holds:

=================================  =====================================================
gateway says                       verdict
=================================  =====================================================
succeeded, same currency + amount  CONFIRMED  -> PaymentConfirmed
succeeded, other amount/currency   MISMATCH   -> PaymentMismatch (a person reviews it)
failed / canceled                  FAILED     -> PaymentFailed
still processing / authorised      PENDING    -> nothing yet; the report is retried
=================================  =====================================================

Amounts compare exactly: Stripe's integer minor units become `Money` through the
currency's exponent (`Money.from_minor_units`), never a float.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from storewire.domain.money import Money


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


GatewayState = Literal["succeeded", "failed", "pending"]


class GatewayPayment(_Frozen):
    """The gateway's current view of one payment, read from its API."""

    gateway: str = Field(description="'stripe' or 'shopify'")
    reference: str = Field(description="Stripe PaymentIntent id, or the Shopify order gid")
    state: GatewayState
    gateway_status: str = Field(description="The vendor's own status, e.g. 'requires_capture'")
    amount: Money | None = Field(default=None, description="What was received (net of refunds)")
    failure: str | None = Field(default=None, description="The vendor's failure code/message")


class Verdict(StrEnum):
    CONFIRMED = "confirmed"
    MISMATCH = "mismatch"
    FAILED = "failed"
    PENDING = "pending"


class Assessment(_Frozen):
    verdict: Verdict
    reason: str


def assess(expected: Money, payment: GatewayPayment) -> Assessment:
    """Compare the gateway's payment with the order total (see the module docstring)."""
    if payment.state == "failed":
        why = payment.failure or payment.gateway_status
        return Assessment(verdict=Verdict.FAILED, reason=f"{payment.gateway} payment failed: {why}")
    if payment.state == "pending":
        return Assessment(
            verdict=Verdict.PENDING,
            reason=f"{payment.gateway} payment is {payment.gateway_status}",
        )
    received = payment.amount
    if received is None:
        return Assessment(
            verdict=Verdict.MISMATCH, reason=f"{payment.gateway} reports no received amount"
        )
    if received.currency != expected.currency:
        return Assessment(
            verdict=Verdict.MISMATCH,
            reason=f"currency {received.currency} differs from the order's {expected.currency}",
        )
    if received.amount != expected.amount:
        return Assessment(
            verdict=Verdict.MISMATCH,
            reason=f"received {received} but the order total is {expected}",
        )
    return Assessment(verdict=Verdict.CONFIRMED, reason=f"received {received}")


# --------------------------------------------------------------------------- Stripe

STRIPE_FAILED = frozenset({"canceled"})
STRIPE_PENDING = frozenset(
    {"processing", "requires_action", "requires_confirmation", "requires_capture"}
)


def stripe_payment(
    intent_id: str,
    status: str,
    amount: int,
    currency: str,
    *,
    amount_received: int | None = None,
    last_payment_error: str | None = None,
) -> GatewayPayment:
    """A `GatewayPayment` from a Stripe PaymentIntent's status, amount and currency.

    `requires_payment_method` after an attempt (a `last_payment_error` is set) is a failed
    payment; without one the customer has not paid yet (pending).
    """
    code = currency.upper()
    if status == "succeeded":
        received = amount_received if amount_received is not None else amount
        return GatewayPayment(
            gateway="stripe",
            reference=intent_id,
            state="succeeded",
            gateway_status=status,
            amount=Money.from_minor_units(received, code),
        )
    failed = status in STRIPE_FAILED or (
        status == "requires_payment_method" and last_payment_error is not None
    )
    return GatewayPayment(
        gateway="stripe",
        reference=intent_id,
        state="failed" if failed else "pending",
        gateway_status=status,
        failure=last_payment_error or (status if failed else None),
    )


# --------------------------------------------------------------------------- Shopify


class ShopifyTransaction(_Frozen):
    """One `OrderTransaction` of the Shopify Admin GraphQL API."""

    kind: str = Field(description="SALE, CAPTURE, AUTHORIZATION, REFUND, VOID, CHANGE, ...")
    status: str = Field(description="SUCCESS, FAILURE, PENDING, ERROR, AWAITING_RESPONSE, ...")
    amount: Money
    gateway: str | None = None


_PAID_KINDS = frozenset({"SALE", "CAPTURE"})
_WAITING = frozenset({"PENDING", "AWAITING_RESPONSE", "UNKNOWN"})


def shopify_payment(
    reference: str, transactions: Iterable[ShopifyTransaction], currency: str
) -> GatewayPayment:
    """The net payment of a Shopify order: successful SALE/CAPTURE minus successful REFUND.

    A successful transaction in another currency makes the received amount that currency
    (so `assess` calls it a mismatch rather than adding incomparable amounts).
    """
    txs = [
        t.model_copy(update={"kind": t.kind.upper(), "status": t.status.upper()})
        for t in transactions
    ]
    paid = [t for t in txs if t.kind in _PAID_KINDS and t.status == "SUCCESS"]
    refunds = [t for t in txs if t.kind == "REFUND" and t.status == "SUCCESS"]
    foreign = [t for t in (*paid, *refunds) if t.amount.currency != currency]
    if foreign:
        return GatewayPayment(
            gateway="shopify",
            reference=reference,
            state="succeeded",
            gateway_status="PAID",
            amount=foreign[0].amount,
        )
    if paid:
        net = Money.zero(currency)
        for t in paid:
            net = net + t.amount
        for t in refunds:
            net = net - t.amount
        return GatewayPayment(
            gateway="shopify",
            reference=reference,
            state="succeeded",
            gateway_status="PAID",
            amount=net,
        )
    if any(t.status in _WAITING for t in txs if t.kind in (*_PAID_KINDS, "AUTHORIZATION")):
        return GatewayPayment(
            gateway="shopify", reference=reference, state="pending", gateway_status="PENDING"
        )
    if any(t.kind == "AUTHORIZATION" and t.status == "SUCCESS" for t in txs):
        return GatewayPayment(
            gateway="shopify", reference=reference, state="pending", gateway_status="AUTHORIZED"
        )
    failures = [t for t in txs if t.status in ("FAILURE", "ERROR")]
    if failures:
        return GatewayPayment(
            gateway="shopify",
            reference=reference,
            state="failed",
            gateway_status=failures[-1].status,
            failure=f"{failures[-1].kind} {failures[-1].status}",
        )
    return GatewayPayment(
        gateway="shopify", reference=reference, state="pending", gateway_status="NO_TRANSACTIONS"
    )


# --------------------------------------------------------------------------- event bodies


class PaymentReport(_Frozen):
    """A gateway's (unverified) report about one payment: the `data` of an
    `OrderPaymentReported` normalised from a payment gateway webhook (e.g. Stripe)."""

    gateway: str = Field(description="'stripe'")
    reference: str = Field(description="The gateway's payment id, e.g. a PaymentIntent 'pi_...'")
    status: Literal["succeeded", "failed"] = Field(description="What the webhook claims")
    amount: Money = Field(description="The amount the webhook claims (not trusted)")
    gateway_event_id: str = Field(description="The gateway's event id, e.g. 'evt_...'")
    gateway_event_type: str = Field(description="e.g. 'payment_intent.succeeded'")
    livemode: bool = False
    reported_at: AwareDatetime


class PaymentVerification(_Frozen):
    """The `data` of PaymentConfirmed / PaymentFailed / PaymentMismatch: what the gateway
    said when asked, against what the order expects."""

    gateway: str
    reference: str
    gateway_status: str
    expected: Money = Field(description="The order total from the order record")
    received: Money | None = Field(default=None, description="What the gateway received")
    reason: str
    report_event_id: str = Field(description="The event whose verification decided this")
    verified_at: AwareDatetime
