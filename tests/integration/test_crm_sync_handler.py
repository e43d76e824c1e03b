"""The crm_sync handler with its real wiring: moto (in-process) + the HubSpot fake on loopback.

The handler builds its own adapters from the environment (`_wire`), as on Lambda: the CRM and
orders tables, the DLQ and the access-token secret are moto's; HubSpot is the local fake.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from crm_fakes import (
    JANE,
    Context,
    customer_event,
    load_app,
    order_event,
    order_id,
    refund_event,
    sqs_records,
)
from stock_support import ORDERS_TABLE, aws_env, create_orders_table
from storewire.adapters.dynamodb_crm import DynamoDBCrmStore
from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
from storewire_local.fakes.hubspot import DEFAULT_ACCESS_TOKEN, HubSpotFake

pytestmark = pytest.mark.integration

CRM_TABLE = "storewire-test-CrmTable"
ANN = "ann@example.com"


@pytest.fixture(scope="module")
def server() -> Iterator[HubSpotFake]:
    with HubSpotFake() as fake:
        yield fake  # type: ignore[misc]


class Stack:
    def __init__(self, fake: HubSpotFake) -> None:
        self.fake = fake
        self.sqs = boto3.client("sqs")
        self.dynamodb = boto3.client("dynamodb")
        self.dynamodb.create_table(
            TableName=CRM_TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        create_orders_table(self.dynamodb)
        self.dlq = self.sqs.create_queue(QueueName="crm-dlq")["QueueUrl"]
        self.secret = boto3.client("secretsmanager").create_secret(
            Name="hubspot-token", SecretString=json.dumps({"current": DEFAULT_ACCESS_TOKEN})
        )["ARN"]

    def env(self) -> dict[str, str]:
        return {
            "CRM_TABLE_NAME": CRM_TABLE,
            "ORDERS_TABLE_NAME": ORDERS_TABLE,
            "DEAD_LETTER_QUEUE_URL": self.dlq,
            "HUBSPOT_ACCESS_TOKEN_SECRET_ID": self.secret,
            "HUBSPOT_API_BASE_URL": self.fake.url,
            "HTTP_READ_TIMEOUT": "2",
        }

    def dead_letters(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            for message in batch:
                found.append(message)
                self.sqs.delete_message(QueueUrl=self.dlq, ReceiptHandle=message["ReceiptHandle"])
        return found


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, server: HubSpotFake) -> Iterator[Stack]:
    server.reset()
    aws_env(monkeypatch)
    with mock_aws():
        built = Stack(server)
        for key, value in built.env().items():
            monkeypatch.setenv(key, value)
        yield built


@pytest.fixture
def app() -> Iterator[ModuleType]:
    module = load_app()
    module._deps = None
    yield module
    module._deps = None


def upsert_calls(fake: HubSpotFake) -> int:
    return sum(1 for r in fake.requests if r["path"] == "/crm/v3/objects/contacts/batch/upsert")


def test_given_a_paid_order_history_delivered_three_times_then_one_contact_with_exact_totals(
    stack: Stack, app: ModuleType
) -> None:
    history = (customer_event(), order_event(), order_event("orders/updated"), refund_event())

    responses = [
        app.lambda_handler(sqs_records(*history), Context()),
        app.lambda_handler(sqs_records(*history), Context()),
        app.lambda_handler(sqs_records(*reversed(history)), Context()),
    ]

    assert responses[0] == responses[1] == {"batchItemFailures": []}
    # reversed: the refund comes first in its batch, but its order is already known
    assert responses[2] == {"batchItemFailures": []}
    assert upsert_calls(stack.fake) == 3
    (contact,) = stack.fake.contacts()
    props = contact["properties"]
    assert props["email"] == JANE
    assert props["firstname"] == "Jane"
    assert props["storewire_order_count"] == "1"
    assert props["storewire_total_spent"] == "126.25"
    assert props["storewire_last_order_status"] == "partially_refunded"
    deal = stack.fake.deal(order_id())
    assert deal is not None
    assert stack.fake.associated("deals", deal["id"], "contacts") == [contact["id"]]
    assert len(stack.fake.state()["deals"]) == 1

    record = DynamoDBOrderStore(stack.dynamodb, ORDERS_TABLE).get(order_id())
    assert record is not None
    assert record.crm.status == "synced"
    assert record.crm.details["contact_id"] == contact["id"]
    assert record.crm.details["deal_id"] == deal["id"]
    aggregate = DynamoDBCrmStore(stack.dynamodb, CRM_TABLE).get_contact(JANE)
    assert aggregate is not None
    assert aggregate.contact_id == contact["id"]
    assert aggregate.synced_version == aggregate.version


def test_given_hubspot_429_then_retried_within_the_lambda_and_one_contact(
    stack: Stack, app: ModuleType
) -> None:
    stack.fake.add_fault(
        {"mode": "429", "retry_after": 1, "count": 1, "path": "/crm/v3/objects/contacts"}
    )

    response = app.lambda_handler(sqs_records(customer_event(), order_event()), Context())

    assert response == {"batchItemFailures": []}
    assert upsert_calls(stack.fake) == 2
    assert len(stack.fake.contacts()) == 1


def test_given_a_429_longer_than_the_time_left_then_the_batch_is_left_to_sqs(
    stack: Stack, app: ModuleType
) -> None:
    stack.fake.add_fault(
        {"mode": "429", "retry_after": 8, "count": 1, "path": "/crm/v3/objects/contacts"}
    )

    failed = app.lambda_handler(sqs_records(customer_event(), order_event()), Context(6000))
    redelivered = app.lambda_handler(sqs_records(customer_event(), order_event()), Context())

    assert [f["itemIdentifier"] for f in failed["batchItemFailures"]] == ["msg-0", "msg-1"]
    assert redelivered == {"batchItemFailures": []}
    (contact,) = stack.fake.contacts()
    assert contact["properties"]["storewire_total_spent"] == "177.96"
    assert stack.dead_letters() == []


def test_given_a_malformed_contact_email_then_that_record_alone_is_dead_lettered(
    stack: Stack, app: ModuleType
) -> None:
    response = app.lambda_handler(
        sqs_records(
            order_event(delivery_id="a", order=1, email=ANN),
            order_event(delivery_id="b", order=2, email="jane@example"),
            customer_event(),
        ),
        Context(),
    )

    assert response == {"batchItemFailures": []}
    assert sorted(c["properties"]["email"] for c in stack.fake.contacts()) == [ANN, JANE]
    (dead,) = stack.dead_letters()
    attributes = dead["MessageAttributes"]
    assert attributes["storewire-error-type"]["StringValue"] == "InvalidContact"
    assert "INVALID_EMAIL" in attributes["storewire-reason"]["StringValue"]
    assert attributes["storewire-message-id"]["StringValue"] == "msg-1"
    assert json.loads(dead["Body"])["detail"]["order_id"] == order_id(2)
    record = DynamoDBOrderStore(stack.dynamodb, ORDERS_TABLE).get(order_id(2))
    assert record is not None
    assert record.crm.status == "failed"
