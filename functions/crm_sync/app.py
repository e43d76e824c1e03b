"""CRM sync consumer: SQS (from the bus) -> one HubSpot contact upsert per batch.

Thin on purpose. `storewire.batch.process_sqs_batch` decides the partial batch response, as
in the other consumers, but the work is done once for the whole batch first, because the
batch is what HubSpot is called with (coalesced: one input per contact, one call):

1. every record's body (the EventBridge event) is parsed into its canonical event; a record
   that does not parse is a permanent failure of its own;
2. `storewire.crm.sync_batch` runs once over the parsed events and answers a result per
   SQS message id;
3. `process_sqs_batch` then walks the records with a record handler that only *replays* each
   record's result: done -> nothing; retryable (HubSpot 429/5xx after the retries that fit in
   the Lambda's remaining time, an order not seen yet, a contact that changed meanwhile) ->
   raise, so the record is a batch item failure and SQS redelivers it; permanent (an email
   HubSpot refuses, a malformed event) -> sent to the DLQ at once with the error type and
   reason, then done. If that send fails, the record fails as usual (nothing is lost).

So the `batchItemFailures` are produced by the same machinery as everywhere else, one per
failed message id; if `sync_batch` itself breaks, every record of the batch fails.

The adapters are wired once per cold start (boto3 and httpx are imported only then); tests
pass `deps`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aws_lambda_powertools.logging import Logger
from pydantic import Field
from storewire import consumers
from storewire.batch import PartialItemFailureResponse, SqsRecord, process_sqs_batch
from storewire.config import EnvSettings
from storewire.crm import (
    CrmDeps,
    InDoubtWatch,
    InTransitCounter,
    ItemResult,
    Outcome,
    sync_batch,
)
from storewire.domain.events import EVENT_MODELS, CanonicalEvent
from storewire.errors import (
    ConfigurationError,
    MalformedPayload,
    RetryableError,
)
from storewire.observability import ConsumerTelemetry
from storewire.pii import PiiMaskingFormatter, install_root_masking
from storewire.ports import DeadLetterSink

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx
    from storewire.domain.crm import CrmGateway
    from storewire.http import Deadline, RetryPolicy

logger = Logger(service="crm_sync", logger_formatter=PiiMaskingFormatter())
telemetry = ConsumerTelemetry("crm_sync", logger)
install_root_masking()

READ_EVENTS = consumers.by_type_and_version(EVENT_MODELS)

DEADLINE_RESERVE_SECONDS = 3.0
"""Time kept back from the Lambda timeout for the bookkeeping after the HubSpot calls."""


# TODO(lead): move into storewire.config next to PaymentSettings (config.py is shared).
class CrmSettings(EnvSettings):
    """The environment of `crm_sync` (docs/crm.md, "Configuration")."""

    crm_table_name: str = Field(alias="CRM_TABLE_NAME", min_length=1)
    orders_table_name: str = Field(default="", alias="ORDERS_TABLE_NAME")
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    claim_check_bucket_name: str = Field(default="", alias="CLAIM_CHECK_BUCKET_NAME")
    hubspot_access_token_secret_id: str = Field(
        alias="HUBSPOT_ACCESS_TOKEN_SECRET_ID", min_length=1
    )
    hubspot_api_base_url: str = Field(
        default="https://api.hubapi.com", alias="HUBSPOT_API_BASE_URL", pattern=r"^https?://"
    )
    crm_currency: str = Field(default="USD", alias="CRM_CURRENCY", pattern=r"^[A-Z]{3}$")
    http_connect_timeout: float = Field(default=3.05, alias="HTTP_CONNECT_TIMEOUT", gt=0)
    http_read_timeout: float = Field(default=10.0, alias="HTTP_READ_TIMEOUT", gt=0)
    http_max_attempts: int = Field(default=4, alias="HTTP_MAX_ATTEMPTS", ge=1, le=10)

    settings_for: ClassVar[str] = "crm_sync environment"


@dataclass(frozen=True)
class HandlerDeps:
    crm: CrmDeps
    dead_letters: DeadLetterSink
    deadline: Deadline | None = None


_deps: HandlerDeps | None = None


def _wire(settings: CrmSettings) -> HandlerDeps:
    """The real adapters, built from the environment's settings."""
    import boto3
    import httpx
    from storewire.adapters.dynamodb_crm import DynamoDBCrmStore
    from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
    from storewire.adapters.s3_claim_check import S3ClaimCheckStore
    from storewire.adapters.secrets import SecretsManagerProvider
    from storewire.adapters.sqs_dead_letters import SqsDeadLetterSink
    from storewire.http import Deadline, RetryPolicy, default_timeout, set_observer

    set_observer(telemetry.observe_http)

    secrets = SecretsManagerProvider(boto3.client("secretsmanager"))
    token = secrets.get(settings.hubspot_access_token_secret_id).get("current", "")
    if not token:
        raise ConfigurationError("the HubSpot access token secret has no 'current' value")
    deadline = Deadline()
    dynamodb = boto3.client("dynamodb")
    return HandlerDeps(
        crm=CrmDeps(
            store=DynamoDBCrmStore(dynamodb, settings.crm_table_name),
            crm=hubspot_gateway(
                httpx.Client(
                    timeout=default_timeout(
                        settings.http_connect_timeout, settings.http_read_timeout
                    )
                ),
                token,
                base_url=settings.hubspot_api_base_url,
                policy=RetryPolicy(max_attempts=settings.http_max_attempts),
                deadline=deadline,
            ),
            orders=(
                DynamoDBOrderStore(dynamodb, settings.orders_table_name)
                if settings.orders_table_name
                else None
            ),
            claim_checks=(
                S3ClaimCheckStore(boto3.client("s3"), settings.claim_check_bucket_name)
                if settings.claim_check_bucket_name
                else None
            ),
            reporting_currency=settings.crm_currency,
        ),
        dead_letters=SqsDeadLetterSink(
            boto3.client("sqs"), settings.dead_letter_queue_url, consumer="crm_sync"
        ),
        deadline=deadline,
    )


