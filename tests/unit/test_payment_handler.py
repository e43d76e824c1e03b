"""functions/payment_confirmation/app.py on fakes: partial batch failures and the DLQ path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from payment_fakes import (
    STRIPE_500,
    FakeGateway,
    StripeScript,
    deps,
    intent,
    load_app,
    order_placed,
    published_types,
    stripe_gateway,
    stripe_payment,
    stripe_report,
)
from storewire.domain.events import CanonicalEvent, to_bus_entry
from storewire.errors import RetryableError
from storewire.http import Deadline


class FakeDeadLetters:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, str]] = []
        self.fail = fail

    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        if self.fail:
            raise RetryableError("SQS is unavailable")
        self.sent.append(
            {"body": body, "error_type": error_type, "reason": reason, "message_id": message_id}
        )


class Context:
    function_name = "payment-confirmation"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:payment-confirmation"
    aws_request_id = "req-1"

    def __init__(self, remaining_ms: int = 30000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def app() -> Iterator[ModuleType]:
    module = load_app()
    module._deps = None
    yield module
    module._deps = None


def bus_body(event: CanonicalEvent) -> str:
    entry = to_bus_entry(event)
    return json.dumps(
        {
            "version": "0",
            "id": "5f2a8c1e-0000-0000-0000-000000000000",
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": "123456789012",
            "time": "2026-11-20T15:20:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": json.loads(entry["Detail"]),
        }
    )


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:payment-confirmation",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def handler_deps(app: ModuleType, *gateways: Any, dead: FakeDeadLetters | None = None) -> Any:
    return app.HandlerDeps(
        payments=deps(*gateways), dead_letters=dead or FakeDeadLetters(), deadline=Deadline()
    )


def report() -> CanonicalEvent:
    return stripe_report("payment_intent.succeeded", intent())  # type: ignore[no-any-return]


def test_given_an_order_and_its_payment_when_batched_then_no_failures_and_confirmed(
    app: ModuleType,
) -> None:
    wired = handler_deps(app, FakeGateway("stripe", stripe_payment()))

    answer = app.lambda_handler(
        sqs_event(bus_body(order_placed()), bus_body(report())), Context(), deps=wired
    )

    assert answer == {"batchItemFailures": []}
    assert published_types(wired.payments.publisher) == ["PaymentConfirmed"]


def test_given_a_payment_before_its_order_in_one_batch_then_only_the_payment_fails(
    app: ModuleType,
) -> None:
    wired = handler_deps(app, FakeGateway("stripe", stripe_payment()))

    answer = app.lambda_handler(
        sqs_event(bus_body(report()), bus_body(order_placed())), Context(), deps=wired
    )

    assert answer == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert wired.dead_letters.sent == []

    # SQS redelivers the failed record after the visibility timeout.
    again = app.lambda_handler(sqs_event(bus_body(report())), Context(), deps=wired)
    assert again == {"batchItemFailures": []}
    assert published_types(wired.payments.publisher) == ["PaymentConfirmed"]


def test_given_an_unknown_payment_intent_when_handled_then_dead_lettered_at_once(
    app: ModuleType,
) -> None:
    missing = (404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}})
    script = StripeScript(missing)
    wired = handler_deps(app, stripe_gateway(script))
    app.lambda_handler(sqs_event(bus_body(order_placed())), Context(), deps=wired)
    body = bus_body(report())

    answer = app.lambda_handler(sqs_event(body), Context(), deps=wired)

    assert answer == {"batchItemFailures": []}  # not retried: it is in the DLQ already
    (dead,) = wired.dead_letters.sent
    assert dead["error_type"] == "PermanentUpstreamError"
    assert "404" in dead["reason"]
    assert dead["body"] == body
    assert dead["message_id"] == "msg-0"
    assert len(script.requests) == 1


def test_given_a_bad_api_key_when_handled_then_dead_lettered_with_the_reason(
    app: ModuleType,
) -> None:
    bad_key = (401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
    wired = handler_deps(app, stripe_gateway(StripeScript(bad_key)))
    app.lambda_handler(sqs_event(bus_body(order_placed())), Context(), deps=wired)

    app.lambda_handler(sqs_event(bus_body(report())), Context(), deps=wired)

    (dead,) = wired.dead_letters.sent
    assert dead["error_type"] == "PermanentUpstreamError"
    assert "Invalid API Key" in dead["reason"]


def test_given_stripe_5xx_past_the_retries_when_handled_then_the_record_fails_for_sqs(
    app: ModuleType,
) -> None:
    wired = handler_deps(app, stripe_gateway(StripeScript(STRIPE_500)))
    app.lambda_handler(sqs_event(bus_body(order_placed())), Context(), deps=wired)

    answer = app.lambda_handler(sqs_event(bus_body(report())), Context(), deps=wired)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert wired.dead_letters.sent == []


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"detail-type": "OrderPlaced", "detail": {"event_type": "Nope"}})],
)
def test_given_a_malformed_record_when_handled_then_dead_lettered(
    app: ModuleType, body: str
) -> None:
    wired = handler_deps(app)

    answer = app.lambda_handler(sqs_event(body), Context(), deps=wired)

    assert answer == {"batchItemFailures": []}
    assert wired.dead_letters.sent[0]["error_type"] == "MalformedPayload"


def test_given_the_dlq_is_unavailable_when_dead_lettering_then_the_record_fails_instead(
    app: ModuleType,
) -> None:
    wired = handler_deps(app, dead=FakeDeadLetters(fail=True))

    answer = app.lambda_handler(sqs_event("not json"), Context(), deps=wired)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}


def test_given_a_context_when_invoked_then_the_http_deadline_is_its_remaining_time(
    app: ModuleType,
) -> None:
    wired = handler_deps(app)

    app.lambda_handler(sqs_event(bus_body(order_placed())), Context(remaining_ms=20000), wired)

    remaining = wired.deadline.remaining()
    assert remaining is not None
    assert 16.0 < remaining <= 17.0


def test_given_the_environment_when_settings_are_read_then_defaults_apply(
    app: ModuleType,
) -> None:
    settings = app.PaymentSettings.from_env(
        {
            "EVENT_BUS_NAME": "storewire-local",
            "ORDERS_TABLE_NAME": "orders",
            "DEAD_LETTER_QUEUE_URL": "http://sqs/dlq",
            "STRIPE_API_KEY_SECRET_ID": "arn:stripe",
            "SHOPIFY_ADMIN_TOKEN_SECRET_ID": "arn:shopify",
            "SHOPIFY_ADMIN_BASE_URL": "",
        }
    )

    assert settings.stripe_api_base_url == "https://api.stripe.com"
    assert settings.shopify_admin_base_url == ""
    assert settings.http_max_attempts == 4


def test_given_a_missing_variable_when_settings_are_read_then_configuration_error(
    app: ModuleType,
) -> None:
    from storewire.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="ORDERS_TABLE_NAME"):
        app.PaymentSettings.from_env({"EVENT_BUS_NAME": "x"})
