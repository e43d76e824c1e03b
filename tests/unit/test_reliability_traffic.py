"""The reliability suite's traffic generator: deterministic, in proportion, causal, and
accepted by the product's own verifiers and normalisers (no socket: intents are bound by hand).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from storewire.sources import Headers, WebhookSecrets, get_source
from storewire_local.fakes.stripe import payment_intent_object
from storewire_local.reliability.traffic import (
    ALL_LOCATIONS,
    Delivery,
    History,
    Secrets,
    generate,
    minor_units,
)


def bound(history: History) -> History:
    """`history` with a PaymentIntent per Stripe order, as the Stripe fake would answer."""
    intents: dict[int, dict[str, Any]] = {}
    for plan in history.plans:
        if plan.payment not in ("stripe", "stripe_failed"):
            continue
        failed = plan.payment == "stripe_failed"
        intents[plan.external] = payment_intent_object(
            amount=minor_units(plan.total, plan.currency),
            currency=plan.currency,
            status="requires_payment_method" if failed else "succeeded",
            metadata={"order_id": plan.order_id},
            intent_id=f"pi_{plan.external}",
            payment_method=None if failed else "pm_card_visa",
        )
    history.bind_intents(intents)
    return history


def fingerprint(history: History) -> list[tuple[str, str, str, int | None, int, bytes]]:
    return [
        (d.source, d.topic, d.delivery_id, d.order, d.phase, d.body)
        for d in history.deliveries
        if d.source != "stripe"  # their bodies embed the intent the fake assigns
    ]


def test_a_seed_gives_the_same_history_and_another_seed_another() -> None:
    first, again, other = generate(7, 300), generate(7, 300), generate(8, 300)

    assert first.planned == again.planned
    assert fingerprint(bound(first)) == fingerprint(bound(again))
    assert first.stock == again.stock
    assert first.plans == again.plans
    assert first.planned != other.planned
    assert {d[2] for d in first.planned}.isdisjoint({d[2] for d in other.planned})
    assert {p.order_id for p in first.plans}.isdisjoint({p.order_id for p in other.plans})


def test_delivery_ids_are_unique_and_stripe_needs_its_intents_first() -> None:
    history = generate(3, 200)

    ids = [d[2] for d in history.planned]
    assert len(ids) == len(set(ids))
    with pytest.raises(RuntimeError, match="prepare"):
        _ = history.deliveries
    assert len(bound(history).deliveries) == len(ids)


def test_the_mix_holds_its_proportions_on_2000_orders() -> None:
    history = generate(11, 2000)
    plans = history.plans
    n = len(plans)
    payments = Counter(p.payment for p in plans)
    cancels = Counter(p.cancel for p in plans)
    kept = [p for p in plans if not p.cancelled]
    restock = sum(1 for p in kept if p.refund and p.refund.restock)
    no_restock = sum(1 for p in kept if p.refund and not p.refund.restock)
    topics = Counter(d[1] for d in history.planned)

    assert payments["shopify"] / n == pytest.approx(0.60, abs=0.04)
    assert payments["stripe"] / n == pytest.approx(0.25, abs=0.03)
    assert 0.01 <= payments["stripe_failed"] / n <= 0.05
    assert (cancels["unpaid"] + cancels["paid"]) / n == pytest.approx(0.08, abs=0.025)
    assert cancels["unpaid"] > 0
    assert cancels["paid"] > 0
    assert restock / n == pytest.approx(0.05, abs=0.02)
    assert no_restock / n == pytest.approx(0.03, abs=0.015)
    assert topics["customers/create"] / n == pytest.approx(0.25, abs=0.04)
    assert topics["customers/update"] / n == pytest.approx(0.10, abs=0.01)
    assert len({p.email for p in plans}) == pytest.approx(n / 3, rel=0.05)
    assert all(1 <= len(p.lines) <= 3 for p in plans)
    assert Counter(len(p.lines) for p in plans).keys() == {1, 2, 3}
    shipped = [p for p in kept if p.paid]
    assert sum(1 for p in shipped if p.tracking) / len(shipped) == pytest.approx(0.30, abs=0.04)
    assert {p.currency for p in plans} == {"USD", "EUR", "JPY"}
    assert sum(1 for p in plans if p.currency == "USD") / n > 0.8


def test_the_catalogue_has_scarce_skus_over_two_locations() -> None:
    history = generate(5, 500)
    demand: Counter[str] = Counter()
    for plan in history.plans:
        for line in plan.lines:
            demand[line.sku] += line.quantity
    supply: Counter[str] = Counter()
    for (sku, location), units in history.stock.items():
        assert location in history.locations
        supply[sku] += units

    assert history.locations == ("east", "west")
    assert 6 <= len(history.catalogue) <= 10
    scarce = [sku for sku, product in history.catalogue.items() if product.scarce]
    assert len(scarce) >= 2
    assert all(demand[sku] > supply[sku] > 0 for sku in scarce)
    assert all(supply[sku] >= demand[sku] for sku in history.catalogue if sku not in scarce)
    assert any(listing.location == ALL_LOCATIONS for listing in history.listings)
    assert {listing.sku for listing in history.listings} == set(history.catalogue)


def test_deliveries_are_in_causal_order_per_order() -> None:
    history = bound(generate(13, 600))
    seen: dict[int | None, list[str]] = {}
    customers_created: set[int] = set()
    for delivery in history.deliveries:
        if delivery.topic == "customers/create":
            customers_created.add(json.loads(delivery.body)["id"])
        if delivery.order is None:
            continue
        topics = seen.setdefault(delivery.order, [])
        if delivery.topic != "orders/create":
            assert "orders/create" in topics, (delivery.order, delivery.topic)
        else:
            customer = json.loads(delivery.body)["customer"]["id"]
            plan_customer = next(p for p in history.plans if p.external == delivery.order).customer
            assert customer == plan_customer
        if delivery.topic == "refunds/create":
            assert any(t in topics for t in ("orders/paid", "payment_intent.succeeded"))
        if delivery.topic == "orders/cancelled" and delivery.phase == 1:
            assert any(t in topics for t in ("orders/paid", "payment_intent.succeeded"))
        topics.append(delivery.topic)
    phases = [d.phase for d in history.deliveries]
    assert phases == sorted(phases)
    # a customer's create comes before their first order
    first: dict[int, int] = {}
    for n, delivery in enumerate(history.deliveries):
        if delivery.topic == "orders/create":
            first.setdefault(json.loads(delivery.body)["customer"]["id"], n)
    creates = {
        json.loads(d.body)["id"]: n
        for n, d in enumerate(history.deliveries)
        if d.topic == "customers/create"
    }
    assert creates
    assert all(n < first[customer] for customer, n in creates.items())


def test_every_delivery_verifies_and_normalises_as_the_product_reads_it() -> None:
    history = bound(generate(17, 250))
    secrets = Secrets()
    keys = {"shopify": secrets.shopify, "stripe": secrets.stripe, "easypost": secrets.easypost}
    now = 1_900_000_000.0
    found: Counter[str] = Counter()
    for delivery in history.deliveries:
        source = get_source(delivery.source)
        headers = Headers(delivery.headers(secrets, now))
        if delivery.source == "stripe":
            from storewire.sources.stripe import StripeSource

            source = StripeSource(clock=lambda: now)
        source.verify(headers, delivery.body, WebhookSecrets(keys[delivery.source]))
        normalised = source.normalise(headers, delivery.body)
        assert not normalised.ignored, delivery.topic
        for event in normalised.events:
            found[event.event_type] += 1
            if delivery.order is not None:
                assert event.order_id == f"shopify:{history.shop}:{delivery.order}"
    assert set(found) == {
        "CustomerUpserted", "OrderPlaced", "OrderUpdated", "OrderPaymentReported",
        "OrderCancelled", "RefundIssued",
    }  # fmt: skip
    tampered = Delivery("shopify", "orders/create", "x", b"{}", None)
    with pytest.raises(Exception, match="does not match"):
        get_source("shopify").verify(
            Headers(tampered.headers(Secrets(shopify="other"), now)),
            b"{}",
            WebhookSecrets(secrets.shopify),
        )


def test_refunds_and_totals_are_exact_money() -> None:
    history = generate(19, 400)
    for plan in history.plans:
        assert plan.total == plan.subtotal + plan.tax + plan.shipping
        assert plan.subtotal == sum(line.unit_price * line.quantity for line in plan.lines)
        if plan.currency == "JPY":
            assert plan.total == plan.total.to_integral_value()
        if plan.refund is not None:
            assert 0 < plan.refund.amount <= plan.total
            assert plan.refund.full == (plan.refund.amount == plan.total)
            lines = {line.line_id: line.quantity for line in plan.lines}
            assert all(0 < r.quantity <= lines[r.line_id] for r in plan.refund.lines)
        if plan.cancel == "paid":
            assert plan.refund is not None
            assert plan.refund.full
            assert plan.refund.restock
