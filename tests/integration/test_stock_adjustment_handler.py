"""functions/stock_adjustment end to end with its real adapters against moto (in-process).

The handler wires itself from the environment, as on Lambda; each SQS record's body is the
EventBridge event, as the rule delivers it. Events it publishes go through a catch-all rule
into a queue the test drains.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from stock_support import (
    INVENTORY_TABLE,
    ORDERS_TABLE,
    moto_dynamodb,
    order_id,
    payment,
    placed,
    seed,
)
from storewire.adapters.s3_claim_check import S3ClaimCheckStore
from storewire.domain.events import CanonicalEvent

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "functions" / "stock_adjustment" / "app.py"
BUS = "storewire-test"
BUCKET = "storewire-test-claim-checks"


def load_app() -> ModuleType:
    name = "stock_adjustment_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, APP)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class Context:
    aws_request_id = "it-stock"
    function_name = "StockAdjustmentFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stock"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with moto_dynamodb(monkeypatch) as dynamodb:
        sqs = boto3.client("sqs")
        events = boto3.client("events")
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        out = sqs.create_queue(QueueName="published")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="stock-dlq")["QueueUrl"]
        out_arn = sqs.get_queue_attributes(QueueUrl=out, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.create_event_bus(Name=BUS)
        events.put_rule(
            Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": ["storewire.stock"]})
        )
        events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "q", "Arn": out_arn}])
        for name, value in {
            "EVENT_BUS_NAME": BUS,
            "INVENTORY_TABLE_NAME": INVENTORY_TABLE,
            "ORDERS_TABLE_NAME": ORDERS_TABLE,
            "CLAIM_CHECK_BUCKET_NAME": BUCKET,
            "DEAD_LETTER_QUEUE_URL": dlq,
        }.items():
            monkeypatch.setenv(name, value)
        app = load_app()
        app._deps = None
        yield {"app": app, "dynamodb": dynamodb, "sqs": sqs, "out": out, "dlq": dlq}
        app._deps = None


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"rh-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stock",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def bridge(event: CanonicalEvent) -> str:
    """The SQS body EventBridge delivers for `event`."""
    return json.dumps(
        {
            "version": "0",
            "id": "x",
            "detail-type": event.event_type,
            "source": f"storewire.{event.source}",
            "detail": json.loads(event.model_dump_json()),
        }
    )


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            found.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_batch_reserves_once_and_fails_only_the_early_payment(env: dict[str, Any]) -> None:
    # Given 3 units of SKU-A, an order, its duplicate, and the payment of another order
    seed(env["dynamodb"], "SKU-A", 3)
    order = placed("1001", [("L1", "SKU-A", 2)])

    # When one batch brings them
    answer = env["app"].lambda_handler(
        sqs_event(bridge(order), bridge(order), bridge(payment("2002"))), Context()
    )

    # Then only the early payment is reported failed (SQS redelivers it), the order is
    # reserved once, and its events are on the bus once each (by id)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    published = [json.loads(m["Body"]) for m in drain(env["sqs"], env["out"])]
    kinds = {(p["detail-type"], p["detail"]["event_id"]) for p in published}
    assert sorted(k for k, _ in kinds) == ["StockLevelChanged", "StockReserved"]
    row = env["dynamodb"].get_item(
        TableName=INVENTORY_TABLE, Key={"pk": {"S": "STOCK#SKU-A"}, "sk": {"S": "LOC#default"}}
    )["Item"]
    assert (row["on_hand"]["N"], row["available"]["N"]) == ("3", "1")
    record = env["dynamodb"].get_item(
        TableName=ORDERS_TABLE, Key={"pk": {"S": f"ORDER#{order_id('1001')}"}}
    )["Item"]
    assert record["stock_status"]["S"] == "reserved"


def test_a_claim_checked_order_is_loaded_from_s3(env: dict[str, Any]) -> None:
    seed(env["dynamodb"], "SKU-A", 3)
    order = placed("1001", [("L1", "SKU-A", 1)])
    ref = S3ClaimCheckStore(boto3.client("s3"), BUCKET).put(
        f"claim-checks/{order.event_id}.json", order.data_json()
    )

    answer = env["app"].lambda_handler(sqs_event(bridge(order.with_claim_check(ref))), Context())

    assert answer == {"batchItemFailures": []}
    published = [json.loads(m["Body"])["detail-type"] for m in drain(env["sqs"], env["out"])]
    assert "StockReserved" in published


def test_a_malformed_record_goes_to_the_dlq_at_once_with_its_reason(env: dict[str, Any]) -> None:
    answer = env["app"].lambda_handler(sqs_event('{"detail-type": "OrderPlaced"}'), Context())

    assert answer == {"batchItemFailures": []}
    (dead,) = env["sqs"].receive_message(
        QueueUrl=env["dlq"], MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    assert dead["MessageAttributes"]["storewire-error-type"]["StringValue"] == "MalformedPayload"
    assert dead["MessageAttributes"]["storewire-consumer"]["StringValue"] == "stock_adjustment"
