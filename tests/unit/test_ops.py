"""The operations logic behind `storewire dlq ...` and `storewire replay` (ops.py), with a
hand-written SQS fake: describing dead letters, peeking without losing, redriving without
losing, and picking an order's events for replay."""

from __future__ import annotations

import json
from typing import Any

import pytest
from storewire_local.ops import (
    Queues,
    describe_message,
    load_queues,
    order_events,
    peek_messages,
    put_entries,
    redrive,
    redrive_attributes,
    timeline_rows,
)

DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:pay-dlq"
SOURCE_ARN = "arn:aws:sqs:us-east-1:123456789012:pay"


def envelope(detail_type: str, order_id: str, event_id: str, **detail: Any) -> dict[str, Any]:
    return {
        "id": f"eb-{event_id}",
        "source": "storewire.ingest",
        "detail-type": detail_type,
        "time": "2026-11-27T04:00:00Z",
        "resources": [],
        "detail": {"event_id": event_id, "order_id": order_id, **detail},
    }


def text(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


class FakeSqs:
    """Queues of messages with visibility; `fail_send` makes SendMessage raise."""

    def __init__(self) -> None:
        self.queues: dict[str, list[dict[str, Any]]] = {"dlq": [], "src": []}
        self.invisible: set[str] = set()
        self.fail_send = False
        self.calls: list[str] = []
        self._n = 0

    def add(self, queue: str, body: str, attributes: dict[str, Any] | None = None) -> str:
        self._n += 1
        ident = f"m{self._n}"
        self.queues[queue].append(
            {"MessageId": ident, "Body": body, "MessageAttributes": attributes or {}}
        )
        return ident

    def receive_message(self, QueueUrl: str, **_: Any) -> dict[str, Any]:
        page = [m for m in self.queues[QueueUrl] if m["MessageId"] not in self.invisible][:10]
        for m in page:
            self.invisible.add(m["MessageId"])
        self.calls.append(f"receive {QueueUrl} {len(page)}")
        return {
            "Messages": [
                {
                    **m,
                    "ReceiptHandle": f"rh-{m['MessageId']}",
                    "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1"},
                }
                for m in page
            ]
        }

    def change_message_visibility_batch(
        self,
        QueueUrl: str,
        Entries: list[dict[str, Any]],
    ) -> None:
        for entry in Entries:
            self.invisible.discard(entry["ReceiptHandle"].removeprefix("rh-"))

    def send_message(self, QueueUrl: str, MessageBody: str, **kwargs: Any) -> None:
        if self.fail_send:
            raise RuntimeError("send refused")
        self.calls.append(f"send {QueueUrl}")
        self.add(QueueUrl, MessageBody, kwargs.get("MessageAttributes"))

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        ident = ReceiptHandle.removeprefix("rh-")
        self.calls.append(f"delete {QueueUrl} {ident}")
        self.queues[QueueUrl] = [m for m in self.queues[QueueUrl] if m["MessageId"] != ident]

    def visible(self, queue: str) -> list[str]:
        return [m["MessageId"] for m in self.queues[queue] if m["MessageId"] not in self.invisible]


# ---------------------------------------------------------------- describing


def test_a_message_from_the_permanent_failure_path_says_its_reason() -> None:
    message = {
        "MessageId": "m1",
        "Body": json.dumps(envelope("OrderPaymentReported", "shopify:s:1", "evt_1")),
        "Attributes": {"ApproximateReceiveCount": "2"},
        "MessageAttributes": {
            "storewire-error-type": text("PermanentUpstreamError"),
            "storewire-reason": text("stripe answered 401"),
            "storewire-consumer": text("payment_confirmation"),
        },
    }
    described = describe_message(message, 5)
    assert described["detail_type"] == "OrderPaymentReported"
    assert described["order_id"] == "shopify:s:1"
    assert described["event_id"] == "evt_1"
    assert described["origin"] == "consumer"
    assert described["error"] == "PermanentUpstreamError: stripe answered 401"
    assert described["consumer"] == "payment_confirmation"
    assert described["attempts"].startswith("1")
    assert described["dlq_receives"] == 2


