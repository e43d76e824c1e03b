"""storewire.consumers: reading a record's canonical event, and dead-lettering with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crm_fakes import DeadLetters
from ingest_fakes import InMemoryClaimCheckStore
from stock_samples import payment, placed
from storewire import consumers
from storewire.domain.events import EVENT_MODELS, CanonicalEvent, OrderPlaced
from storewire.errors import ConfigurationError, MalformedPayload

READ_EVENTS = consumers.by_type_and_version(EVENT_MODELS)
READ_KNOWN_EVENTS = consumers.by_type_and_version(EVENT_MODELS, unknown=None)


def bridge(event: CanonicalEvent) -> str:
    """The body SQS delivers for an event the bus routed to the queue."""
    return json.dumps(
        {
            "version": "0",
            "detail-type": event.event_type,
            "source": "storewire",
            "detail": json.loads(event.model_dump_json()),
        }
    )


def test_the_bus_envelope_and_a_bare_event_read_alike() -> None:
    order = placed("1", [("L1", "SKU-A", 2)])

    from_bus = consumers.parse_record(bridge(order), READ_EVENTS)
    bare = consumers.parse_record(order.model_dump_json(), READ_EVENTS)

    assert isinstance(from_bus, OrderPlaced)
    assert from_bus == bare == order


def test_an_unmodelled_type_reads_as_the_envelope_or_is_refused() -> None:
    unknown = json.loads(payment("1").model_dump_json()) | {"event_type": "SomethingNew"}
    body = json.dumps(unknown)

    event = consumers.parse_record(body, READ_EVENTS)

    assert type(event) is CanonicalEvent
    assert event.event_type == "SomethingNew"
    with pytest.raises(MalformedPayload, match="SomethingNew v1"):
        consumers.parse_record(body, READ_KNOWN_EVENTS)


def test_an_envelope_only_type_is_not_read_past_its_envelope() -> None:
    # A PaymentConfirmed whose body a newer payment consumer shaped differently
    body = bridge(payment("1"))
    strict = consumers.parse_record
    envelope_only = consumers.by_type_and_version(EVENT_MODELS, envelope_only={"PaymentConfirmed"})

    assert type(strict(body, envelope_only)) is CanonicalEvent
    with pytest.raises(MalformedPayload):
        strict(body, READ_EVENTS)  # its data is not a PaymentConfirmed's


def test_claim_checked_data_is_loaded_from_the_store() -> None:
    order = placed("1", [("L1", "SKU-A", 2)])
    claims = InMemoryClaimCheckStore()
    ref = claims.put("claim-checks/x.json", order.data_json())

    event = consumers.parse_record(bridge(order.with_claim_check(ref)), READ_EVENTS, claims)

    assert event == order
    with pytest.raises(ConfigurationError, match="CLAIM_CHECK_BUCKET_NAME"):
        consumers.parse_record(bridge(order.with_claim_check(ref)), READ_EVENTS, None)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        "5",
        '"text"',
        json.dumps({"detail-type": "OrderPlaced", "detail": []}),
        json.dumps({"detail-type": "OrderPlaced"}),
        json.dumps({"event_type": "OrderPlaced", "event_version": "one"}),
        json.dumps({"event_type": "OrderPlaced", "event_version": 1, "email": "a@b.example"}),
    ],
)
def test_what_is_not_an_event_is_malformed(body: str) -> None:
    with pytest.raises(MalformedPayload, match="not a canonical event"):
        consumers.parse_record(body, READ_EVENTS)


def test_a_refusal_can_name_only_the_error_type() -> None:
    body = json.dumps({"event_type": "OrderPlaced", "event_version": 1, "email": "a@b.example"})

    with pytest.raises(MalformedPayload) as quoted:
        consumers.parse_record(body, READ_EVENTS)
    with pytest.raises(MalformedPayload) as unquoted:
        consumers.parse_record(body, READ_EVENTS, quote_errors=False)

    assert "event_id" in quoted.value.message  # pydantic's account of the missing fields
    assert unquoted.value.message == "not a canonical event: ValidationError"


class FailingDeadLetters:
    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        raise ConnectionError("SQS is down")


class Telemetry:
    def __init__(self) -> None:
        self.dead = 0

    def dead_lettered(self) -> None:
        self.dead += 1


class Logger:
    def __init__(self) -> None:
        self.errors: list[tuple[str, dict[str, Any]]] = []

    def error(self, message: str, *, extra: dict[str, Any]) -> None:
        self.errors.append((message, extra))


def test_a_dead_letter_carries_its_reason_and_is_counted() -> None:
    sink, telemetry, logger = DeadLetters(), Telemetry(), Logger()

    consumers.dead_letter(
        sink,
        "{}",
        "m-1",
        error_type="PermanentError",
        reason="unknown PaymentIntent",
        logger=logger,  # type: ignore[arg-type]
        telemetry=telemetry,  # type: ignore[arg-type]
    )

    assert sink.sent == [
        {
            "body": "{}",
            "error_type": "PermanentError",
            "reason": "unknown PaymentIntent",
            "message_id": "m-1",
        }
    ]
    assert telemetry.dead == 1
    assert logger.errors == [
        (
            "record sent to the DLQ",
            {
                "outcome": "dead_lettered",
                "error_type": "PermanentError",
                "reason": "unknown PaymentIntent",
            },
        )
    ]


def test_a_failed_dead_letter_send_raises_and_counts_nothing() -> None:
    telemetry, logger = Telemetry(), Logger()

    with pytest.raises(ConnectionError):
        consumers.dead_letter(
            FailingDeadLetters(),
            "{}",
            "m-1",
            error_type="PermanentError",
            reason="r",
            logger=logger,  # type: ignore[arg-type]
            telemetry=telemetry,  # type: ignore[arg-type]
        )

    assert telemetry.dead == 0
    assert logger.errors == []
