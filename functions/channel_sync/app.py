"""Channel sync consumer: SQS (StockLevelChanged from the bus) -> available set on the channels.

Thin on purpose: the batch is parsed once, coalesced (`storewire.channels.plan_batch`: per
SKU only the record with the newest level is pushed; the older ones are reported done, as
superseded), and each remaining record is one idempotent unit of work
(`storewire.channels.sync_level`). `storewire.batch.process_sqs_batch` reports
partial batch failures, so one bad record never fails its batch.

What happens to a record, by the type of what it raised:

* nothing -> done (deleted from the queue); superseded records too;
* `RetryableError` (the channel's 5xx/429/THROTTLED after the client's retries, a quantity
  that kept changing under every compare-and-set, DynamoDB failing) or anything unexpected
  -> a batch item failure: SQS redelivers it after the visibility timeout (listings already
  pushed skip it: their recorded version guards them), and its redrive policy moves it to
  the DLQ after MaxReceiveCount;
* `PermanentError` or a malformed event (an unknown inventory item, an item not stocked at
  the mapped location, a bad token, configuration) -> sent to the DLQ at once with the
  error type and reason, then reported done. Without a DLQ URL (or if that send fails) the
  record fails as usual (nothing is lost).

The adapters are wired once per cold start (boto3 and httpx are imported only then); tests
pass `deps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import Logger
from storewire import consumers
from storewire.batch import PartialItemFailureResponse, SqsRecord, process_sqs_batch
from storewire.channels import BatchPlan, ChannelDeps, ChannelResult, plan_batch, sync_level
from storewire.config import ChannelSyncSettings
from storewire.domain.events import EVENT_MODELS, CanonicalEvent
from storewire.errors import (
    ConfigurationError,
    InvalidWebhook,
    MalformedPayload,
    PermanentError,
    StorewireError,
)
from storewire.observability import ConsumerTelemetry
from storewire.pii import PiiMaskingFormatter, install_root_masking
from storewire.ports import ClaimCheckStore, DeadLetterSink

if TYPE_CHECKING:
    from storewire.http import Deadline  # httpx is imported only when wiring (cold start)

logger = Logger(service="channel_sync", logger_formatter=PiiMaskingFormatter())
telemetry = ConsumerTelemetry("channel_sync", logger)
install_root_masking()

READ_EVENTS = consumers.by_type_and_version(EVENT_MODELS)

DEADLINE_RESERVE_SECONDS = 3.0
"""Time kept back from the Lambda timeout for recording and reporting after outbound calls."""


@dataclass(frozen=True)
class HandlerDeps:
    channels: ChannelDeps
    claim_checks: ClaimCheckStore | None = None
    dead_letters: DeadLetterSink | None = None
    deadline: Deadline | None = None


_deps: HandlerDeps | None = None


def _wire(settings: ChannelSyncSettings) -> HandlerDeps:
    """The real adapters, built from the environment's settings."""
    import boto3
    import httpx
    from storewire.adapters.dynamodb_channels import DynamoDBChannelListingStore
    from storewire.adapters.s3_claim_check import S3ClaimCheckStore
    from storewire.adapters.secrets import SecretsManagerProvider
    from storewire.adapters.shopify_admin import (
        ShopifyAdminGateway,
        ShopifyChannelInventory,
        describe_shopify_error,
    )
    from storewire.adapters.sqs_dead_letters import SqsDeadLetterSink
    from storewire.http import Deadline, HttpClient, RetryPolicy, default_timeout, set_observer

    set_observer(telemetry.observe_http)

    secrets = SecretsManagerProvider(boto3.client("secretsmanager"))
    deadline = Deadline()

    def token(refresh: bool = False) -> str:
        # Cached by the provider (5 min); re-read at once after a 401 (a rotated token).
        secret = secrets.get(settings.shopify_admin_token_secret_id, force_fetch=refresh)
        value = secret.get("current") or ""
        if not value:
            raise ConfigurationError("the Shopify Admin token secret has no 'current' value")
        return value

    shopify = ShopifyAdminGateway(
        HttpClient(
            httpx.Client(
                timeout=default_timeout(settings.http_connect_timeout, settings.http_read_timeout)
            ),
            service="shopify_admin",
            policy=RetryPolicy(max_attempts=settings.http_max_attempts),
            deadline=deadline,
            describe_error=describe_shopify_error,
        ),
        token,
        base_url=settings.shopify_admin_base_url or None,
        api_version=settings.shopify_api_version,
    )
    return HandlerDeps(
        channels=ChannelDeps(
            listings=DynamoDBChannelListingStore(
                boto3.client("dynamodb"), settings.channel_listings_table_name
            ),
            channels={"shopify": ShopifyChannelInventory(shopify)},
            compare_attempts=settings.compare_attempts,
        ),
        claim_checks=(
            S3ClaimCheckStore(boto3.client("s3"), settings.claim_check_bucket_name)
            if settings.claim_check_bucket_name
            else None
        ),
        dead_letters=(
            SqsDeadLetterSink(
                boto3.client("sqs"), settings.dead_letter_queue_url, consumer="channel_sync"
            )
            if settings.dead_letter_queue_url
            else None
        ),
        deadline=deadline,
    )


