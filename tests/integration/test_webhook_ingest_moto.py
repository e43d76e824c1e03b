"""The webhook_ingest handler end to end, with its real adapters, against moto (in-process)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from storewire.adapters.s3_claim_check import S3ClaimCheckStore
from storewire.domain.events import OrderData, parse_event

pytestmark = pytest.mark.integration

DEV_SECRET = "shpss_storewire_dev_secret"
BUS = "storewire-test"
TABLE = "storewire-test-WebhookDedupeTable"
BUCKET = "storewire-test-claim-checks"
RULE = "storewire-test-everything"


class LambdaContext:
    aws_request_id = "it-request"


@dataclass
class Stack:
    secret_arn: str
    queue_url: str
    queue_arn: str

    def __post_init__(self) -> None:
        self.events = boto3.client("events")
        self.sqs = boto3.client("sqs")
        self.dynamodb = boto3.client("dynamodb")
        self.s3 = boto3.client("s3")
        self.secrets = boto3.client("secretsmanager")

    def received(self) -> list[dict[str, Any]]:
        """Every bus event the queue got (drained)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def dedupe_items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]

    def create_bus(self) -> None:
        self.events.create_event_bus(Name=BUS)
        self.events.put_rule(
            Name=RULE,
            EventBusName=BUS,
            EventPattern=json.dumps({"source": [{"prefix": "storewire."}]}),
        )
        self.events.put_targets(
            Rule=RULE, EventBusName=BUS, Targets=[{"Id": "queue", "Arn": self.queue_arn}]
        )

    def delete_bus(self) -> None:
        self.events.remove_targets(Rule=RULE, EventBusName=BUS, Ids=["queue"])
        self.events.delete_rule(Name=RULE, EventBusName=BUS)
        self.events.delete_event_bus(Name=BUS)

    def rotate(self, current: str, previous: str) -> None:
        self.secrets.put_secret_value(
            SecretId=self.secret_arn,
            SecretString=json.dumps({"current": current, "previous": previous}),
        )


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=TABLE,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        secret_arn = boto3.client("secretsmanager").create_secret(
            Name="storewire-test-shopify-webhook",
            SecretString=json.dumps({"current": DEV_SECRET, "previous": ""}),
        )["ARN"]
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="storewire-test-observer")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        stack = Stack(secret_arn=secret_arn, queue_url=queue_url, queue_arn=queue_arn)
        stack.create_bus()
        monkeypatch.setenv("EVENT_BUS_NAME", BUS)
        monkeypatch.setenv("DEDUPE_TABLE_NAME", TABLE)
        monkeypatch.setenv("CLAIM_CHECK_BUCKET_NAME", BUCKET)
        monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET_ID", secret_arn)
        monkeypatch.setenv("DEDUPE_TTL_SECONDS", "259200")
        monkeypatch.setenv("MAX_BODY_BYTES", "4194304")
        yield stack