def test_a_message_redriven_by_sqs_says_retries_exhausted_with_max_receive_count() -> None:
    message = {"MessageId": "m2", "Body": json.dumps(envelope("OrderPlaced", "o-2", "evt_2"))}
    described = describe_message(message, 5)
    assert (described["origin"], described["error"]) == ("redrive", "retries exhausted")
    assert described["attempts"] == "5 (maxReceiveCount)"


def test_an_eventbridge_target_dead_letter_says_the_error_code() -> None:
    message = {
        "MessageId": "m3",
        "Body": json.dumps(envelope("OrderPlaced", "o-3", "evt_3")),
        "MessageAttributes": {
            "ERROR_CODE": text("SQS_SEND_FAILED"),
            "ERROR_MESSAGE": text("queue gone"),
            "RETRY_ATTEMPTS": text("185"),
        },
    }
    described = describe_message(message, None)
    assert described["origin"] == "eventbridge"
    assert described["error"] == "SQS_SEND_FAILED: queue gone"
    assert described["attempts"].startswith("186")


def test_a_body_that_is_not_an_event_is_still_listed() -> None:
    described = describe_message({"MessageId": "m4", "Body": "not json"}, None)
    assert described["detail_type"] is None
    assert described["order_id"] is None
    assert described["error"] == "retries exhausted"


def test_the_failure_attributes_are_not_sent_back_on_redrive() -> None:
    kept = redrive_attributes(
        {
            "MessageAttributes": {
                "storewire-error-type": text("X"),
                "ERROR_CODE": text("Y"),
                "trace": {**text("t-1"), "StringListValues": []},
            }
        }
    )
    assert kept == {"trace": text("t-1")}


# ---------------------------------------------------------------- peeking and redriving


def test_peeking_leaves_every_message_visible() -> None:
    sqs = FakeSqs()
    ids = [sqs.add("dlq", f"body-{n}") for n in range(23)]
    assert sorted(m["MessageId"] for m in peek_messages(sqs, "dlq")) == sorted(ids)
    assert sorted(sqs.visible("dlq")) == sorted(ids)


def test_redrive_sends_each_message_before_deleting_it() -> None:
    sqs = FakeSqs()
    first = sqs.add("dlq", "a", {"storewire-reason": text("bad key")})
    second = sqs.add("dlq", "b")
    moved: list[str] = []
    assert redrive(sqs, "dlq", "src", on_moved=moved.append) == [first, second]
    assert moved == [first, second]
    assert [m["Body"] for m in sqs.queues["src"]] == ["a", "b"]
    assert sqs.queues["src"][0]["MessageAttributes"] == {}
    assert sqs.queues["dlq"] == []
    sends_and_deletes = [c for c in sqs.calls if not c.startswith("receive")]
    assert sends_and_deletes == [
        "send src",
        f"delete dlq {first}",
        "send src",
        f"delete dlq {second}",
    ]


def test_redrive_of_one_message_leaves_the_others_visible() -> None:
    sqs = FakeSqs()
    keep = sqs.add("dlq", "a")
    move = sqs.add("dlq", "b")
    assert redrive(sqs, "dlq", "src", message_ids={move}) == [move]
    assert sqs.visible("dlq") == [keep]
    assert [m["Body"] for m in sqs.queues["src"]] == ["b"]


def test_a_failed_send_loses_nothing() -> None:
    sqs = FakeSqs()
    ident = sqs.add("dlq", "a")
    sqs.fail_send = True
    with pytest.raises(RuntimeError):
        redrive(sqs, "dlq", "src")
    assert [m["MessageId"] for m in sqs.queues["dlq"]] == [ident]
    assert sqs.queues["src"] == []


class RedriveSqs:
    def __init__(self) -> None:
        self.attributes = {
            "pay": {"QueueArn": SOURCE_ARN, "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5}
            )},
            "pay-dlq": {"QueueArn": DLQ_ARN},
        }  # fmt: skip

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": f"http://sqs/{QueueName}"}

    def get_queue_attributes(self, QueueUrl: str, **_: Any) -> dict[str, Any]:
        return {"Attributes": self.attributes[QueueUrl.rsplit("/", 1)[-1]]}


