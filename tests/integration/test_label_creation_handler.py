"""functions/label_creation with its real wiring: moto (in-process) + the EasyPost fake.

The handler builds its adapters from the environment (`_wire`), as on Lambda: the label and
orders tables, the bus, the DLQ and the API key secret are moto's; EasyPost is the local fake
on loopback. Each SQS record's body is the EventBridge event, as the rule delivers it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from fakes_labels import (
    ORDER_ID,
    SHIP_FROM,
    SHIP_TO,
    create_labels_table,
    load_app,
    order_data,
    order_placed,
)
from fakes_labels import stock_committed as committed
from stock_support import ORDERS_TABLE, aws_env, create_orders_table
from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
from storewire.domain.events import CanonicalEvent, to_bus_entry
from storewire.domain.shipments import label_event_id
from storewire_local.fakes.easypost import DEFAULT_API_KEY, EasyPostFake

pytestmark = pytest.mark.integration

BUS = "storewire-test"
LABELS_TABLE = "storewire-test-LabelsTable"


class Context:
    function_name = "label-creation"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:label-creation"
    aws_request_id = "it-labels"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture(scope="module")
def fake() -> Iterator[EasyPostFake]:
    with EasyPostFake() as server:
        yield server  # type: ignore[misc]


class Stack:
    def __init__(self, fake: EasyPostFake) -> None:
        self.fake = fake
        self.sqs = boto3.client("sqs")
        self.dynamodb = boto3.client("dynamodb")
        create_orders_table(self.dynamodb)
        create_labels_table(self.dynamodb, LABELS_TABLE)
        events = boto3.client("events")
        events.create_event_bus(Name=BUS)
        self.bus_queue = self.sqs.create_queue(QueueName="bus-capture")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.bus_queue, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="everything",
            EventBusName=BUS,
            EventPattern=json.dumps({"source": [{"prefix": ""}]}),
        )
        events.put_targets(
            Rule="everything",
            EventBusName=BUS,
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.dlq = self.sqs.create_queue(QueueName="label-dlq")["QueueUrl"]
        self.secret = boto3.client("secretsmanager").create_secret(
            Name="easypost-api-key", SecretString=json.dumps({"current": DEFAULT_API_KEY})
        )["ARN"]
        self.orders = DynamoDBOrderStore(self.dynamodb, ORDERS_TABLE)

    def env(self) -> dict[str, str]:
        return {
            "EVENT_BUS_NAME": BUS,
            "LABELS_TABLE_NAME": LABELS_TABLE,
            "ORDERS_TABLE_NAME": ORDERS_TABLE,
            "DEAD_LETTER_QUEUE_URL": self.dlq,
            "EASYPOST_API_KEY_SECRET_ID": self.secret,
            "EASYPOST_API_BASE_URL": self.fake.url,
            "SHIP_FROM_ADDRESS": SHIP_FROM.model_dump_json(exclude_none=True),
            "LABEL_RATE_POLICY": json.dumps({"mode": "cheapest", "carriers": ["USPS", "UPS"]}),
            "HTTP_READ_TIMEOUT": "2",
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

    def published(self, detail_type: str = "LabelCreated") -> list[dict[str, Any]]:
        bodies = [json.loads(m["Body"]) for m in self.drain(self.bus_queue)]
        return [b for b in bodies if b["detail-type"] == detail_type]

    def purchases(self) -> list[dict[str, Any]]:
        state: dict[str, Any] = httpx.get(f"{self.fake.url}/_fake/state", timeout=5).json()
        return list(state["purchases"])

    def fault(self, spec: dict[str, Any]) -> None:
        httpx.post(f"{self.fake.url}/_fake/faults", json=spec, timeout=5).raise_for_status()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, fake: EasyPostFake) -> Iterator[Stack]:
    fake.reset()
    aws_env(monkeypatch)
    with mock_aws():
        built = Stack(fake)
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
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:label-creation",
            }
        )
    return {"Records": records}


def placed_order(stack: Stack, **kwargs: Any) -> CanonicalEvent:
    event = order_placed(order_data(**kwargs))
    stack.orders.record_placed(event)  # what stock adjustment did before committing
    return event


def test_given_a_committed_order_when_handled_then_one_label_on_the_bus_and_the_record(
    stack: Stack, app: ModuleType
) -> None:
    placed = placed_order(stack)

    answer = app.lambda_handler(sqs_batch(placed, committed(), committed()), Context())

    assert answer == {"batchItemFailures": []}
    (purchase,) = stack.purchases()
    assert purchase["reference"] == ORDER_ID
    (label,) = stack.published()
    assert label["source"] == "storewire.labels"
    assert label["detail"]["event_id"] == label_event_id(ORDER_ID)
    assert label["detail"]["data"]["carrier"] == "USPS"
    record = stack.orders.get(ORDER_ID)
    assert record is not None
    assert record.shipment.status == "label_created"
    assert set(record.shipment.details) >= {
        "status",
        "carrier",
        "service",
        "tracking_number",
        "label_url",
        "cost",
    }
    assert record.shipment.details["cost"]["currency"] == "USD"


def test_given_carrier_500s_when_handled_then_retried_and_one_label(
    stack: Stack, app: ModuleType
) -> None:
    app.lambda_handler(sqs_batch(placed_order(stack)), Context())
    stack.fault({"mode": "status", "status": 500, "count": 2})

    answer = app.lambda_handler(sqs_batch(committed()), Context())

    assert answer == {"batchItemFailures": []}
    assert len(stack.purchases()) == 1
    assert len(stack.published()) == 1


def test_given_a_crash_right_after_the_buy_when_redelivered_then_still_one_label(
    stack: Stack, app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the buy succeeds at EasyPost but its answer never comes back (no resend)
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    app.lambda_handler(sqs_batch(placed_order(stack)), Context())
    stack.fault({"mode": "drop", "path": "/v2/shipments/shp_"})

    first = app.lambda_handler(sqs_batch(committed()), Context())

    assert first == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert len(stack.purchases()) == 1
    assert stack.published() == []

    # When SQS redelivers it after the visibility timeout (past the label lease)
    later = dataclasses.replace(
        app._deps.labels, clock=lambda: datetime.now(UTC) + timedelta(minutes=10)
    )
    app._deps = dataclasses.replace(app._deps, labels=later)
    second = app.lambda_handler(sqs_batch(committed()), Context())

    # Then the bought shipment is found and recorded: one label, one LabelCreated
    assert second == {"batchItemFailures": []}
    assert len(stack.purchases()) == 1
    (label,) = stack.published()
    assert label["detail"]["data"]["shipment_id"] == stack.purchases()[0]["shipment_id"]
    record = stack.orders.get(ORDER_ID)
    assert record is not None
    assert record.shipment.status == "label_created"


def test_given_an_address_easypost_refuses_when_handled_then_dead_lettered_not_retried(
    stack: Stack, app: ModuleType
) -> None:
    bad = SHIP_TO.model_copy(update={"address1": "1 UNDELIVERABLE Rd"})
    app.lambda_handler(sqs_batch(placed_order(stack, ship_to=bad)), Context())

    answer = app.lambda_handler(sqs_batch(committed()), Context())

    assert answer == {"batchItemFailures": []}
    (dead,) = stack.drain(stack.dlq)
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["storewire-error-type"] == "PermanentUpstreamError"
    assert "Address not found" in attributes["storewire-reason"]
    assert stack.purchases() == []
    record = stack.orders.get(ORDER_ID)
    assert record is not None
    assert record.shipment.status == "failed"
    assert "Address not found" in record.shipment.details["reason"]