@pytest.fixture
def deliver(webhook_app: ModuleType, events_generator: ModuleType) -> Any:
    """Send a Shopify topic's sample payload, signed now, through the real handler."""

    def send(
        topic: str = "orders/create",
        *,
        webhook_id: str = "it-delivery-1",
        secret: str = DEV_SECRET,
        body: bytes | None = None,
        tamper: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        payload = body or events_generator.compact(events_generator.payload_path(topic))
        event = events_generator.apigw_v2_event(
            topic, payload, webhook_id=webhook_id, secret=secret, triggered_at=datetime.now(UTC)
        )
        if tamper:
            event["body"] = event["body"].replace("SW-TEE-BLK-M", "SW-TEE-BLK-S")
        response = webhook_app.lambda_handler(event, LambdaContext())
        return response["statusCode"], json.loads(response["body"])

    return send


def test_given_a_valid_order_when_delivered_then_200_and_the_event_reaches_the_queue(
    stack: Stack, deliver: Any
) -> None:
    status, body = deliver()

    assert status == 200
    assert body["status"] == "accepted"
    (message,) = stack.received()
    assert message["source"] == "storewire.shopify"
    assert message["detail-type"] == "OrderPlaced"
    event = parse_event(message["detail"])
    assert [event.event_id] == body["events"]
    assert event.order_id == "shopify:storewire-demo.myshopify.com:5745289347382"
    (item,) = stack.dedupe_items()
    assert item["pk"]["S"] == "webhook#shopify#it-delivery-1"
    assert item["status"]["S"] == "done"
    assert [i["S"] for i in item["event_ids"]["L"]] == body["events"]
    assert abs(int(item["expires_at"]["N"]) - (time.time() + 259200)) < 60
    ttl = stack.dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"


def test_given_the_same_delivery_twice_when_delivered_then_exactly_one_event(
    stack: Stack, deliver: Any
) -> None:
    first = deliver("refunds/create")
    second = deliver("refunds/create")

    assert first[0] == second[0] == 200
    assert second[1] == {"status": "duplicate"}
    (message,) = stack.received()
    assert message["detail-type"] == "RefundIssued"


def test_given_a_tampered_body_when_delivered_then_401_and_nothing_is_stored(
    stack: Stack, deliver: Any
) -> None:
    status, body = deliver(tamper=True)

    assert status == 401
    assert body["error"]["type"] == "SignatureInvalid"
    assert stack.dedupe_items() == []
    assert stack.received() == []


def test_given_a_secret_rotation_when_delivered_then_both_secrets_verify(
    stack: Stack, deliver: Any, webhook_app: ModuleType
) -> None:
    assert deliver(webhook_id="before-rotation")[0] == 200  # warms the secret cache
    stack.rotate(current="shpss_rotated_secret", previous=DEV_SECRET)

    signed_new = deliver("customers/update", webhook_id="new-secret", secret="shpss_rotated_secret")
    webhook_app._deps = None  # a cold start reads the rotated secret from the start
    signed_old = deliver("customers/create", webhook_id="old-secret", secret=DEV_SECRET)
    wrong = deliver("customers/create", webhook_id="wrong-secret", secret="shpss_someone_else")

    assert signed_new[0] == 200
    assert signed_old[0] == 200
    assert wrong[0] == 401
    assert len(stack.received()) == 3


def test_given_the_bus_fails_when_delivered_then_503_released_and_a_retry_emits_once(
    stack: Stack, deliver: Any
) -> None:
    stack.delete_bus()

    status, body = deliver(webhook_id="bus-down")

    assert status == 503
    assert body["error"]["type"] == "PublishFailed"
    assert stack.dedupe_items() == []  # released: the sender's retry proceeds at once

    stack.create_bus()
    retry_status, retry_body = deliver(webhook_id="bus-down")
    again = deliver(webhook_id="bus-down")

    assert retry_status == 200
    assert again[1] == {"status": "duplicate"}
    (message,) = stack.received()
    assert message["detail"]["event_id"] == retry_body["events"][0]


def test_given_a_delivery_in_progress_when_redelivered_then_409(stack: Stack, deliver: Any) -> None:
    now = int(time.time())
    stack.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "webhook#shopify#busy"},
            "status": {"S": "pending"},
            "claim_token": {"S": "someone-else"},
            "lease_until": {"N": str(now + 30)},
            "expires_at": {"N": str(now + 259200)},
        },
    )

    status, body = deliver(webhook_id="busy")

    assert status == 409
    assert body["error"]["type"] == "DeliveryInProgress"
    assert stack.received() == []


def test_given_a_300_line_order_when_delivered_then_the_bus_carries_a_claim_check(
    stack: Stack, deliver: Any, events_generator: ModuleType
) -> None:
    payload = json.loads(events_generator.payload_path("orders/create").read_text("utf-8"))
    template = payload["line_items"][0]
    payload["line_items"] = [
        {
            **template,
            "id": 15000000000000 + i,
            "sku": f"SW-TEE-{i:04d}",
            "title": f"Storewire Organic Tee, print no. {i:04d} ".ljust(255, "x"),
            "variant_title": "Black / M / Oversized fit ".ljust(255, "y"),
            "name": "Storewire Organic Tee - Black / M".ljust(255, "z"),
        }
        for i in range(300)
    ]

    status, _ = deliver(webhook_id="big-order", body=json.dumps(payload).encode())

    assert status == 200
    (message,) = stack.received()
    event = parse_event(message["detail"])
    assert event.data is None
    assert event.claim_check is not None
    assert event.claim_check.bucket == BUCKET
    stored = S3ClaimCheckStore(stack.s3, BUCKET).load(event.claim_check)
    assert len(OrderData.model_validate_json(stored).lines) == 300
