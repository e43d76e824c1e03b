"""Pure payment rules: what a gateway's answer means against the order total."""

from __future__ import annotations

from decimal import Decimal

import pytest
from storewire.domain.money import Money
from storewire.domain.payments import (
    GatewayPayment,
    ShopifyTransaction,
    Verdict,
    assess,
    shopify_payment,
    stripe_payment,
)

TOTAL = Money.parse("177.96", "USD")


def tx(kind: str, status: str, amount: str, currency: str = "USD") -> ShopifyTransaction:
    return ShopifyTransaction(kind=kind, status=status, amount=Money.parse(amount, currency))


@pytest.mark.parametrize(
    ("status", "error", "state"),
    [
        ("succeeded", None, "succeeded"),
        ("processing", None, "pending"),
        ("requires_capture", None, "pending"),
        ("requires_action", None, "pending"),
        ("requires_payment_method", None, "pending"),
        ("requires_payment_method", "card_declined", "failed"),
        ("canceled", None, "failed"),
    ],
)
def test_given_a_payment_intent_status_when_read_then_its_state(
    status: str, error: str | None, state: str
) -> None:
    payment = stripe_payment("pi_1", status, 17796, "usd", last_payment_error=error)

    assert payment.state == state


def test_given_integer_minor_units_when_read_then_exact_money_in_the_currency_exponent() -> None:
    assert stripe_payment("pi_1", "succeeded", 17796, "usd").amount == TOTAL
    assert stripe_payment("pi_1", "succeeded", 1500, "jpy").amount == Money.parse("1500", "JPY")
    kwd = stripe_payment("pi_1", "succeeded", 12345, "kwd").amount
    assert kwd is not None
    assert kwd.amount == Decimal("12.345")


def test_given_amount_received_when_read_then_it_wins_over_amount() -> None:
    payment = stripe_payment("pi_1", "succeeded", 17796, "usd", amount_received=17000)

    assert payment.amount == Money.parse("170.00", "USD")


@pytest.mark.parametrize(
    ("payment", "verdict"),
    [
        (stripe_payment("pi", "succeeded", 17796, "usd"), Verdict.CONFIRMED),
        (stripe_payment("pi", "succeeded", 17795, "usd"), Verdict.MISMATCH),
        (stripe_payment("pi", "succeeded", 17797, "usd"), Verdict.MISMATCH),
        (stripe_payment("pi", "succeeded", 17796, "eur"), Verdict.MISMATCH),
        (stripe_payment("pi", "canceled", 17796, "usd"), Verdict.FAILED),
        (stripe_payment("pi", "processing", 17796, "usd"), Verdict.PENDING),
        (
            GatewayPayment(gateway="x", reference="r", state="succeeded", gateway_status="ok"),
            Verdict.MISMATCH,
        ),
    ],
)
def test_given_a_gateway_answer_when_assessed_then_the_verdict(
    payment: GatewayPayment, verdict: Verdict
) -> None:
    assert assess(TOTAL, payment).verdict is verdict


def test_given_sales_and_refunds_when_summed_then_the_net_is_compared() -> None:
    payment = shopify_payment(
        "gid://shopify/Order/1",
        [
            tx("AUTHORIZATION", "SUCCESS", "177.96"),
            tx("CAPTURE", "SUCCESS", "100.00"),
            tx("CAPTURE", "SUCCESS", "77.96"),
            tx("SALE", "FAILURE", "177.96"),
        ],
        "USD",
    )

    assert payment.amount == TOTAL
    assert assess(TOTAL, payment).verdict is Verdict.CONFIRMED


def test_given_a_refund_when_summed_then_it_is_subtracted() -> None:
    payment = shopify_payment(
        "gid", [tx("sale", "success", "177.96"), tx("refund", "success", "10.00")], "USD"
    )

    assert payment.amount == Money.parse("167.96", "USD")


def test_given_a_transaction_in_another_currency_when_summed_then_a_mismatch() -> None:
    payment = shopify_payment("gid", [tx("SALE", "SUCCESS", "160.00", "EUR")], "USD")

    assert assess(TOTAL, payment).verdict is Verdict.MISMATCH


@pytest.mark.parametrize(
    ("transactions", "state"),
    [
        ([], "pending"),
        ([tx("SALE", "PENDING", "177.96")], "pending"),
        ([tx("AUTHORIZATION", "SUCCESS", "177.96")], "pending"),
        ([tx("SALE", "FAILURE", "177.96")], "failed"),
        ([tx("SALE", "ERROR", "177.96")], "failed"),
    ],
)
def test_given_no_successful_sale_when_summed_then_pending_or_failed(
    transactions: list[ShopifyTransaction], state: str
) -> None:
    assert shopify_payment("gid", transactions, "USD").state == state
