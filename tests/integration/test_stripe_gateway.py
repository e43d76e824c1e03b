"""The Stripe adapter and the shared HTTP layer against the Stripe fake, over loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from storewire.adapters.stripe_gateway import StripeGateway, describe_stripe_error, form_encode
from storewire.domain.events import OrderTotals
from storewire.domain.money import Money
from storewire.domain.orders import OrderRecord
from storewire.domain.payments import assess
from storewire.http import HttpClient, PermanentUpstreamError, RetryableUpstreamError, RetryPolicy
from storewire.sources import Headers, WebhookSecrets
from storewire.sources.stripe import StripeSource
from storewire_local.fakes.stripe import DEFAULT_API_KEY, StripeFake, decode_form

pytestmark = pytest.mark.integration

ORDER_ID = "shopify:storewire-demo.myshopify.com:5745289347382"
TOTAL = Money.parse("177.96", "USD")


@pytest.fixture(scope="module")
def fake() -> Iterator[StripeFake]:
    with StripeFake() as server:
        yield server  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _clean(fake: StripeFake) -> None:
    fake.reset()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def gateway(
    fake: StripeFake,
    *,
    key: str = DEFAULT_API_KEY,
    sleeps: Sleeps | None = None,
    read_timeout: float = 5.0,
) -> StripeGateway:
    http = HttpClient(
        httpx.Client(timeout=httpx.Timeout(read_timeout, connect=2.0)),
        service="stripe",
        policy=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05),
        describe_error=describe_stripe_error,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    return StripeGateway(http, key, base_url=fake.url)


def order_record(total: Money) -> OrderRecord:
    zero = Money.zero(total.currency)
    return OrderRecord(
        order_id=ORDER_ID,
        external_order_id="5745289347382",
        shop="storewire-demo.myshopify.com",
        channel="shopify",
        order_number="#1001",
        currency=total.currency,
        totals=OrderTotals(subtotal=total, discounts=zero, shipping=zero, tax=zero, total=total),
        storefront_updated_at=datetime(2026, 11, 20, 15, 0, tzinfo=UTC),
    )


def control(fake: StripeFake, path: str, body: object) -> None:
    httpx.post(f"{fake.url}/_fake/{path}", json=body, timeout=5).raise_for_status()


def create(stripe: StripeGateway, key: str = "order-1", method: str = "pm_card_visa") -> dict:  # type: ignore[type-arg]
    return stripe.create_payment_intent(
        TOTAL, order_id=ORDER_ID, idempotency_key=key, payment_method=method, confirm=True
    )


def test_given_pm_card_visa_when_an_intent_is_created_and_read_then_it_succeeded(
    fake: StripeFake,
) -> None:
    stripe = gateway(fake)

    created = create(stripe)
    read = stripe.retrieve_payment_intent(created["id"])

    assert created["object"] == "payment_intent"
    assert read["status"] == "succeeded"
    assert read["amount"] == 17796
    assert read["currency"] == "usd"
    assert read["metadata"] == {"order_id": ORDER_ID}


def test_given_a_succeeded_intent_when_fetched_as_a_payment_then_it_matches_the_total(
    fake: StripeFake,
) -> None:
    stripe = gateway(fake)
    created = create(stripe)

    payment = stripe.fetch_payment(order_record(TOTAL), created["id"])

    assert payment.state == "succeeded"
    assert payment.amount == TOTAL
    assert assess(TOTAL, payment).verdict == "confirmed"


def test_given_a_declined_card_when_confirmed_then_402_card_error_and_a_failed_intent(
    fake: StripeFake,
) -> None:
    stripe = gateway(fake)

    with pytest.raises(PermanentUpstreamError) as caught:
        create(stripe, method="pm_card_chargeDeclined")

    assert caught.value.status == 402
    assert caught.value.code == "card_declined"
    (intent,) = fake.intents.values()
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == "generic_decline"


def test_given_the_same_idempotency_key_when_created_twice_then_one_intent(
    fake: StripeFake,
) -> None:
    stripe = gateway(fake)

    first = create(stripe, key="order-1-pay")
    second = create(stripe, key="order-1-pay")

    assert first["id"] == second["id"]
    assert len(fake.intents) == 1


def test_given_the_same_key_with_other_params_when_created_then_idempotency_error(
    fake: StripeFake,
) -> None:
    stripe = gateway(fake)
    create(stripe, key="order-1-pay")

    with pytest.raises(PermanentUpstreamError) as caught:
        stripe.create_payment_intent(
            Money.parse("1.00", "USD"),
            order_id=ORDER_ID,
            idempotency_key="order-1-pay",
            payment_method="pm_card_visa",
            confirm=True,
        )

    assert caught.value.status == 400
    assert caught.value.code == "idempotency_error"


def test_given_a_wrong_api_key_when_called_then_401_permanent_in_stripes_error_shape(
    fake: StripeFake,
) -> None:
    answer = httpx.get(
        f"{fake.url}/v1/payment_intents/pi_x", headers={"Authorization": "Bearer sk_test_wrong"}
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "invalid_request_error"

    with pytest.raises(PermanentUpstreamError) as caught:
        gateway(fake, key="sk_test_wrong").retrieve_payment_intent("pi_x")
    assert caught.value.status == 401


def test_given_an_unknown_intent_when_read_then_404_resource_missing(fake: StripeFake) -> None:
    with pytest.raises(PermanentUpstreamError) as caught:
        gateway(fake).retrieve_payment_intent("pi_unknown")

    assert caught.value.status == 404
    assert caught.value.code == "resource_missing"


def test_given_two_500s_when_read_then_the_third_attempt_answers(fake: StripeFake) -> None:
    stripe = gateway(fake)
    created = create(stripe)
    control(fake, "faults", {"mode": "status", "status": 500, "count": 2})

    read = stripe.retrieve_payment_intent(created["id"])

    assert read["id"] == created["id"]
    gets = [r for r in fake.requests if r["method"] == "GET"]
    assert len(gets) == 3


def test_given_a_429_with_retry_after_when_read_then_the_delay_is_honoured(
    fake: StripeFake,
) -> None:
    sleeps = Sleeps()
    stripe = gateway(fake, sleeps=sleeps)
    created = create(stripe)
    control(fake, "faults", {"mode": "429", "retry_after": 1, "count": 1})

    stripe.retrieve_payment_intent(created["id"])

    assert sleeps == [1.0]


def test_given_a_dropped_response_when_creating_then_the_retry_replays_one_intent(
    fake: StripeFake,
) -> None:
    stripe = gateway(fake)
    control(fake, "faults", {"mode": "drop", "count": 1, "path": "/v1/payment_intents"})

    created = create(stripe, key="order-1-drop")

    assert len(fake.intents) == 1
    assert created["id"] in fake.intents
    posts = [r for r in fake.requests if r["method"] == "POST"]
    assert [r["idempotency_key"] for r in posts] == ["order-1-drop", "order-1-drop"]


def test_given_a_slow_answer_past_the_read_timeout_when_read_then_retried(
    fake: StripeFake,
) -> None:
    stripe = gateway(fake, read_timeout=0.3)
    created = create(stripe)
    control(fake, "faults", {"mode": "slow", "seconds": 1, "count": 1})

    assert stripe.retrieve_payment_intent(created["id"])["status"] == "succeeded"


def test_given_stripe_down_when_read_then_retryable_after_the_attempts(fake: StripeFake) -> None:
    control(fake, "faults", {"mode": "status", "status": 503, "count": -1})

    with pytest.raises(RetryableUpstreamError) as caught:
        gateway(fake).retrieve_payment_intent("pi_any")

    assert caught.value.attempts == 4


def test_given_bracket_params_when_encoded_and_decoded_then_they_round_trip() -> None:
    flat = form_encode({"amount": 100, "metadata": {"order_id": "x:y:1"}, "confirm": True})

    assert flat == {"amount": "100", "metadata[order_id]": "x:y:1", "confirm": "true"}
    body = httpx.QueryParams(flat).__str__().encode()
    assert decode_form(body) == {
        "amount": "100",
        "metadata": {"order_id": "x:y:1"},
        "confirm": "true",
    }


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_given_a_webhook_endpoint_when_an_intent_succeeds_then_a_signed_event_arrives(
    fake: StripeFake,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.received.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe"
        control(fake, "webhooks", {"url": url, "secret": "whsec_it"})
        created = create(gateway(fake))
        for _ in range(100):
            if fake.webhooks_sent:
                break
            threading.Event().wait(0.02)
    finally:
        server.shutdown()
        server.server_close()

    (headers, body) = _Receiver.received[0]
    StripeSource().verify(Headers(headers), body, WebhookSecrets("whsec_it"))
    event = json.loads(body)
    assert event["type"] == "payment_intent.succeeded"
    assert event["data"]["object"]["id"] == created["id"]
    assert Decimal(event["data"]["object"]["amount"]) == 17796


def test_given_a_rotated_key_when_the_cached_one_is_refused_then_it_is_reread_once(
    fake: StripeFake,
) -> None:
    created = create(gateway(fake))
    reads: list[bool] = []

    def key(refresh: bool = False) -> str:
        reads.append(refresh)
        return DEFAULT_API_KEY if refresh else "sk_test_revoked_by_rotation"

    rotated = StripeGateway(
        HttpClient(httpx.Client(timeout=5), service="stripe", describe_error=describe_stripe_error),
        key,
        base_url=fake.url,
    )

    assert rotated.retrieve_payment_intent(created["id"])["id"] == created["id"]
    assert reads == [False, True]
