"""SQS partial batch responses, saying why each record handed back to SQS failed.

Each record of a batch is handled on its own; one that raises is reported in
`batchItemFailures` (the function's event source has `ReportBatchItemFailures`), so SQS
redelivers only it, after its visibility timeout; after `maxReceiveCount` receives the
queue's redrive policy moves it to the DLQ, and SQS adds no reason to it. The reason is in
this module's warning, keyed by the SQS message id (which the DLQ keeps): `storewire dlq list`
readers and the reliability suite find it in the function's logs. A batch in which every
record failed is reported the same way (no exception): SQS redelivers exactly the failed
records either way.

This is what Powertools' `BatchProcessor` with `process_partial_response` does for SQS, and
the answer has the same shape. We do not import it: importing
`aws_lambda_powertools.utilities.batch` once pydantic is loaded (every handler loads it) also
imports Powertools' parser models for every event source, and asyncio, about 100 ms of each
consumer's cold start (docs/performance.md, "Cold import").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypedDict

from storewire.errors import StorewireError


class PartialItemFailure(TypedDict):
    itemIdentifier: str


class PartialItemFailureResponse(TypedDict):
    batchItemFailures: list[PartialItemFailure]


class _Logger(Protocol):
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


class SqsRecord:
    """One record of a Lambda SQS event: the fields a consumer reads."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    @property
    def message_id(self) -> str:
        return str(self.raw["messageId"])

    @property
    def body(self) -> str:
        return str(self.raw.get("body") or "")

    @property
    def receive_count(self) -> int | None:
        """`ApproximateReceiveCount`: 1 on the first delivery."""
        attributes = self.raw.get("attributes")
        if not isinstance(attributes, Mapping):
            return None
        count = attributes.get("ApproximateReceiveCount")
        try:
            return int(count) if count is not None else None
        except (TypeError, ValueError):
            return None


def process_sqs_batch(
    event: Mapping[str, Any],
    handle: Callable[[SqsRecord], Any],
    logger: _Logger,
) -> PartialItemFailureResponse:
    """Handle every record of `event`; the records that raised, as SQS partial failures."""
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError("not an SQS event: no Records list")
    failures: list[PartialItemFailure] = []
    for raw in records:
        record = SqsRecord(raw)
        try:
            handle(record)
        except Exception as error:
            logger.warning(
                "record failed; SQS will retry it",
                extra={
                    "outcome": "retried",
                    "message_id": record.message_id,
                    "receive_count": record.receive_count,
                    "error_type": type(error).__name__,
                    "reason": str(error)[:500],
                },
                # a bug, not a failure the code expects: its traceback is what to fix it by
                exc_info=not isinstance(error, StorewireError),
            )
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}
