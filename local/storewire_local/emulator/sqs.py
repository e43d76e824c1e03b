"""SQS event sources: poll with the function's batch size, honour partial batch responses."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cfn import REGION
from .chaos import Chaos
from .runner import InvocationError

log = logging.getLogger("storewire.emulator")

# A failed record comes back after its queue's visibility timeout on AWS (180 s here); locally
# after 1, 2, 4, 8, 16 s by receive count, so five receives span ~30 s, not 15 min: long
# enough for a prerequisite queued behind a burst, or a 30 s lease, short enough for tests.
RETRY_VISIBILITY_SECONDS = 1
RETRY_VISIBILITY_CAP_SECONDS = 16


def retry_visibility(receive_count: int) -> int:
    exponent = max(0, min(receive_count - 1, 10))
    return int(min(RETRY_VISIBILITY_SECONDS * 2**exponent, RETRY_VISIBILITY_CAP_SECONDS))


@dataclass
class SqsSource:
    function: str
    event_name: str
    queue_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    window_seconds: float
    report_failures: bool
    enabled: bool = True


def lambda_record(message: dict[str, Any], source: SqsSource) -> dict[str, Any]:
    attributes = message.get("Attributes") or {}
    message_attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        item: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType"),
        }
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            import base64

            raw = value["BinaryValue"]
            item["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
        message_attributes[name] = item
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {
            k: str(v)
            for k, v in attributes.items()
            if k
            in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "MessageGroupId",
                "MessageDeduplicationId",
                "SequenceNumber",
                "AWSTraceHeader",
            )
        },
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": REGION,
    }


class MotoSqsDirect:
    """The three SQS calls an event source mapping makes, made on moto's backend in this process.

    Lambda's pollers are part of the service, not clients of the account's SQS endpoint, and
    through boto3 and HTTP they cost the emulator's process (where moto runs, the run's
    bottleneck) a seventh of its time: the request built, signed, served, rendered and parsed
    again. Here they take moto's lock and call the same backend methods moto's SQS API calls,
    with the same effects (receive counts, visibility, moves to the DLQ on receive, receipt
    checks), and return what boto3 would have parsed from moto's answer. Faults armed on the
    AWS endpoint (``Emulator.fault``) do not reach the pollers, as API faults do not reach
    Lambda's.
    """

    def __init__(self, lock: threading.Lock, account_id: str, region: str = REGION) -> None:
        self._lock = lock
        self._account_id = account_id
        self._region = region

    def _backend(self) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[self._account_id][self._region]

    @staticmethod
    def _name(queue_url: str) -> str:
        return queue_url.rstrip("/").rsplit("/", 1)[-1]

    # boto3's parameter names, so SqsPoller takes this or a boto3 client alike.
    def receive_message(
        self,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int = 0,  # pollers poll; they never wait in here
        **_attribute_names: Any,  # the poller always asks for every attribute
    ) -> dict[str, Any]:
        name = self._name(QueueUrl)
        with self._lock:
            backend = self._backend()
            queue = backend.get_queue(name)
            received = backend.receive_message(
                name, MaxNumberOfMessages, 0, queue.visibility_timeout, ["All"]
            )
            messages = [_as_received(message) for message in received]
        return {"Messages": messages} if messages else {}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            done, failed = self._backend().delete_message_batch(self._name(QueueUrl), Entries)
        return _batch_answer(done, failed)

    def change_message_visibility_batch(
        self,
        QueueUrl: str,
        Entries: list[dict[str, Any]],
    ) -> dict[str, Any]:
        with self._lock:
            done, failed = self._backend().change_message_visibility_batch(
                self._name(QueueUrl), Entries
            )
        return _batch_answer(done, failed)


def _as_received(message: Any) -> dict[str, Any]:
    """A moto message as boto3 parses it from ReceiveMessage with every attribute asked for."""
    received: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if message.message_attributes:
        received["MessageAttributes"] = {
            name: dict(value) for name, value in message.message_attributes.items()
        }
        received["MD5OfMessageAttributes"] = message.attribute_md5
    attributes = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    if message.deduplication_id is not None:
        attributes["MessageDeduplicationId"] = message.deduplication_id
    if message.group_id is not None:
        attributes["MessageGroupId"] = message.group_id
    trace = (message.system_attributes or {}).get("AWSTraceHeader")
    if trace and trace.get("StringValue"):
        attributes["AWSTraceHeader"] = trace["StringValue"]
    if message.sequence_number is not None:
        attributes["SequenceNumber"] = message.sequence_number
    received["Attributes"] = attributes
    return received


def _batch_answer(done: list[str], failed: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Successful": [{"Id": entry} for entry in done], "Failed": failed}


class SqsPoller:
    """One thread per event source."""

    def __init__(
        self,
        source: SqsSource,
        sqs: Any,
        invoke: Callable[[str, Any], Any],
        activity: threading.Condition,
        busy: Callable[[int], None],
        chaos: Chaos | None = None,
    ) -> None:
        self.source = source
        self.chaos = chaos
        self.sqs = sqs
        self._invoke = invoke
        self._activity = activity
        self._busy = busy
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sqs-{source.function}-{source.event_name}", daemon=True
        )
        self.batches = 0

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()
        with self._activity:
            self._activity.notify_all()

    def stop(self) -> None:
        self.signal_stop()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages") or [])

    def _run(self) -> None:
        idle_wait = 0.05
        while not self._stop.is_set():
            try:
                worked = self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("poller %s failed; retrying", self.source.queue_id)
                worked = False
            if worked:
                idle_wait = 0.05
                continue
            with self._activity:
                self._activity.wait(timeout=idle_wait)
            idle_wait = min(idle_wait * 2, 0.5)

    def poll_once(self) -> bool:
        """Receive one batch and hand it to the function. True if there was a batch."""
        source = self.source
        self._busy(1)
        try:
            messages = self._receive(source.batch_size)
            if not messages:
                return False
            deadline = time.monotonic() + min(source.window_seconds, 1.0)
            while len(messages) < source.batch_size and time.monotonic() < deadline:
                more = self._receive(source.batch_size - len(messages))
                if not more:
                    time.sleep(0.05)
                messages.extend(more)
            self._process(messages)
            self.batches += 1
            return True
        finally:
            self._busy(-1)

    def _process(self, messages: list[dict[str, Any]]) -> None:
        source = self.source
        event = {"Records": [lambda_record(m, source) for m in messages]}
        by_id = {m["MessageId"]: m for m in messages}
        failed: set[str]
        try:
            result = self._invoke(source.function, event)
        except InvocationError as exc:
            log.info("%s: batch of %d failed: %s", source.function, len(messages), exc)
            failed = set(by_id)
        else:
            failed = set()
            if source.report_failures and isinstance(result, dict):
                items = result.get("batchItemFailures") or []
                for item in items:
                    identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
                    if not identifier or identifier not in by_id:
                        log.warning(
                            "%s: invalid batchItemFailures entry %r; whole batch fails",
                            source.function,
                            item,
                        )
                        failed = set(by_id)
                        break
                    failed.add(identifier)
        if self.chaos is not None:
            # a lost DeleteMessage: the message comes back after its visibility timeout
            failed |= {mid for mid in by_id if mid not in failed and self.chaos.redeliver()}
        succeeded = [m for mid, m in by_id.items() if mid not in failed]
        for start in range(0, len(succeeded), 10):
            chunk = succeeded[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        retry = [by_id[mid] for mid in by_id if mid in failed]
        for start in range(0, len(retry), 10):
            chunk = retry[start : start + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=source.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": retry_visibility(
                            int((m.get("Attributes") or {}).get("ApproximateReceiveCount") or 1)
                        ),
                    }
                    for i, m in enumerate(chunk)
                ],
            )
