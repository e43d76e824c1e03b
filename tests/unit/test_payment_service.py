"""The payment confirmation service on fakes: verify with the gateway, decide once, publish once."""

from __future__ import annotations

import json

import pytest
from fakes_orders import InMemoryOrderStore
from ingest_fakes import RecordingPublisher
from payment_fakes import (
    ORDER_ID,
    STRIPE_500,
    TOTAL_MINOR,
    FakeGateway,
    StripeScript,
    deps,
    intent,
    order_placed,
    published_types,
    shopify_event,
    stripe_gateway,
    stripe_payment,
    stripe_report,
)
from storewire.domain.orders import OrderNotFound
from storewire.domain.payments import GatewayPayment
from storewire.errors import PermanentError, PublishFailed, RetryableError
from storewire.http import PermanentUpstreamError, RetryableUpstreamError
from storewire.payments import handle_payment_event, outcome_event_id

SUCCEEDED = "payment_intent.succeeded"


def report(evt: str = "evt_1storewire", **changes: object):  # type: ignore[no-untyped-def]
    return stripe_report(SUCCEEDED, intent(**changes), evt=evt)  # type: ignore[arg-type]


def placed_deps(*gateways: FakeGateway, publisher: RecordingPublisher | None = None):  # type: ignore[no-untyped-def]
    d = deps(*gateways, publisher=publisher)
    handle_payment_event(order_placed(), d)
    return d


def test_given_a_placed_order_when_stripe_reports_the_exact_total_then_confirmed_once() -> None:
    gateway = FakeGateway("stripe", stripe_payment())
    d = placed_deps(gateway)
    event = report()

    result = handle_payment_event(event, d)

    assert result.action == "confirmed"
    assert gateway.calls == [(ORDER_ID, "pi_3Q0storewire")]
    assert published_types(d.publisher) == ["PaymentConfirmed"]  # type: ignore[arg-type]
    detail = json.loads(d.publisher.published[0]["Detail"])  # type: ignore[attr-defined]
    assert detail["event_id"] == outcome_event_id(ORDER_ID, event.event_id, "PaymentConfirmed")
    assert detail["order_id"] == ORDER_ID
    assert detail["data"]["expected"] == {"amount": "177.96", "currency": "USD"}
    assert detail["data"]["received"] == {"amount": "177.96", "currency": "USD"}
    assert d.publisher.published[0]["Source"] == "storewire.payments"  # type: ignore[attr-defined]
    record = d.orders.get(ORDER_ID)
    assert record is not None
    assert record.payment.status == "confirmed"
    assert record.payment.details["reference"] == "pi_3Q0storewire"


def test_given_the_wrong_amount_when_verified_then_mismatch_and_no_confirmation() -> None:
    d = placed_deps(FakeGateway("stripe", stripe_payment(amount=TOTAL_MINOR - 1)))

    result = handle_payment_event(report(), d)

    assert result.action == "mismatch"
    assert "177.95 USD" in result.reason
    assert published_types(d.publisher) == ["PaymentMismatch"]  # type: ignore[arg-type]
    record = d.orders.get(ORDER_ID)
    assert record is not None
    assert record.payment.status == "mismatch"


def test_given_the_webhook_claims_the_total_but_stripe_holds_less_then_stripe_wins() -> None:
    # The webhook body says 177.96; the gateway (the truth) says 100.00.
    d = placed_deps(FakeGateway("stripe", stripe_payment(amount=10000)))

    assert handle_payment_event(report(), d).action == "mismatch"


def test_given_the_wrong_currency_when_verified_then_mismatch() -> None:
    d = placed_deps(FakeGateway("stripe", stripe_payment(currency="EUR")))

    result = handle_payment_event(report(), d)

    assert result.action == "mismatch"
    assert "currency EUR" in result.reason


def test_given_a_declined_payment_when_verified_then_payment_failed() -> None:
    declined = GatewayPayment(
        gateway="stripe",
        reference="pi_3Q0storewire",
        state="failed",
        gateway_status="requires_payment_method",
        failure="card_declined",
    )
    d = placed_deps(FakeGateway("stripe", declined))

    result = handle_payment_event(report(), d)

    assert result.action == "failed"
    assert published_types(d.publisher) == ["PaymentFailed"]  # type: ignore[arg-type]
    assert d.orders.get(ORDER_ID).payment.status == "failed"  # type: ignore[union-attr]