def hubspot_gateway(
    client: httpx.Client,
    token: str,
    *,
    base_url: str,
    policy: RetryPolicy,
    deadline: Deadline,
    sleep: Callable[[float], None] = time.sleep,
) -> CrmGateway:
    """HubSpot behind the shared HTTP client, its upserts marked `in_doubt` when an attempt
    failed in transit (a timed-out attempt may still be applied after a newer push: see
    `storewire.crm.InDoubtWatch`). Every attempt still feeds the `ThirdPartyLatency` metric."""
    from storewire.adapters.hubspot_crm import HubSpotCrm, describe_hubspot_error
    from storewire.http import HttpClient

    in_transit = InTransitCounter(forward=telemetry.observe_http)
    http = HttpClient(
        client,
        service="hubspot",
        policy=policy,
        deadline=deadline,
        describe_error=describe_hubspot_error,
        sleep=sleep,
        observer=in_transit,
    )
    return InDoubtWatch(HubSpotCrm(http, token, base_url=base_url), in_transit)


def _default_deps() -> HandlerDeps:
    global _deps
    if _deps is None:
        _deps = _wire(CrmSettings.from_env())
    return _deps


def parse_record(body: str) -> CanonicalEvent:
    """The canonical event in an SQS record's body (an EventBridge event); else malformed.

    Every routed type has a model in `EVENT_MODELS` (`LabelCreated` included); an unknown
    type or version is read as the bare envelope and ignored by `sync_batch`.
    """
    return consumers.parse_record(body, READ_EVENTS)


def sync_records(records: list[dict[str, Any]], deps: CrmDeps) -> dict[str, ItemResult]:
    """The result of every record of the batch, by SQS message id (one `sync_batch` call)."""
    results: dict[str, ItemResult] = {}
    events: dict[str, CanonicalEvent] = {}
    for raw in records:
        record = SqsRecord(raw)
        try:
            events[record.message_id] = parse_record(record.body)
        except MalformedPayload as error:
            results[record.message_id] = ItemResult(Outcome.PERMANENT, error.message, error)
    if events:
        try:
            results.update(sync_batch(events, deps))
        except Exception as error:  # a bug or an unexpected outage: retry the whole batch
            logger.exception("CRM sync of the batch failed")
            failure = RetryableError(f"CRM sync failed: {type(error).__name__}")
            for message_id in events:
                results[message_id] = ItemResult(Outcome.RETRY, failure.message, failure)
    return results


def replay(record: SqsRecord, result: ItemResult | None, deps: HandlerDeps) -> str:
    """One record's part of the partial batch response, from its precomputed result."""
    telemetry.begin_record(record.message_id)
    telemetry.bind_body(record.body)
    if result is None:
        raise RetryableError("no result for this record")
    if result.outcome is Outcome.RETRY:
        logger.warning("record will be retried", extra={"error_type": result.error_type})
        raise result.error or RetryableError(result.reason)
    if result.outcome is Outcome.PERMANENT:
        consumers.dead_letter(
            deps.dead_letters,
            record.body,
            record.message_id,
            error_type=result.error_type or "PermanentError",
            reason=result.reason,
            logger=logger,
            telemetry=telemetry,
        )
        return "dead_lettered"
    telemetry.processed(str(result.outcome))
    logger.info(
        f"crm {result.outcome}",
        extra={"outcome": str(result.outcome), "contact_id": result.contact_id},
    )
    return str(result.outcome)


def lambda_handler(
    event: dict[str, Any], context: Any, deps: HandlerDeps | None = None
) -> PartialItemFailureResponse:
    """Process one SQS batch: one CRM sync, then partial batch responses per record."""
    logger.clear_state()
    wired = deps or _default_deps()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if wired.deadline is not None and callable(remaining):
        wired.deadline.reset(max(0.0, remaining() / 1000 - DEADLINE_RESERVE_SECONDS))
    results = sync_records(list(event.get("Records") or []), wired.crm)
    return telemetry.finish_batch(
        process_sqs_batch(
            event, lambda record: replay(record, results.get(record.message_id), wired), logger
        )
    )
