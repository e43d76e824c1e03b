"""Label creation consumer: SQS (from the bus) -> one label per order -> LabelCreated.

Thin on purpose: each SQS record's body is the EventBridge event; its `detail` is parsed
into the canonical event (claim-checked data is loaded from S3 first) and handed to
`storewire.labels.handle_label_event`, one idempotent unit of work per record.
`storewire.batch.process_sqs_batch` reports partial batch failures, so one bad record never
fails its batch.

What happens to a record, by the type of what it raised:

Its queue carries StockCommitted (buy the label), OrderPlaced / OrderUpdated /
OrderCancelled (the shipping snapshot) and ShipmentStatusChanged (tracking).

* nothing -> done (deleted from the queue);
* `RetryableError` (shipping details not there yet, another attempt holds the label lease,
  carrier 5xx/429/timeouts after the client's retries, DynamoDB or the bus failing) or
  anything unexpected -> a batch item failure: SQS redelivers it after the visibility
  timeout, and its redrive policy moves it to the DLQ after MaxReceiveCount;
* `PermanentError` (the carrier refused the address, no rate fits the policy, a bad API
  key, configuration) or a malformed event -> sent to the DLQ at once with the error type
  and reason, then reported done. Without a DLQ URL (or if that send fails) the record
  fails as usual (nothing is lost).

The adapters are wired once per cold start (boto3 and httpx are imported only then); tests
pass `deps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aws_lambda_powertools.logging import Logger
from pydantic import Field
from storewire import consumers
from storewire.batch import PartialItemFailureResponse, SqsRecord, process_sqs_batch
from storewire.config import EnvSettings
from storewire.domain.events import EVENT_TYPES, Address, CanonicalEvent
from storewire.domain.shipments import ParcelPolicy, RatePolicy
from storewire.errors import ConfigurationError, InvalidWebhook, PermanentError
from storewire.labels import LabelDeps, LabelPolicies, LabelResult, handle_label_event
from storewire.observability import ConsumerTelemetry
from storewire.pii import PiiMaskingFormatter, install_root_masking
from storewire.ports import ClaimCheckStore, DeadLetterSink

if TYPE_CHECKING:  # storewire.http imports httpx: only the wiring needs it (cold start)
    from storewire.http import Deadline

logger = Logger(service="label_creation", logger_formatter=PiiMaskingFormatter())
telemetry = ConsumerTelemetry("label_creation", logger)
install_root_masking()

DEADLINE_RESERVE_SECONDS = 3.0
"""Time kept back from the Lambda timeout for recording and reporting after outbound calls."""


# TODO(lead): move into storewire.config next to IngestSettings / PaymentSettings.
class LabelSettings(EnvSettings):
    """The environment of `label_creation` (docs/labels.md, "Configuration").

    `SHIP_FROM_ADDRESS`, `LABEL_RATE_POLICY` and `DEFAULT_PARCEL` are JSON objects.
    """

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    labels_table_name: str = Field(alias="LABELS_TABLE_NAME", min_length=1)
    orders_table_name: str = Field(default="", alias="ORDERS_TABLE_NAME")
    claim_check_bucket_name: str = Field(default="", alias="CLAIM_CHECK_BUCKET_NAME")
    dead_letter_queue_url: str = Field(default="", alias="DEAD_LETTER_QUEUE_URL")
    easypost_api_key_secret_id: str = Field(alias="EASYPOST_API_KEY_SECRET_ID", min_length=1)
    easypost_api_base_url: str = Field(
        default="https://api.easypost.com", alias="EASYPOST_API_BASE_URL", pattern=r"^https?://"
    )
    ship_from_address: Address = Field(alias="SHIP_FROM_ADDRESS")
    label_rate_policy: RatePolicy = Field(default_factory=RatePolicy, alias="LABEL_RATE_POLICY")
    default_parcel: ParcelPolicy = Field(default_factory=ParcelPolicy, alias="DEFAULT_PARCEL")
    label_lease_seconds: int = Field(default=120, alias="LABEL_LEASE_SECONDS", ge=10, le=3600)
    http_connect_timeout: float = Field(default=3.05, alias="HTTP_CONNECT_TIMEOUT", gt=0)
    http_read_timeout: float = Field(default=10.0, alias="HTTP_READ_TIMEOUT", gt=0)
    http_max_attempts: int = Field(default=4, alias="HTTP_MAX_ATTEMPTS", ge=1, le=10)

    settings_for: ClassVar[str] = "label_creation environment"
    json_settings: ClassVar[tuple[str, ...]] = (
        "SHIP_FROM_ADDRESS",
        "LABEL_RATE_POLICY",
        "DEFAULT_PARCEL",
    )

    def policies(self) -> LabelPolicies:
        return LabelPolicies(
            self.ship_from_address,
            rates=self.label_rate_policy,
            parcel=self.default_parcel,
            lease_seconds=self.label_lease_seconds,
        )


@dataclass(frozen=True)
class HandlerDeps:
    labels: LabelDeps
    claim_checks: ClaimCheckStore | None = None
    dead_letters: DeadLetterSink | None = None
    deadline: Deadline | None = None


_deps: HandlerDeps | None = None


def _wire(settings: LabelSettings) -> HandlerDeps:
    """The real adapters, built from the environment's settings."""
    import boto3
    import httpx
    from storewire.adapters.dynamodb_labels import DynamoDBLabelStore
    from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
    from storewire.adapters.easypost_carrier import EasyPostCarrier, describe_easypost_error
    from storewire.adapters.eventbridge import EventBridgePublisher
    from storewire.adapters.s3_claim_check import S3ClaimCheckStore
    from storewire.adapters.secrets import SecretsManagerProvider
    from storewire.adapters.shopify_admin import storefront_fulfilment
    from storewire.adapters.sqs_dead_letters import SqsDeadLetterSink
    from storewire.config import StorefrontSettings
    from storewire.http import Deadline, HttpClient, RetryPolicy, default_timeout, set_observer

    set_observer(telemetry.observe_http)

    secrets = SecretsManagerProvider(boto3.client("secretsmanager"))
    api_key = secrets.get(settings.easypost_api_key_secret_id).get("current") or ""
    if not api_key:
        raise ConfigurationError("the EasyPost API key secret has no 'current' value")
    deadline = Deadline()
    http = HttpClient(
        httpx.Client(
            timeout=default_timeout(settings.http_connect_timeout, settings.http_read_timeout)
        ),
        service="easypost",
        policy=RetryPolicy(max_attempts=settings.http_max_attempts),
        deadline=deadline,
        describe_error=describe_easypost_error,
    )
    dynamodb = boto3.client("dynamodb")
    return HandlerDeps(
        labels=LabelDeps(
            carrier=EasyPostCarrier(http, api_key, base_url=settings.easypost_api_base_url),
            labels=DynamoDBLabelStore(dynamodb, settings.labels_table_name),
            publisher=EventBridgePublisher(boto3.client("events"), settings.event_bus_name),
            policies=settings.policies(),
            orders=(
                DynamoDBOrderStore(dynamodb, settings.orders_table_name)
                if settings.orders_table_name
                else None
            ),
            # Shopify fulfillmentCreate with carrier + tracking (adapters/shopify_admin.py),
            # when SHOPIFY_ADMIN_TOKEN_SECRET_ID is set; else None: the "fulfilment" step is
            # skipped and not marked done, so nothing pretends it was pushed.
            fulfilment=storefront_fulfilment(StorefrontSettings.from_env(), secrets, deadline),
        ),
        claim_checks=(
            S3ClaimCheckStore(boto3.client("s3"), settings.claim_check_bucket_name)
            if settings.claim_check_bucket_name
            else None
        ),
        dead_letters=(
            SqsDeadLetterSink(
                boto3.client("sqs"), settings.dead_letter_queue_url, consumer="label_creation"
            )
            if settings.dead_letter_queue_url
            else None
        ),
        deadline=deadline,
    )