def test_given_duplicate_and_redelivered_reports_when_handled_then_one_payment_confirmed() -> None:
    d = placed_deps(
        FakeGateway("stripe", stripe_payment()), FakeGateway("shopify", stripe_payment())
    )
    first = report("evt_A")

    results = [
        handle_payment_event(first, d),
        handle_payment_event(first, d),  # SQS redelivery
        handle_payment_event(report("evt_B"), d),  # another Stripe event for the same intent
        handle_payment_event(shopify_event("orders/paid", "wh-paid-1"), d),  # Shopify's report
        handle_payment_event(first, d),
    ]

    assert published_types(d.publisher) == ["PaymentConfirmed"]  # type: ignore[arg-type]
    assert [r.action for r in results] == [
        "confirmed",
        "confirmed",
        "unchanged",
        "unchanged",
        "confirmed",
    ]
    assert results[1].published == ()


def test_given_a_report_before_its_order_when_handled_then_retryable_and_later_confirmed() -> None:
    gateway = FakeGateway("stripe", stripe_payment())
    d = deps(gateway)

    with pytest.raises(OrderNotFound) as caught:
        handle_payment_event(report(), d)
    assert isinstance(caught.value, RetryableError)
    assert gateway.calls == []

    handle_payment_event(order_placed(), d)
    assert handle_payment_event(report(), d).action == "confirmed"
    assert published_types(d.publisher) == ["PaymentConfirmed"]  # type: ignore[arg-type]


def test_given_stripe_500_twice_then_200_when_verified_then_confirmed_once() -> None:
    script = StripeScript(STRIPE_500, STRIPE_500, (200, intent()))
    sleeps: list[float] = []
    d = placed_deps(stripe_gateway(script, sleeps=sleeps))  # type: ignore[arg-type]

    result = handle_payment_event(report(), d)

    assert result.action == "confirmed"
    assert len(script.requests) == 3
    assert {r.url.path for r in script.requests} == {"/v1/payment_intents/pi_3Q0storewire"}
    assert script.requests[0].headers["Authorization"] == "Bearer sk_test_storewire_dev"
    assert sleeps == [0.05, 0.1]
    assert published_types(d.publisher) == ["PaymentConfirmed"]  # type: ignore[arg-type]


def test_given_stripe_down_past_the_retries_when_verified_then_retryable_and_nothing_moves() -> (
    None
):
    d = placed_deps(stripe_gateway(StripeScript(STRIPE_500)))  # type: ignore[arg-type]

    with pytest.raises(RetryableUpstreamError):
        handle_payment_event(report(), d)

    assert d.orders.get(ORDER_ID).payment.status == "pending"  # type: ignore[union-attr]
    assert d.publisher.published == []  # type: ignore[attr-defined]


def test_given_an_unknown_payment_intent_when_verified_then_a_permanent_error() -> None:
    missing = (
        404,
        {
            "error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": "No such payment_intent: 'pi_3Q0storewire'",
            }
        },
    )
    script = StripeScript(missing)
    d = placed_deps(stripe_gateway(script))  # type: ignore[arg-type]

    with pytest.raises(PermanentUpstreamError) as caught:
        handle_payment_event(report(), d)

    assert isinstance(caught.value, PermanentError)
    assert caught.value.code == "resource_missing"
    assert len(script.requests) == 1


def test_given_the_bus_fails_after_the_transition_when_redelivered_then_published_once() -> None:
    publisher = RecordingPublisher(fail_next=1)
    d = placed_deps(FakeGateway("stripe", stripe_payment()), publisher=publisher)
    event = report()

    with pytest.raises(PublishFailed):
        handle_payment_event(event, d)
    assert d.orders.get(ORDER_ID).payment.status == "confirmed"  # type: ignore[union-attr]
    assert publisher.published == []

    # A different report for the same order does not publish: it did not decide.
    assert handle_payment_event(report("evt_other"), d).action == "unchanged"
    assert publisher.published == []

    # SQS redelivers the deciding event: it publishes, then marks it published.
    assert handle_payment_event(event, d).published != ()
    handle_payment_event(event, d)
    assert published_types(publisher) == ["PaymentConfirmed"]


