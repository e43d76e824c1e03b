"""Stock adjustment consumer: SQS (from the bus) -> ledger moves -> stock events on the bus.

Thin on purpose: each SQS record's body is the EventBridge event; its `detail` is parsed
into the canonical event (claim-checked data is loaded from S3 first) and handed to
`storewire.stock.handle_event`, one idempotent unit of work per record.
`storewire.batch.process_sqs_batch` reports partial batch failures, so one bad record never
fails its batch.

What happens to a record, by the type of what it raised:

* nothing -> done (deleted from the queue);
* `RetryableError` (`PrerequisiteMissing`: a payment before its reservation; a DynamoDB or
  bus failure; contention that outlasted the re-plans) or anything unexpected -> a batch
  item failure: SQS redelivers it after the visibility timeout, and its redrive policy
  moves it to the DLQ after MaxReceiveCount;
* `PermanentError` or `MalformedPayload` (malformed event, a claim check that does not
  verify, configuration) -> sent to the DLQ at once with the error type and reason, then
  reported done. If that send fails, the record fails as usual (nothing is lost).

The adapters are wired once per cold start (boto3 is imported only then); tests pass `deps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.logging import Logger
from storewire import consumers
from storewire.batch import PartialItemFailureResponse, SqsRecord, process_sqs_batch
from storewire.config import StockSettings
from storewire.domain.events import EVENT_MODELS, CanonicalEvent
from storewire.errors import MalformedPayload, PermanentError
from storewire.observability import ConsumerTelemetry
from storewire.pii import PiiMaskingFormatter, install_root_masking
from storewire.ports import ClaimCheckStore, DeadLetterSink
from storewire.stock import StockDeps, StockResult, handle_event

logger = Logger(service="stock_adjustment", logger_formatter=PiiMaskingFormatter())
install_root_masking()
telemetry = ConsumerTelemetry("stock_adjustment", logger)


@dataclass(frozen=True)
class HandlerDeps:
    stock: StockDeps
    claim_checks: ClaimCheckStore | None = None
    dead_letters: DeadLetterSink | None = None


_deps: HandlerDeps | None = None

ENVELOPE_ONLY = frozenset({"PaymentConfirmed", "PaymentFailed"})
"""Stock reads only the order id of these: their bodies belong to payment confirmation, and
a change there must not stop stock from committing or releasing."""

READ_EVENTS = consumers.by_type_and_version(EVENT_MODELS, envelope_only=ENVELOPE_ONLY)


def _wire(settings: StockSettings) -> HandlerDeps:
    """The real adapters, built from the environment's settings."""
    import boto3
    from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
    from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
    from storewire.adapters.eventbridge import EventBridgePublisher
    from storewire.adapters.s3_claim_check import S3ClaimCheckStore
    from storewire.adapters.sqs_dead_letters import SqsDeadLetterSink

    dynamodb = boto3.client("dynamodb")
    return HandlerDeps(
        stock=StockDeps(
            store=DynamoDBStockStore(
                dynamodb, settings.inventory_table_name, default_location=settings.default_location
            ),
            orders=DynamoDBOrderStore(dynamodb, settings.orders_table_name),
            publisher=EventBridgePublisher(boto3.client("events"), settings.event_bus_name),
        ),
        claim_checks=(
            S3ClaimCheckStore(boto3.client("s3"), settings.claim_check_bucket_name)
            if settings.claim_check_bucket_name
            else None
        ),
        dead_letters=(
            SqsDeadLetterSink(
                boto3.client("sqs"), settings.dead_letter_queue_url, consumer="stock_adjustment"
            )
            if settings.dead_letter_queue_url
            else None
        ),
    )


def _default_deps() -> HandlerDeps:
    global _deps
    if _deps is None:
        _deps = _wire(StockSettings.from_env())
    return _deps


def parse_record(body: str, claim_checks: ClaimCheckStore | None) -> CanonicalEvent:
    """The canonical event in an SQS record's body, its claim-checked data loaded."""
    return consumers.parse_record(body, READ_EVENTS, claim_checks)


def process_record(record: SqsRecord, deps: HandlerDeps) -> StockResult | None:
    """One record: handled, failed (raised: SQS retries), or dead-lettered at once."""
    telemetry.begin_record(record.message_id)
    try:
        event = parse_record(record.body, deps.claim_checks)
        telemetry.bind_event(event)
        result = handle_event(event, deps.stock)
    except (PermanentError, MalformedPayload) as error:
        if deps.dead_letters is None:
            raise
        consumers.dead_letter(
            deps.dead_letters,
            record.body,
            record.message_id,
            error_type=type(error).__name__,
            reason=error.message,
            logger=logger,
            telemetry=telemetry,
        )
        return None
    telemetry.bind_order(result.order_id)
    telemetry.processed(result.outcome)
    logger.info(
        f"stock {result.outcome}",
        extra={
            "outcome": result.outcome,
            "order_id": result.order_id,
            "published": [e.event_id for e in result.events],
        },
    )
    return result


def lambda_handler(
    event: dict[str, Any], context: Any, deps: HandlerDeps | None = None
) -> PartialItemFailureResponse:
    """Process one SQS batch with partial batch responses."""
    logger.clear_state()
    wired = deps or _default_deps()
    return telemetry.finish_batch(
        process_sqs_batch(event, lambda record: process_record(record, wired), logger)
    )