def _default_deps() -> HandlerDeps:
    global _deps
    if _deps is None:
        _deps = _wire(LabelSettings.from_env())
    return _deps


def read_by_type(event_type: str, version: int) -> type[CanonicalEvent]:
    """The model of each event type this queue carries (StockCommitted, the order events,
    ShipmentStatusChanged); anything else parses as the bare envelope and is ignored."""
    return EVENT_TYPES.get(event_type, CanonicalEvent)


def parse_record(body: str, claim_checks: ClaimCheckStore | None) -> CanonicalEvent:
    """The canonical event in an SQS record's body, its claim-checked data loaded."""
    return consumers.parse_record(body, read_by_type, claim_checks)


def process_record(record: SqsRecord, deps: HandlerDeps) -> LabelResult | None:
    """One record: handled, failed (raised: SQS retries), or dead-lettered at once."""
    telemetry.begin_record(record.message_id)
    try:
        event = parse_record(record.body, deps.claim_checks)
        telemetry.bind_event(event)
        result = handle_label_event(event, deps.labels)
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
    telemetry.processed(result.action)
    logger.info(
        f"label event {result.action}",
        extra={"outcome": result.action, "published": list(result.published)},
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
    return telemetry.finish_batch(
        process_sqs_batch(event, lambda record: process_record(record, wired), logger)
    )
