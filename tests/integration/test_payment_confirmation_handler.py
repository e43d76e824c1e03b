"""The payment_confirmation handler with its real wiring: moto (in-process) + the HTTP fakes.

The handler builds its own adapters from the environment (`_wire`), as on Lambda: the orders
table, the bus, the DLQ and the secrets are moto's; Stripe and the Shopify Admin API are the
local fakes on loopback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from payment_fakes import ORDER_ID, intent, load_app, order_placed, shopify_event, stripe_report
from stock_support import ORDERS_TABLE, aws_env, create_orders_table
from storewire.adapters.dynamodb_orders import record_from_item
from storewire.domain.events import CanonicalEvent, to_bus_entry
from storewire_local.fakes.shopify_admin import DEFAULT_ADMIN_TOKEN, ShopifyAdminFake
from storewire_local.fakes.stripe import DEFAULT_API_KEY, StripeFake

pytestmark = pytest.mark.integration

BUS = "storewire-test"


class Context:
    function_name = "payment-confirmation"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:payment-confirmation"
    aws_request_id = "it-request"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[StripeFake, ShopifyAdminFake]]:
    with StripeFake() as stripe, ShopifyAdminFake() as shopify:
        yield stripe, shopify  # type: ignore[misc]


class Stack:
    def __init__(self, stripe: StripeFake, shopify: ShopifyAdminFake) -> None:
        self.stripe_fake = stripe
        self.shopify_fake = shopify
        self.sqs = boto3.client("sqs")
        self.events = boto3.client("events")
        self.dynamodb = boto3.client("dynamodb")
        create_orders_table(self.dynamodb)
        self.events.create_event_bus(Name=BUS)
        self.bus_queue = self.sqs.create_queue(QueueName="bus-capture")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.bus_queue, AttributeNames=["QueueArn"])
        self.events.put_rule(
            Name="everything",
            EventBusName=BUS,
            EventPattern=json.dumps({"source": [{"prefix": ""}]}),
        )
        self.events.put_targets(
            Rule="everything",
            EventBusName=BUS,
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.dlq = self.sqs.create_queue(QueueName="payment-dlq")["QueueUrl"]
        secrets = boto3.client("secretsmanager")
        self.stripe_secret = secrets.create_secret(
            Name="stripe-api-key", SecretString=json.dumps({"current": DEFAULT_API_KEY})
        )["ARN"]
        self.shopify_secret = secrets.create_secret(
            Name="shopify-admin", SecretString=json.dumps({"current": DEFAULT_ADMIN_TOKEN})
        )["ARN"]

    def env(self) -> dict[str, str]:
        return {
            "EVENT_BUS_NAME": BUS,
            "ORDERS_TABLE_NAME": ORDERS_TABLE,
            "DEAD_LETTER_QUEUE_URL": self.dlq,
            "STRIPE_API_KEY_SECRET_ID": self.stripe_secret,
            "STRIPE_API_BASE_URL": self.stripe_fake.url,
            "SHOPIFY_ADMIN_TOKEN_SECRET_ID": self.shopify_secret,
            "SHOPIFY_ADMIN_BASE_URL": self.shopify_fake.url,
        }

    def drain(self, url: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            for message in batch:
                found.append(message)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def published(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.drain(self.bus_queue)]


@pytest.fixture
def stack(
    monkeypatch: pytest.MonkeyPatch, fakes: tuple[StripeFake, ShopifyAdminFake]
) -> Iterator[Stack]:
    stripe, shopify = fakes
    stripe.reset()
    shopify.reset()
    aws_env(monkeypatch)
    with mock_aws():
        built = Stack(stripe, shopify)
        for key, value in built.env().items():
            monkeypatch.setenv(key, value)
        yield built


@pytest.fixture
def app() -> Iterator[ModuleType]:
    module = load_app()
    module._deps = None
    yield module
    module._deps = None


def sqs_batch(*events: CanonicalEvent) -> dict[str, Any]:
    records = []
    for i, event in enumerate(events):
        entry = to_bus_entry(event)
        body = {
            "version": "0",
            "id": f"bus-{i}",
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "detail": json.loads(entry["Detail"]),
        }
        records.append(
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:payment-confirmation",
            }
        )
    return {"Records": records}


def create_intent(stack: Stack, amount: int = 17796, fault: dict[str, Any] | None = None) -> str:
    answer = httpx.post(
        f"{stack.stripe_fake.url}/v1/payment_intents",
        headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
        data={
            "amount": str(amount),
            "currency": "usd",
            "metadata[order_id]": ORDER_ID,
            "payment_method": "pm_card_visa",
            "confirm": "true",
        },
    )
    answer.raise_for_status()
    if fault:
        httpx.post(f"{stack.stripe_fake.url}/_fake/faults", json=fault).raise_for_status()
    return str(answer.json()["id"])


def record_status(stack: Stack) -> str:
    item = stack.dynamodb.get_item(
        TableName=ORDERS_TABLE, Key={"pk": {"S": f"ORDER#{ORDER_ID}"}}, ConsistentRead=True
    )["Item"]
    return str(record_from_item(item).payment.status)


def test_given_an_order_and_a_stripe_payment_when_handled_then_confirmed_on_the_bus(
    stack: Stack, app: ModuleType
) -> None:
    pi = create_intent(stack)
    report = stripe_report("payment_intent.succeeded", intent(intent_id=pi))

    answer = app.lambda_handler(sqs_batch(order_placed(), report), Context())

    assert answer == {"batchItemFailures": []}
    published = stack.published()
    assert [e["detail-type"] for e in published] == ["PaymentConfirmed"]
    assert published[0]["source"] == "storewire.payments"
    assert published[0]["detail"]["data"]["reference"] == pi
    assert record_status(stack) == "confirmed"


def test_given_stripe_500_twice_then_200_when_handled_then_confirmed_once(
    stack: Stack, app: ModuleType
) -> None:
    pi = create_intent(stack, fault={"mode": "status", "status": 500, "count": 2})
    report = stripe_report("payment_intent.succeeded", intent(intent_id=pi))
    app.lambda_handler(sqs_batch(order_placed()), Context())

    answer = app.lambda_handler(sqs_batch(report, report), Context())

    assert answer == {"batchItemFailures": []}
    assert [e["detail-type"] for e in stack.published()] == ["PaymentConfirmed"]
    gets = [r for r in stack.stripe_fake.requests if r["method"] == "GET"]
    assert len(gets) == 4  # 500, 500, 200 for the first record; 200 for its duplicate


def test_given_the_wrong_amount_at_stripe_when_handled_then_mismatch(
    stack: Stack, app: ModuleType
) -> None:
    pi = create_intent(stack, amount=100)
    report = stripe_report("payment_intent.succeeded", intent(intent_id=pi))

    app.lambda_handler(sqs_batch(order_placed(), report), Context())

    assert [e["detail-type"] for e in stack.published()] == ["PaymentMismatch"]
    assert record_status(stack) == "mismatch"


def test_given_an_unknown_intent_when_handled_then_dead_lettered_with_the_reason(
    stack: Stack, app: ModuleType
) -> None:
    report = stripe_report("payment_intent.succeeded", intent(intent_id="pi_unknown"))

    answer = app.lambda_handler(sqs_batch(order_placed(), report), Context())

    assert answer == {"batchItemFailures": []}
    (dead,) = stack.drain(stack.dlq)
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["storewire-error-type"] == "PermanentUpstreamError"
    assert "No such payment_intent" in attributes["storewire-reason"]
    assert attributes["storewire-message-id"] == "msg-1"
    assert json.loads(dead["Body"])["detail"]["event_id"] == report.event_id
    assert record_status(stack) == "pending"


def test_given_shopify_orders_paid_when_handled_then_verified_with_the_admin_api(
    stack: Stack, app: ModuleType
) -> None:
    httpx.post(
        f"{stack.shopify_fake.url}/_fake/orders",
        json={
            "id": 5745289347382,
            "currency": "USD",
            "total_price": "177.96",
            "financial_status": "paid",
        },
    ).raise_for_status()

    app.lambda_handler(
        sqs_batch(order_placed(), shopify_event("orders/paid", "wh-paid-1")), Context()
    )

    assert [e["detail-type"] for e in stack.published()] == ["PaymentConfirmed"]
    assert record_status(stack) == "confirmed"
