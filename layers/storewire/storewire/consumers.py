"""What every SQS consumer does alike: read the canonical event out of a record, and send a
record that retrying cannot fix to the dead-letter queue with its reason.

A record's body is the EventBridge event the bus delivered (its `detail` is the canonical
event) or, from a redrive or a test, the bare canonical event. Each consumer says which
model reads which event type (`ModelChooser`): one it does not model is read as the bare
envelope and ignored downstream, or refused, as the consumer decides. An event whose data
was claim-checked (over EventBridge's 256 KB) has its data loaded back from the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from storewire.domain.events import CanonicalEvent
from storewire.errors import ConfigurationError, MalformedPayload

if TYPE_CHECKING:
    from aws_lambda_powertools.logging import Logger

    from storewire.observability import ConsumerTelemetry
    from storewire.ports import ClaimCheckStore, DeadLetterSink

ModelChooser = Callable[[str, int], type[CanonicalEvent]]
"""The model that reads an event of a type and version (or raises `MalformedPayload`)."""


def by_type_and_version(
    models: Mapping[tuple[str, int], type[CanonicalEvent]],
    *,
    unknown: type[CanonicalEvent] | None = CanonicalEvent,
    envelope_only: Collection[str] = (),
) -> ModelChooser:
    """Read each event with its model in `models`; an event it lacks with `unknown` (or
    refused as malformed when `unknown` is None); a type in `envelope_only` as the bare
    envelope, so that a change to a body the consumer does not read cannot stop it."""

    def choose(event_type: str, version: int) -> type[CanonicalEvent]:
        if event_type in envelope_only:
            return CanonicalEvent
        model = models.get((event_type, version), unknown)
        if model is None:
            raise MalformedPayload(f"not an event this consumer handles: {event_type} v{version}")
        return model

    return choose


def parse_record(
    body: str,
    choose_model: ModelChooser,
    claim_checks: ClaimCheckStore | None = None,
    *,
    quote_errors: bool = True,
) -> CanonicalEvent:
    """The canonical event in an SQS record's body, its claim-checked data loaded; else
    `MalformedPayload`. With `quote_errors=False` the reason names only the error's type
    (for consumers whose events carry personal data that a validation message would quote).
    """
    try:
        envelope = json.loads(body)
        detail: dict[str, Any] = envelope["detail"] if "detail-type" in envelope else envelope
        if not isinstance(detail, dict):
            raise TypeError(f"the event is a JSON {type(detail).__name__}, not an object")
        model = choose_model(str(detail.get("event_type")), int(detail.get("event_version") or 0))
        if detail.get("claim_check"):
            if claim_checks is None:
                raise ConfigurationError("a claim-checked event, but no CLAIM_CHECK_BUCKET_NAME")
            ref = CanonicalEvent.model_validate(detail).claim_check
            assert ref is not None
            detail = {**detail, "data": json.loads(claim_checks.load(ref)), "claim_check": None}
        return model.model_validate(detail)
    except (ValueError, KeyError, TypeError) as error:
        reason = str(error)[:300] if quote_errors else type(error).__name__
        raise MalformedPayload(f"not a canonical event: {reason}") from None


def dead_letter(
    sink: DeadLetterSink,
    body: str,
    message_id: str,
    *,
    error_type: str,
    reason: str,
    logger: Logger,
    telemetry: ConsumerTelemetry | None = None,
) -> None:
    """Send a record that retrying cannot fix to the DLQ with its reason, and say so. If the
    send raises, the record fails as usual and SQS's redrive policy keeps it."""
    sink.send(body, error_type=error_type, reason=reason, message_id=message_id)
    logger.error(
        "record sent to the DLQ",
        extra={"outcome": "dead_lettered", "error_type": error_type, "reason": reason},
    )
    if telemetry is not None:
        telemetry.dead_lettered()
