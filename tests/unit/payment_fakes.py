"""Fakes and builders for the payment confirmation tests (no Mock()).

Order and payment events are built by the real normalisers (Shopify samples, Stripe events
through `storewire.sources.stripe`), so the tests exercise the shapes production sees.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import httpx
from fakes_orders import InMemoryOrderStore
from ingest_fakes import RecordingPublisher
from samples import REPO_ROOT, sample_payload
from storewire.adapters.stripe_gateway import StripeGateway, describe_stripe_error
from storewire.domain.events import CanonicalEvent, canonical_order_id
from storewire.domain.orders import OrderRecord
from storewire.domain.payments import GatewayPayment
from storewire.http import HttpClient, RetryPolicy
from storewire.payments import PaymentDeps
from storewire.sources import Headers
from storewire.sources.shopify import normalise_payload
from storewire.sources.stripe import StripeSource

SHOP = "storewire-demo.myshopify.com"
ORDER_EXTERNAL_ID = "5745289347382"
ORDER_ID = canonical_order_id("shopify", SHOP, ORDER_EXTERNAL_ID)
TOTAL_MINOR = 17796  # the orders/create sample's total_price "177.96" USD
NOW = datetime(2026, 11, 20, 15, 20, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeGateway:
    """Answers `fetch_payment` from a script (payments or errors), last answer repeating."""

    def __init__(self, name: str, *answers: GatewayPayment | Exception) -> None:
        self.name = name
        self.answers = list(answers)
        self.calls: list[tuple[str, str | None]] = []

    def fetch_payment(self, order: OrderRecord, reference: str | None) -> GatewayPayment:
        self.calls.append((order.order_id, reference))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def shopify_event(topic: str, delivery_id: str, **changes: Any) -> CanonicalEvent:
    """The canonical event of a committed Shopify sample (orders/create, orders/paid...)."""
    payload = {**sample_payload(topic), **changes}
    (event,) = normalise_payload(
        topic, payload, shop=SHOP, delivery_id=delivery_id, occurred_at=None
    )
    return event


def order_placed(delivery_id: str = "wh-create-1") -> CanonicalEvent:
    return shopify_event("orders/create", delivery_id)


def intent(
    *,
    intent_id: str = "pi_3Q0storewire",
    amount: int = TOTAL_MINOR,
    currency: str = "usd",
    status: str = "succeeded",
    metadata: dict[str, str] | None = None,
    last_payment_error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A PaymentIntent object as Stripe returns it (only the fields that matter here)."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency,
        "status": status,
        "metadata": {"order_id": ORDER_ID} if metadata is None else metadata,
        "last_payment_error": last_payment_error,
        "livemode": False,
    }


def stripe_event(
    event_type: str, obj: dict[str, Any], *, evt: str = "evt_1storewire", created: int = 0
) -> dict[str, Any]:
    return {
        "id": evt,
        "object": "event",
        "type": event_type,
        "created": created or int(NOW.timestamp()),
        "livemode": False,
        "data": {"object": obj},
    }


def stripe_report(event_type: str, obj: dict[str, Any], *, evt: str = "evt_1storewire") -> Any:
    """The canonical event the Stripe source makes of a Stripe event (exactly one)."""
    body = json.dumps(stripe_event(event_type, obj, evt=evt)).encode()
    normalised = StripeSource().normalise(Headers({}), body)
    (event,) = normalised.events
    return event


def stripe_payment(amount: int = TOTAL_MINOR, currency: str = "USD") -> GatewayPayment:
    from storewire.domain.payments import stripe_payment as build

    return build("pi_3Q0storewire", "succeeded", amount, currency)


def deps(
    *gateways: FakeGateway | StripeGateway,
    orders: InMemoryOrderStore | None = None,
    publisher: RecordingPublisher | None = None,
    clock: Callable[[], datetime] | None = None,
) -> PaymentDeps:
    return PaymentDeps(
        orders=orders if orders is not None else InMemoryOrderStore(),
        publisher=publisher if publisher is not None else RecordingPublisher(),
        gateways={g.name: g for g in gateways},
        clock=clock or Clock(),
    )


class StripeScript:
    """A MockTransport handler for `GET /v1/payment_intents/{id}`: answers in order."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx.Response(status, json=body)


def stripe_gateway(script: StripeScript, *, sleeps: list[float] | None = None) -> StripeGateway:
    """The real Stripe adapter on the real HTTP layer, over a MockTransport (no sockets)."""
    record = sleeps if sleeps is not None else []
    http = HttpClient(
        httpx.Client(transport=httpx.MockTransport(script)),
        service="stripe",
        policy=RetryPolicy(max_attempts=4, base_delay=0.1),
        describe_error=describe_stripe_error,
        sleep=record.append,
        rand=lambda: 0.5,
    )
    return StripeGateway(http, "sk_test_storewire_dev", base_url="https://api.stripe.test")


STRIPE_500 = (500, {"error": {"type": "api_error", "message": "An unknown error occurred"}})


def published_types(publisher: RecordingPublisher) -> list[str]:
    return [entry["DetailType"] for entry in publisher.published]


def load_app(name: str = "payment_confirmation_app") -> ModuleType:
    """functions/payment_confirmation/app.py, imported once under `name`."""
    if name not in sys.modules:
        path = REPO_ROOT / "functions" / "payment_confirmation" / "app.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
