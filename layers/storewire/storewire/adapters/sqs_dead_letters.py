"""`DeadLetterSink` on SQS: a record that can never succeed goes to its DLQ at once.

The original message body is sent unchanged (so a redrive replays it as it was), with the
reason in message attributes: `storewire-error-type` (the error class, what alarms and
runbooks key on), `storewire-reason` (its message, truncated), `storewire-consumer`,
`storewire-message-id` (the id on the source queue) and `storewire-failed-at`.
Messages sent this way carry no SQS redrive source, so replay them with
`aws sqs start-message-move-task --destination-arn <the consumer queue ARN>`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from storewire.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

MAX_REASON_CHARS = 1000


class SqsDeadLetterSink:
    """Sends failed records to one dead-letter queue."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        consumer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._consumer = consumer
        self._clock = clock

    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        def text(value: str) -> MessageAttributeValueTypeDef:
            return {"DataType": "String", "StringValue": value or "-"}

        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=body,
                MessageAttributes={
                    "storewire-error-type": text(error_type),
                    "storewire-reason": text(reason[:MAX_REASON_CHARS]),
                    "storewire-consumer": text(self._consumer),
                    "storewire-message-id": text(message_id),
                    "storewire-failed-at": {
                        "DataType": "Number",
                        "StringValue": str(int(self._clock())),
                    },
                },
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"could not send the record to the DLQ: {error}") from error
