"""Operations on a running graph: dead-letter queues, redrive and replay.

Shared by ``storewire dlq ...`` and ``storewire replay`` (``ops_cli.py``) and by the tests.
Everything takes its boto3 clients as arguments, so it works the same against the emulator's
moto (``.storewire/local.json``) and a deployed stack (``--stack NAME``).

Dead-letter messages come three ways, and each says why differently:

* the consumer's permanent-failure path (``SqsDeadLetterSink``) sends the record at once with
  ``storewire-error-type`` / ``storewire-reason`` / ``storewire-consumer`` /
  ``storewire-message-id`` / ``storewire-failed-at`` message attributes;
* SQS's own redrive after ``maxReceiveCount`` receives: no attributes; the message's
  ``ApproximateReceiveCount`` on the source queue is lost (SQS restarts it on the DLQ), so the
  attempt count shown is the source queue's ``maxReceiveCount``;
* an EventBridge rule target that could not deliver: ``ERROR_CODE``, ``ERROR_MESSAGE``,
  ``RULE_ARN``, ``TARGET_ARN`` and ``RETRY_ATTEMPTS`` attributes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)

DLQ_SUFFIX = "DeadLetterQueue"
STOREWIRE_ATTRIBUTE_PREFIX = "storewire-"
EVENTBRIDGE_ERROR_ATTRIBUTES = (
    "ERROR_CODE",
    "ERROR_MESSAGE",
    "RULE_ARN",
    "TARGET_ARN",
    "RETRY_ATTEMPTS",
)
PUT_EVENTS_BATCH = 10


# ---------------------------------------------------------------- reading messages


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = (message.get("MessageAttributes") or {}).get(name)
    if not isinstance(value, dict):
        return None
    text = value.get("StringValue")
    return str(text) if text is not None else None


def describe_message(message: dict[str, Any], max_receive_count: int | None) -> dict[str, Any]:
    """What an operator needs about one dead-letter message (an SQS ReceiveMessage item)."""
    body_text = str(message.get("Body") or "")
    event: dict[str, Any] = {}
    try:
        parsed = json.loads(body_text)
        if isinstance(parsed, dict):
            event = parsed
    except ValueError:
        pass
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    assert isinstance(detail, dict)
    attributes = message.get("Attributes") or {}
    dlq_receives = int(attributes.get("ApproximateReceiveCount") or 0)
    error_type = _attribute(message, "storewire-error-type")
    eb_code = _attribute(message, "ERROR_CODE")
    if error_type is not None:
        origin = "consumer"
        error = f"{error_type}: {_attribute(message, 'storewire-reason') or ''}".rstrip(": ")
        attempts: str = "1 (permanent failure, sent at once)"
    elif eb_code is not None:
        origin = "eventbridge"
        error = f"{eb_code}: {_attribute(message, 'ERROR_MESSAGE') or ''}".rstrip(": ")
        retries = _attribute(message, "RETRY_ATTEMPTS")
        attempts = f"{int(retries) + 1} (EventBridge delivery)" if retries else "unknown"
    else:
        origin = "redrive"
        error = "retries exhausted"
        attempts = (
            f"{max_receive_count} (maxReceiveCount)" if max_receive_count else "maxReceiveCount"
        )
    return {
        "message_id": message.get("MessageId"),
        "detail_type": event.get("detail-type") or detail.get("event_type"),
        "order_id": detail.get("order_id") or detail.get("external_order_id"),
        "event_id": detail.get("event_id") or event.get("id"),
        "origin": origin,
        "error": error,
        "error_type": error_type or eb_code,
        "consumer": _attribute(message, "storewire-consumer"),
        "failed_at": _attribute(message, "storewire-failed-at"),
        "attempts": attempts,
        "dlq_receives": dlq_receives,
        "sent_at": attributes.get("SentTimestamp"),
    }


def peek_messages(
    sqs: Any, queue_url: str, *, limit: int = 1000, visibility_timeout: int = 30
) -> list[dict[str, Any]]:
    """Every message of a queue (up to ``limit``), left in the queue and visible again.

    Receives with a short visibility timeout until the queue answers empty (the ones already
    received are invisible meanwhile), then sets each one's visibility back to 0.
    """
    seen: dict[str, dict[str, Any]] = {}
    try:
        while len(seen) < limit:
            page = (
                sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=visibility_timeout,
                    WaitTimeSeconds=0,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages")
                or []
            )
            if not page:
                break
            for message in page:
                seen[message["MessageId"]] = message
    finally:
        release(sqs, queue_url, seen.values())
    return list(seen.values())


def release(sqs: Any, queue_url: str, messages: Iterable[dict[str, Any]]) -> None:
    """Make received messages visible again at once."""
    items = list(messages)
    for start in range(0, len(items), 10):
        entries = [
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for n, m in enumerate(items[start : start + 10])
        ]
        if entries:
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


# ---------------------------------------------------------------- queues of the stack


@dataclass
class Queues:
    """The stack's queues: logical id -> URL, and DLQ logical id -> its source queue's."""

    urls: dict[str, str]
    sources: dict[str, str] = field(default_factory=dict)  # DLQ lid -> source queue lid
    max_receive: dict[str, int] = field(default_factory=dict)  # DLQ lid -> maxReceiveCount

    def dlqs(self) -> list[str]:
        return sorted(lid for lid in self.urls if lid.endswith(DLQ_SUFFIX))

    def resolve(self, name: str) -> tuple[str, str]:
        """``(dlq, source)`` logical ids for a DLQ or its source queue's logical id."""
        if name in self.sources:
            return name, self.sources[name]
        for dlq, source in self.sources.items():
            if source == name:
                return dlq, source
        known = ", ".join(sorted({*self.sources, *self.sources.values()})) or "none"
        raise LookupError(f"no DLQ or source queue {name!r} with a redrive policy ({known})")