def test_each_dlq_is_paired_with_the_queue_whose_redrive_policy_names_it() -> None:
    queues = load_queues(
        RedriveSqs(),
        {
            "PaymentQueue": "pay",
            "PaymentDeadLetterQueue": "http://sqs/pay-dlq",
            "OrdersTable": "orders",
        },
    )
    assert queues.dlqs() == ["PaymentDeadLetterQueue"]
    assert queues.sources == {"PaymentDeadLetterQueue": "PaymentQueue"}
    assert queues.max_receive == {"PaymentDeadLetterQueue": 5}
    assert queues.resolve("PaymentQueue") == ("PaymentDeadLetterQueue", "PaymentQueue")
    assert queues.resolve("PaymentDeadLetterQueue") == ("PaymentDeadLetterQueue", "PaymentQueue")
    with pytest.raises(LookupError):
        Queues({}).resolve("Nope")


# ---------------------------------------------------------------- replay


def test_an_orders_events_are_found_by_either_id_and_kept_once() -> None:
    placed = envelope("OrderPlaced", "shopify:s:9", "evt_a", external_order_id="9")
    confirmed = envelope("PaymentConfirmed", "shopify:s:9", "evt_b")
    other = envelope("OrderPlaced", "shopify:s:10", "evt_c", external_order_id="10")
    replayed = {**confirmed, "id": "eb-again"}  # an earlier replay recorded it again
    recorded = [placed, other, confirmed, replayed]
    assert order_events(recorded, "9") == [placed, confirmed]
    assert order_events(recorded, "shopify:s:9") == [placed, confirmed]
    assert order_events(recorded, "11") == []


def test_replayed_entries_keep_the_detail_and_its_event_id() -> None:
    event = envelope("OrderPlaced", "o-1", "evt_a")
    (entry,) = put_entries([event], "storewire-dev")
    assert entry["Source"] == "storewire.ingest"
    assert entry["DetailType"] == "OrderPlaced"
    assert entry["EventBusName"] == "storewire-dev"
    assert json.loads(entry["Detail"]) == event["detail"]


def test_the_order_timeline_is_sorted_and_each_entry_has_its_concern() -> None:
    view = {
        "timeline": [
            {"at": "2026-11-27T04:00:02Z", "event_type": "StockReserved", "summary": "2 units"},
            {"at": "2026-11-27T04:00:01Z", "event_type": "OrderPlaced", "summary": "placed"},
            {"at": "2026-11-27T04:00:03Z", "event_type": "PaymentConfirmed", "summary": "ok"},
            {"at": "2026-11-27T04:00:04Z", "event_type": "LabelCreated", "summary": "ups"},
            {"at": "2026-11-27T04:00:05Z", "event_type": "CrmSynced", "summary": "c-1"},
        ]
    }
    assert [(r[1], r[2]) for r in timeline_rows(view)] == [
        ("order", "OrderPlaced"),
        ("stock", "StockReserved"),
        ("payment", "PaymentConfirmed"),
        ("shipment", "LabelCreated"),
        ("crm", "CrmSynced"),
    ]


def test_a_message_that_fails_again_during_the_redrive_is_not_moved_twice() -> None:
    sqs = FakeSqs()
    sqs.add("dlq", "poison")
    real_send = sqs.send_message

    def send_and_fail_again(QueueUrl: str, MessageBody: str, **kwargs: Any) -> None:
        real_send(QueueUrl, MessageBody, **kwargs)
        sqs.add("dlq", MessageBody)  # the consumer dead-letters it again at once

    sqs.send_message = send_and_fail_again  # type: ignore[method-assign]
    assert len(redrive(sqs, "dlq", "src")) == 1
    assert [m["Body"] for m in sqs.queues["dlq"]] == ["poison"]
    assert len(sqs.visible("dlq")) == 1
