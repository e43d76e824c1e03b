"""A record handed back to SQS leaves a warning saying why, keyed by its message id."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from storewire.batch import RetryLoggingBatchProcessor
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

    def handle(record: Any) -> None:
        if record.body == "early":
            raise PrerequisiteMissing("order not placed yet")

    event = {"Records": [_record("m-1", "fine", 1), _record("m-2", "early", 3)]}
    processor = RetryLoggingBatchProcessor(logger, event_type=EventType.SQS)
    response = process_partial_response(
        event=event, record_handler=handle, processor=processor, context=None
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    warnings = [line for line in lines if line.get("level") == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0]["message_id"] == "m-2"
    assert warnings[0]["error_type"] == "PrerequisiteMissing"
    assert "order not placed yet" in warnings[0]["reason"]
    assert warnings[0]["receive_count"] == 3
