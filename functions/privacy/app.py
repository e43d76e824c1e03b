"""Privacy consumer: Shopify's compliance requests carried out over every table and object.

SQS (from the bus: `CustomerDataRequested`, `CustomerRedactionRequested`,
`ShopRedactionRequested`) -> `storewire.privacy`, one record at a time with
`storewire.batch.process_sqs_batch`. A retryable failure (a table, the bucket or HubSpot
unavailable; an item that changed while it was being erased) fails the record and SQS
redelivers it: every step is idempotent, so a redelivery finishes the work and does nothing
twice. A record that cannot be a privacy request (malformed) is dead-lettered at once with its
reason.

Its own function rather than a step of CRM sync: it reads and writes every table of the
stack and the whole claim-check bucket, permissions no other consumer should hold, and a
scan of every table must not delay the hot path's batches. The events carry an email:
nothing here logs an event, only ids and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from aws_lambda_powertools.logging import Logger
from pydantic import Field
from storewire import consumers
from storewire.batch import PartialItemFailureResponse, SqsRecord, process_sqs_batch
from storewire.config import EnvSettings
from storewire.domain.events import EVENT_MODELS, CanonicalEvent
from storewire.errors import ConfigurationError, MalformedPayload, PermanentError
from storewire.pii import PiiMaskingFormatter, install_root_masking
from storewire.ports import DeadLetterSink
from storewire.privacy import PrivacyDeps, PrivacyResult, handle_privacy_event

logger = Logger(service="privacy", logger_formatter=PiiMaskingFormatter())
install_root_masking()

READ_KNOWN_EVENTS = consumers.by_type_and_version(EVENT_MODELS, unknown=None)


class PrivacySettings(EnvSettings):
    """The environment of `privacy` (docs/privacy.md, "Configuration")."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    claim_check_bucket_name: str = Field(alias="CLAIM_CHECK_BUCKET_NAME", min_length=1)
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    orders_table_name: str = Field(alias="ORDERS_TABLE_NAME", min_length=1)
    crm_table_name: str = Field(default="", alias="CRM_TABLE_NAME")
    labels_table_name: str = Field(default="", alias="LABELS_TABLE_NAME")
    inventory_table_name: str = Field(default="", alias="INVENTORY_TABLE_NAME")
    dedupe_table_name: str = Field(default="", alias="DEDUPE_TABLE_NAME")
    channels_table_name: str = Field(default="", alias="CHANNELS_TABLE_NAME")
    hubspot_access_token_secret_id: str = Field(default="", alias="HUBSPOT_ACCESS_TOKEN_SECRET_ID")
    hubspot_api_base_url: str = Field(
        default="https://api.hubapi.com", alias="HUBSPOT_API_BASE_URL", pattern=r"^https?://"
    )

    settings_for: ClassVar[str] = "privacy environment"

    def tables(self) -> dict[str, str]:
        return {
            "orders": self.orders_table_name,
            "crm": self.crm_table_name,
            "labels": self.labels_table_name,
            "inventory": self.inventory_table_name,
            "dedupe": self.dedupe_table_name,
            "channels": self.channels_table_name,
        }


@dataclass(frozen=True)
class HandlerDeps:
    privacy: PrivacyDeps
    dead_letters: DeadLetterSink | None = None


_deps: HandlerDeps | None = None


def _wire(settings: PrivacySettings) -> HandlerDeps:
    """The real adapters, built from the environment's settings."""
    import boto3
    from storewire.adapters.eventbridge import EventBridgePublisher
    from storewire.adapters.privacy_store import AwsPrivacyStore
    from storewire.adapters.sqs_dead_letters import SqsDeadLetterSink

    crm = None
    if settings.hubspot_access_token_secret_id:
        import httpx
        from storewire.adapters.hubspot_crm import HubSpotCrm, describe_hubspot_error
        from storewire.adapters.secrets import SecretsManagerProvider
        from storewire.http import HttpClient, RetryPolicy, default_timeout

        secrets = SecretsManagerProvider(boto3.client("secretsmanager"))
        token = secrets.get(settings.hubspot_access_token_secret_id).get("current", "")
        if not token:
            raise ConfigurationError("the HubSpot access token secret has no 'current' value")
        http = HttpClient(
            httpx.Client(timeout=default_timeout(3.05, 10.0)),
            service="hubspot",
            policy=RetryPolicy(max_attempts=4),
            describe_error=describe_hubspot_error,
        )
        crm = HubSpotCrm(http, token, base_url=settings.hubspot_api_base_url)
    return HandlerDeps(
        privacy=PrivacyDeps(
            store=AwsPrivacyStore(
                boto3.client("dynamodb"),
                boto3.client("s3"),
                settings.tables(),
                settings.claim_check_bucket_name,
            ),
            publisher=EventBridgePublisher(boto3.client("events"), settings.event_bus_name),
            crm=crm,
        ),
        dead_letters=SqsDeadLetterSink(
            boto3.client("sqs"), settings.dead_letter_queue_url, consumer="privacy"
        ),
    )


def _default_deps() -> HandlerDeps:
    global _deps
    if _deps is None:
        _deps = _wire(PrivacySettings.from_env())
    return _deps


def parse_record(body: str) -> CanonicalEvent:
    """The canonical event in an SQS record's body; an event type it does not know is malformed.
    A refusal names only the error's type: these events carry the customer's email."""
    return consumers.parse_record(body, READ_KNOWN_EVENTS, quote_errors=False)


def process_record(record: SqsRecord, deps: HandlerDeps) -> PrivacyResult | None:
    """One record: done, failed (raised: SQS retries), or dead-lettered at once."""
    logger.remove_keys(["event_id", "event_type", "customer_id"])
    logger.append_keys(message_id=record.message_id)
    try:
        event = parse_record(record.body)
        logger.append_keys(
            event_id=event.event_id, event_type=event.event_type, customer_id=event.customer_id
        )
        result = handle_privacy_event(event, deps.privacy)
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
        )
        return None
    logger.info(
        f"privacy {result.outcome}",
        extra={
            "outcome": result.outcome,
            "items": result.items,
            "changed": result.changed,
            "deleted": result.deleted,
            "objects": result.objects,
        },
    )
    return result


def lambda_handler(
    event: dict[str, Any], context: Any, deps: HandlerDeps | None = None
) -> PartialItemFailureResponse:
    """Process one SQS batch of privacy requests, reporting partial batch failures."""
    logger.clear_state()
    wired = deps or _default_deps()
    return process_sqs_batch(event, lambda record: process_record(record, wired), logger)