class MarkFailsOnce(InMemoryOrderStore):
    """The process dies between the publish and the 'published' mark, once."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_mark = True

    def append_timeline(self, order_id: str, **kwargs: object) -> bool:  # type: ignore[override]
        if self.fail_mark and kwargs.get("event_type") == "PaymentConfirmed":
            self.fail_mark = False
            raise RuntimeError("Lambda timed out")
        return super().append_timeline(order_id, **kwargs)  # type: ignore[arg-type]


def test_given_a_crash_between_publish_and_mark_when_redelivered_then_the_same_event_id() -> None:
    orders = MarkFailsOnce()
    d = deps(FakeGateway("stripe", stripe_payment()), orders=orders)
    handle_payment_event(order_placed(), d)
    event = report()

    with pytest.raises(RuntimeError):
        handle_payment_event(event, d)
    handle_payment_event(event, d)
    handle_payment_event(event, d)

    ids = {json.loads(e["Detail"])["event_id"] for e in d.publisher.published}  # type: ignore[attr-defined]
    assert len(d.publisher.published) == 2  # type: ignore[attr-defined]
    assert ids == {outcome_event_id(ORDER_ID, event.event_id, "PaymentConfirmed")}


def test_given_shopify_orders_paid_when_verified_then_the_admin_api_is_asked() -> None:
    shopify = FakeGateway("shopify", stripe_payment())
    d = placed_deps(shopify)

    result = handle_payment_event(shopify_event("orders/paid", "wh-paid-1"), d)

    assert result.action == "confirmed"
    assert shopify.calls == [(ORDER_ID, None)]


def test_given_only_the_storefront_id_when_verified_then_the_order_is_found_by_it() -> None:
    d = placed_deps(FakeGateway("stripe", stripe_payment()))
    event = stripe_report(SUCCEEDED, intent(metadata={"order_id": "5745289347382"}))

    assert event.order_id is None
    assert handle_payment_event(event, d).action == "confirmed"
    assert d.orders.get(ORDER_ID).payment.status == "confirmed"  # type: ignore[union-attr]


def test_given_a_pending_payment_when_verified_then_noted_and_nothing_published() -> None:
    processing = GatewayPayment(
        gateway="stripe", reference="pi_x", state="pending", gateway_status="processing"
    )
    d = placed_deps(FakeGateway("stripe", processing))

    result = handle_payment_event(report(), d)

    assert result.action == "pending"
    assert d.publisher.published == []  # type: ignore[attr-defined]
    record = d.orders.get(ORDER_ID)
    assert record is not None
    assert record.payment.status == "pending"
    assert record.timeline[-1].summary == "stripe payment is processing"


def test_given_a_failed_then_succeeded_payment_when_verified_then_it_ends_confirmed() -> None:
    declined = GatewayPayment(
        gateway="stripe",
        reference="pi_3Q0storewire",
        state="failed",
        gateway_status="requires_payment_method",
        failure="card_declined",
    )
    d = placed_deps(FakeGateway("stripe", declined, stripe_payment()))

    handle_payment_event(report("evt_fail"), d)
    handle_payment_event(report("evt_ok"), d)

    assert published_types(d.publisher) == ["PaymentFailed", "PaymentConfirmed"]  # type: ignore[arg-type]
    assert d.orders.get(ORDER_ID).payment.status == "confirmed"  # type: ignore[union-attr]


def test_given_no_gateway_for_the_report_when_verified_then_a_permanent_error() -> None:
    d = placed_deps(FakeGateway("shopify", stripe_payment()))

    with pytest.raises(PermanentError, match="no payment gateway 'stripe'"):
        handle_payment_event(report(), d)


def test_given_the_order_placed_twice_when_recorded_then_one_record() -> None:
    d = deps()

    handle_payment_event(order_placed(), d)
    result = handle_payment_event(order_placed(), d)

    assert result.action == "recorded"
    assert d.orders.writes == 1  # type: ignore[attr-defined]


def test_given_a_full_refund_of_a_confirmed_order_when_handled_then_refunded() -> None:
    d = placed_deps(FakeGateway("stripe", stripe_payment()))
    handle_payment_event(report(), d)

    result = handle_payment_event(shopify_event("refunds/create", "wh-refund-1"), d)

    record = d.orders.get(ORDER_ID)
    assert record is not None
    assert result.action in ("refunded", "noted")
    assert record.timeline[-1].event_type == "RefundIssued"