def queue_resources(resources: dict[str, str]) -> dict[str, str]:
    """The logical ids that look like queues (by name; the template's convention)."""
    return {lid: phys for lid, phys in resources.items() if lid.endswith("Queue")}


def load_queues(sqs: Any, resources: dict[str, str]) -> Queues:
    """Resolve each queue's URL and which source queue redrives into which DLQ."""
    urls: dict[str, str] = {}
    for lid, physical in queue_resources(resources).items():
        if physical.startswith(("http://", "https://")):
            urls[lid] = physical
        else:
            try:
                urls[lid] = sqs.get_queue_url(QueueName=physical)["QueueUrl"]
            except ClientError:  # not a queue after all
                logger.debug("%s (%s) is not a queue", lid, physical)
    arns: dict[str, str] = {}
    policies: dict[str, dict[str, Any]] = {}
    for lid, url in urls.items():
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"]
        ).get("Attributes", {})
        arns[attributes.get("QueueArn", "")] = lid
        if attributes.get("RedrivePolicy"):
            policies[lid] = json.loads(attributes["RedrivePolicy"])
    queues = Queues(urls)
    for source, policy in policies.items():
        dlq = arns.get(str(policy.get("deadLetterTargetArn")))
        if dlq:
            queues.sources[dlq] = source
            queues.max_receive[dlq] = int(policy.get("maxReceiveCount") or 0)
    return queues


def queue_depth(sqs: Any, url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    ).get("Attributes", {})
    return {
        "visible": int(attributes.get("ApproximateNumberOfMessages") or 0),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible") or 0),
    }


def list_dlqs(sqs: Any, queues: Queues) -> list[dict[str, Any]]:
    """Every DLQ: its depth, its source queue and each message described."""
    listing = []
    for dlq in queues.dlqs():
        url = queues.urls[dlq]
        depth = queue_depth(sqs, url)
        messages = peek_messages(sqs, url) if depth["visible"] else []
        listing.append(
            {
                "queue": dlq,
                "source": queues.sources.get(dlq),
                "depth": depth["visible"] + depth["in_flight"],
                "visible": depth["visible"],
                "in_flight": depth["in_flight"],
                "messages": [
                    describe_message(m, queues.max_receive.get(dlq))
                    for m in sorted(
                        messages, key=lambda m: int(m.get("Attributes", {}).get("SentTimestamp", 0))
                    )
                ],
            }
        )
    return listing


# ---------------------------------------------------------------- redrive


def redrive_attributes(message: dict[str, Any]) -> dict[str, Any]:
    """The message attributes to send back: the original ones, not the failure's."""
    kept: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        if name.startswith(STOREWIRE_ATTRIBUTE_PREFIX) or name in EVENTBRIDGE_ERROR_ATTRIBUTES:
            continue
        kept[name] = {k: v for k, v in value.items() if k in ("DataType", "StringValue")}
    return kept


