"""The pollers' direct SQS calls answer as boto3 would on the same moto, with the same effects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from storewire_local.emulator.cfn import ACCOUNT_ID
from storewire_local.emulator.moto_server import MotoServer
from storewire_local.emulator.sqs import MotoSqsDirect

# Values that differ between two receives of two twin messages by nature, not by shape.
PER_MESSAGE = {"MessageId", "ReceiptHandle"}
PER_RECEIVE_ATTRIBUTES = {"SentTimestamp", "ApproximateFirstReceiveTimestamp", "SequenceNumber"}


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sqs(moto: MotoServer) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def twin_queues(sqs: Any, fifo: bool = False, max_receives: int = 5) -> tuple[str, str, str]:
    suffix = ".fifo" if fifo else ""
    dlq = sqs.create_queue(
        QueueName=f"dlq{suffix}", Attributes={"FifoQueue": "true"} if fifo else {}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes = {
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}
        )
    }
    if fifo:
        attributes["FifoQueue"] = "true"
    urls = [
        sqs.create_queue(QueueName=f"{name}{suffix}", Attributes=attributes)["QueueUrl"]
        for name in ("via-boto3", "via-direct")
    ]
    return urls[0], urls[1], dlq


def send_the_same(sqs: Any, urls: list[str], fifo: bool) -> None:
    for n in range(3):
        message: dict[str, Any] = {
            "MessageBody": json.dumps({"n": n, "text": "ünïcode"}),
            "MessageAttributes": {
                "kind": {"DataType": "String", "StringValue": f"order-{n}"},
                "attempt": {"DataType": "Number", "StringValue": str(n)},
                "blob": {"DataType": "Binary", "BinaryValue": bytes([n, 255])},
            },
        }
        if n == 2:
            del message["MessageAttributes"]
        if fifo:
            message["MessageGroupId"] = f"group-{n % 2}"
            message["MessageDeduplicationId"] = f"dedup-{n}"
        for url in urls:
            sqs.send_message(QueueUrl=url, **message)


def comparable(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shaped = []
    for message in messages:
        kept = {k: v for k, v in message.items() if k not in PER_MESSAGE}
        kept["Attributes"] = {
            k: (None if k in PER_RECEIVE_ATTRIBUTES else v)
            for k, v in (message.get("Attributes") or {}).items()
        }
        shaped.append(kept)
    return shaped


def receive_via_boto3(sqs: Any, url: str) -> list[dict[str, Any]]:
    return list(
        sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages")
        or []
    )


@pytest.mark.parametrize("fifo", [False, True])
def test_received_messages_are_what_boto3_parses_from_moto(
    moto: MotoServer, sqs: Any, fifo: bool
) -> None:
    via_boto3, via_direct, _ = twin_queues(sqs, fifo=fifo)
    send_the_same(sqs, [via_boto3, via_direct], fifo)
    direct = MotoSqsDirect(moto.lock, ACCOUNT_ID)

    expected = receive_via_boto3(sqs, via_boto3)
    got = direct.receive_message(
        QueueUrl=via_direct, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
    )["Messages"]

    assert len(expected) == 3
    assert comparable(got) == comparable(expected)
    assert direct.receive_message(QueueUrl=via_direct, MaxNumberOfMessages=10) == {}


def test_deletes_and_visibility_changes_have_boto3s_effects_and_answers(
    moto: MotoServer, sqs: Any
) -> None:
    via_boto3, via_direct, _ = twin_queues(sqs)
    send_the_same(sqs, [via_boto3, via_direct], fifo=False)
    direct = MotoSqsDirect(moto.lock, ACCOUNT_ID)
    answers = []
    for url, client in ((via_boto3, sqs), (via_direct, direct)):
        messages = (
            receive_via_boto3(sqs, url)
            if client is sqs
            else client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        )
        deleted = client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "0", "ReceiptHandle": messages[0]["ReceiptHandle"]},
                {"Id": "bad", "ReceiptHandle": "not-a-receipt"},
            ],
        )
        changed = client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[1:])
            ],
        )
        again = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        deleted.pop("ResponseMetadata", None)
        changed.pop("ResponseMetadata", None)
        answers.append((deleted, changed, len(again)))

    assert answers[0] == answers[1]
    deleted, changed, visible_again = answers[1]
    assert deleted["Successful"] == [{"Id": "0"}]
    assert [f["Id"] for f in deleted["Failed"]] == ["bad"]
    assert deleted["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    assert changed == {"Successful": [{"Id": "0"}, {"Id": "1"}], "Failed": []}
    assert visible_again == 2  # the two put back at once come back; the deleted one does not


def test_a_message_received_past_its_redrive_limit_moves_to_the_dlq(
    moto: MotoServer, sqs: Any
) -> None:
    _, url, dlq = twin_queues(sqs, max_receives=2)
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    direct = MotoSqsDirect(moto.lock, ACCOUNT_ID)
    counts = []
    for _ in range(2):
        [message] = direct.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        counts.append(message["Attributes"]["ApproximateReceiveCount"])
        direct.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "0", "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
            ],
        )

    assert counts == ["1", "2"]
    assert direct.receive_message(QueueUrl=url, MaxNumberOfMessages=10) == {}
    [dead] = receive_via_boto3(sqs, dlq)
    assert dead["Body"] == "poison"


def test_an_unknown_queue_raises_as_moto_does(moto: MotoServer) -> None:
    from moto.sqs.exceptions import QueueDoesNotExist

    direct = MotoSqsDirect(moto.lock, ACCOUNT_ID)
    with pytest.raises(QueueDoesNotExist):
        direct.receive_message(QueueUrl=f"{moto.url}/{ACCOUNT_ID}/nowhere", MaxNumberOfMessages=1)
