"""storewire.batch: partial batch responses; a record handed back to SQS leaves a warning
saying why, keyed by its message id."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from storewire.batch import SqsRecord, process_sqs_batch
from storewire.errors import PrerequisiteMissing


def _record(message_id: str, body: str, receives: int) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receives),
            "SentTimestamp": "1700000000000",
            "SenderId": "x",
            "ApproximateFirstReceiveTimestamp": "1700000000000",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def test_a_failed_record_is_retried_and_its_reason_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = Logger(service="test_batch")

    def handle(record: SqsRecord) -> None:
        if record.body == "early":
            raise PrerequisiteMissing("order not placed yet")

    event = {"Records": [_record("m-1", "fine", 1), _record("m-2", "early", 3)]}
    response = process_sqs_batch(event, handle, logger)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    warnings = [line for line in lines if line.get("level") == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0]["message_id"] == "m-2"
    assert warnings[0]["error_type"] == "PrerequisiteMissing"
    assert "order not placed yet" in warnings[0]["reason"]
    assert warnings[0]["receive_count"] == 3


def test_every_record_is_handled_and_each_failure_reported_in_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = Logger(service="test_batch_all")
    handled: list[str] = []

    def handle(record: SqsRecord) -> None:
        handled.append(record.message_id)
        if record.body == "bug":
            raise KeyError("a bug")
        if record.body == "early":
            raise PrerequisiteMissing("order not placed yet")

    bodies = ["early", "fine", "bug", "early"]
    event = {"Records": [_record(f"m-{n}", body, 1) for n, body in enumerate(bodies)]}

    response = process_sqs_batch(event, handle, logger)

    assert handled == ["m-0", "m-1", "m-2", "m-3"]
    assert response == {"batchItemFailures": [{"itemIdentifier": m} for m in ("m-0", "m-2", "m-3")]}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    traced = {line["message_id"]: "exception" in line for line in lines}
    assert traced == {"m-0": False, "m-2": True, "m-3": False}  # a bug's traceback is logged


def test_a_batch_where_every_record_fails_is_reported_not_raised() -> None:
    def handle(record: SqsRecord) -> None:
        raise PrerequisiteMissing("not yet")

    event = {"Records": [_record("m-1", "a", 1), _record("m-2", "b", 2)]}

    response = process_sqs_batch(event, handle, Logger(service="test_batch_none"))

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]}


def test_a_record_reads_its_receive_count_when_it_has_one() -> None:
    assert SqsRecord(_record("m", "b", 4)).receive_count == 4
    assert SqsRecord({"messageId": "m"}).receive_count is None
    assert (
        SqsRecord({"messageId": "m", "attributes": {"ApproximateReceiveCount": "x"}}).receive_count
        is None
    )
    assert SqsRecord({"messageId": "m"}).body == ""


def test_an_event_without_records_is_refused() -> None:
    with pytest.raises(ValueError, match="no Records"):
        process_sqs_batch({"detail": {}}, lambda record: None, Logger(service="test_batch_bad"))