def redrive(
    sqs: Any,
    dlq_url: str,
    source_url: str,
    *,
    message_ids: set[str] | None = None,
    on_moved: Callable[[str], None] | None = None,
    visibility_timeout: int = 120,
) -> list[str]:
    """Move messages (all, or those in ``message_ids``) from the DLQ back to the source queue.

    Each message is deleted from the DLQ only after the send to the source queue succeeded:
    a failure leaves it in the DLQ (it becomes visible again), never lost. The body is sent
    unchanged, so the consumer re-processes it once (it dedupes on the event id). A message
    that fails again and comes back while this runs is not moved a second time.
    """
    moved: list[str] = []
    moved_bodies: set[str] = set()  # a body moved in this run that fails again is left alone
    skipped: list[dict[str, Any]] = []
    try:
        while True:
            page = (
                sqs.receive_message(
                    QueueUrl=dlq_url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=visibility_timeout,
                    WaitTimeSeconds=0,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages")
                or []
            )
            if not page:
                break
            for message in page:
                ident = message["MessageId"]
                if (message_ids is not None and ident not in message_ids) or (
                    message["Body"] in moved_bodies
                ):
                    skipped.append(message)
                    continue
                send: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": message["Body"]}
                attributes = redrive_attributes(message)
                if attributes:
                    send["MessageAttributes"] = attributes
                sqs.send_message(**send)
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved.append(ident)
                moved_bodies.add(message["Body"])
                if on_moved is not None:
                    on_moved(ident)
            if message_ids is not None and message_ids <= set(moved):
                break
    finally:
        release(sqs, dlq_url, skipped)
    return moved


# ---------------------------------------------------------------- replay


def order_events(events: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    """The envelopes of one order (canonical or storefront id), oldest first, each event once.

    An order's events are matched by ``detail.order_id`` or ``detail.external_order_id``; the
    canonical ids found that way widen the match (a storefront id finds the events that carry
    only the canonical one). Events recorded more than once (an earlier replay) are kept once,
    by ``detail.event_id``.
    """

    def ids_of(event: dict[str, Any]) -> set[str]:
        detail = event.get("detail")
        if not isinstance(detail, dict):
            return set()
        return {str(detail[k]) for k in ("order_id", "external_order_id") if detail.get(k)}

    wanted = {order}
    for event in events:
        if order in ids_of(event):
            wanted |= ids_of(event)
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for event in events:
        if not ids_of(event) & wanted:
            continue
        detail = event.get("detail")
        key = str(detail.get("event_id") if isinstance(detail, dict) else None) or str(
            event.get("id")
        )
        if key in seen:
            continue
        seen.add(key)
        found.append(event)
    return found


def put_entries(events: list[dict[str, Any]], bus_name: str) -> list[dict[str, Any]]:
    """PutEvents entries re-emitting the envelopes as they were (same detail, same event id)."""
    entries = []
    for event in events:
        entry: dict[str, Any] = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event.get("detail") or {}, separators=(",", ":")),
            "EventBusName": bus_name,
        }
        if event.get("resources"):
            entry["Resources"] = list(event["resources"])
        entries.append(entry)
    return entries


def replay(
    events_client: Any,
    events: list[dict[str, Any]],
    bus_name: str,
    on_put: Callable[[int], None] | None = None,
) -> int:
    """Put the envelopes on the bus again, oldest first, ten a call; failures raise."""
    entries = put_entries(events, bus_name)
    for start in range(0, len(entries), PUT_EVENTS_BATCH):
        batch = entries[start : start + PUT_EVENTS_BATCH]
        answer = events_client.put_events(Entries=batch)
        if answer.get("FailedEntryCount"):
            failed = [e for e in answer.get("Entries", []) if e.get("ErrorCode")]
            raise RuntimeError(f"the bus refused {len(failed)} events: {failed[:3]}")
        if on_put is not None:
            on_put(len(batch))
    return len(entries)


# ---------------------------------------------------------------- order show

CONCERNS = ("payment", "stock", "shipment", "crm")


def timeline_concern(event_type: str) -> str:
    """Which concern of the order record a timeline entry belongs to (for the table)."""
    if event_type in CONCERNS:
        return event_type
    if event_type.startswith("Payment") or event_type in ("OrderPaymentReported", "RefundIssued"):
        return "payment"
    if event_type.startswith("Stock") or event_type == "OrderBackordered":
        return "stock"
    if event_type.startswith(("Label", "Shipment", "Tracking", "Fulfil")):
        return "shipment"
    if event_type.startswith(("Crm", "Customer")):
        return "crm"
    return "order"


def timeline_rows(view: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """`(at, concern, event type, summary)` per timeline entry of an order view, oldest first."""
    entries = sorted(view.get("timeline") or [], key=lambda e: str(e.get("at") or ""))
    return [
        (
            str(e.get("at") or ""),
            timeline_concern(str(e.get("event_type") or "")),
            str(e.get("event_type") or ""),
            str(e.get("summary") or ""),
        )
        for e in entries
    ]


def console(width: int = 140) -> Any:
    """A rich console on stdout: the terminal's width, or ``width`` when not a terminal."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else width)