def _default_deps() -> HandlerDeps:
    global _deps
    if _deps is None:
        _deps = _wire(ChannelSyncSettings.from_env())
    return _deps


def parse_record(body: str, claim_checks: ClaimCheckStore | None) -> CanonicalEvent:
    """The canonical event in an SQS record's body, its claim-checked data loaded."""
    return consumers.parse_record(body, READ_EVENTS, claim_checks)


@dataclass(frozen=True)
class Batch:
    """The batch parsed once: events by message id, and the coalescing plan."""

    events: dict[str, CanonicalEvent]
    plan: BatchPlan


def prepare(event: dict[str, Any], claim_checks: ClaimCheckStore | None) -> Batch:
    """Parse every record and coalesce; a record that does not parse fails in its turn."""
    events: dict[str, CanonicalEvent] = {}
    for raw in event.get("Records") or []:
        try:
            events[str(raw["messageId"])] = parse_record(str(raw["body"]), claim_checks)
        except (StorewireError, KeyError):
            continue
    try:
        plan = plan_batch(list(events.items()))
    except MalformedPayload:
        plan = BatchPlan(push={}, superseded={})
    return Batch(events=events, plan=plan)


def process_record(record: SqsRecord, deps: HandlerDeps, batch: Batch) -> ChannelResult | None:
    """One record: pushed, superseded, failed (raised: SQS retries), or dead-lettered."""
    telemetry.begin_record(record.message_id)
    try:
        winner = batch.plan.superseded.get(record.message_id)
        if winner is not None:
            logger.info("level superseded in this batch", extra={"superseded_by": winner})
            telemetry.processed("superseded")
            return ChannelResult(sku=None, version=None, outcome="superseded")
        event = batch.events.get(record.message_id) or parse_record(record.body, deps.claim_checks)
        telemetry.bind_event(event)
        result = sync_level(event, deps.channels)
    except (PermanentError, InvalidWebhook) as error:
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
    telemetry.processed(result.outcome)
    logger.info(
        f"channel sync {result.outcome}",
        extra={
            "outcome": result.outcome,
            "sku": result.sku,
            "version": result.version,
            "pushes": [(p.listing, str(p.outcome), p.quantity) for p in result.pushes],
        },
    )
    return result


def lambda_handler(
    event: dict[str, Any], context: Any, deps: HandlerDeps | None = None
) -> PartialItemFailureResponse:
    """Process one SQS batch with partial batch responses."""
    logger.clear_state()
    wired = deps or _default_deps()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if wired.deadline is not None and callable(remaining):
        wired.deadline.reset(max(0.0, remaining() / 1000 - DEADLINE_RESERVE_SECONDS))
    batch = prepare(event, wired.claim_checks)
    return telemetry.finish_batch(
        process_sqs_batch(event, lambda record: process_record(record, wired, batch), logger)
    )
