"""Powertools' `BatchProcessor`, saying why each record it hands back to SQS failed.

A record that raises a retryable error is reported as a partial batch failure and comes back
after its visibility timeout; after ``maxReceiveCount`` receives the queue's redrive policy
moves it to the DLQ, and SQS adds no reason to it. The reason is in this warning, keyed by
the SQS message id (which the DLQ keeps): ``storewire dlq list`` readers and the reliability
suite find it in the function's logs.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor


class RetryLoggingBatchProcessor(BatchProcessor):
    def __init__(self, logger: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._retry_logger = logger

    def failure_handler(self, record: Any, exception: Any) -> Any:
        _type, error, _traceback = exception
        self._retry_logger.warning(
            "record failed; SQS will retry it",
            extra={
                "outcome": "retried",
                "message_id": getattr(record, "message_id", None),
                "receive_count": _receive_count(record),
                "error_type": type(error).__name__,
                "reason": str(error)[:500],
            },
        )
        return super().failure_handler(record, exception)


def _receive_count(record: Any) -> int | None:
    attributes = getattr(record, "attributes", None)
    count = getattr(attributes, "approximate_receive_count", None)
    try:
        return int(count) if count is not None else None
    except (TypeError, ValueError):
        return None
