"""Payment confirmation consumer: SQS (from the bus) -> verify with the gateway -> outcome.

Thin on purpose: each SQS record's body is the EventBridge event; its `detail` is parsed
into the canonical event and handed to `storewire.payments.handle_payment_event`.
`storewire.batch.process_sqs_batch` reports partial batch failures, so one bad record never
fails its batch.

What happens to a record, by the type of what it raised:

* nothing -> done (deleted from the queue);
* `RetryableError` (order not recorded yet, gateway 5xx/429 after the client's retries, the
  bus refused) or anything unexpected -> a batch item failure: SQS redelivers it after the
  visibility timeout, and its redrive policy moves it to the DLQ after MaxReceiveCount;
* `PermanentError` (bad API key, unknown PaymentIntent, configuration) or a malformed
  event (`MalformedPayload`) ->
  sent to the DLQ at once with the error type and reason, then reported done, so it does not
  burn receives on a failure that retrying cannot fix. If that send fails, the record fails
  as usual (nothing is lost).

The adapters are wired once per cold start; tests pass `deps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import Logger
from storewire import consumers
from storewire.batch import PartialItemFailureResponse, SqsRecord, process_sqs_batch
from storewire.config import PaymentSettings
from storewire.domain.events import EVENT_MODELS, CanonicalEvent
from storewire.errors import (
    ConfigurationError,
    InvalidWebhook,
    PermanentError,
)
from storewire.observability import ConsumerTelemetry
from storewire.payments import PaymentDeps, PaymentResult, handle_payment_event
from storewire.pii import PiiMaskingFormatter, install_root_masking
from storewire.ports import DeadLetterSink

if TYPE_CHECKING:
    from storewire.http import Deadline  # httpx is imported only when wiring (cold start)

logger = Logger(service="payment_confirmation", logger_formatter=PiiMaskingFormatter())
telemetry = ConsumerTelemetry("payment_confirmation", logger)
install_root_masking()


READ_KNOWN_EVENTS = consumers.by_type_and_version(EVENT_MODELS, unknown=None)

DEADLINE_RESERVE_SECONDS = 3.0
"""Time kept back from the Lambda timeout for reporting the batch after outbound calls."""


@dataclass(frozen=True)
class HandlerDeps:
    payments: PaymentDeps
    dead_letters: DeadLetterSink
    deadline: Deadline | None = None


_deps: HandlerDeps | None = None


def _wire(settings: PaymentSettings) -> HandlerDeps:
    """The real adapters, built from the environment's settings."""
    import boto3
    import httpx
    from storewire.adapters.dynamodb_orders import DynamoDBOrderStore
    from storewire.adapters.eventbridge import EventBridgePublisher
    from storewire.adapters.s3_claim_check import S3ClaimCheckStore
    from storewire.adapters.secrets import SecretsManagerProvider
    from storewire.adapters.shopify_admin import ShopifyAdminGateway, describe_shopify_error
    from storewire.adapters.sqs_dead_letters import SqsDeadLetterSink
    from storewire.adapters.stripe_gateway import StripeGateway, describe_stripe_error
    from storewire.http import (
        Credential,
        Deadline,
        HttpClient,
        RetryPolicy,
        default_timeout,
        set_observer,
    )

    set_observer(telemetry.observe_http)

    secrets = SecretsManagerProvider(boto3.client("secretsmanager"))
    deadline = Deadline()
    policy = RetryPolicy(max_attempts=settings.http_max_attempts)
    timeout = default_timeout(settings.http_connect_timeout, settings.http_read_timeout)

    def http(service: str, describe: Any) -> HttpClient:
        return HttpClient(
            httpx.Client(timeout=timeout),
            service=service,
            policy=policy,
            deadline=deadline,
            describe_error=describe,
        )

    def secret(secret_id: str, what: str) -> Credential:
        def read(refresh: bool = False) -> str:
            # Cached by the provider (5 min); re-read at once after a 401 (a rotated key).
            return _secret_value(secrets.get(secret_id, force_fetch=refresh), what)

        return read

    stripe = StripeGateway(
        http("stripe", describe_stripe_error),
        secret(settings.stripe_api_key_secret_id, "Stripe API key"),
        base_url=settings.stripe_api_base_url,
    )
    shopify = ShopifyAdminGateway(
        http("shopify_admin", describe_shopify_error),
        secret(settings.shopify_admin_token_secret_id, "Shopify Admin token"),
        base_url=settings.shopify_admin_base_url or None,
        api_version=settings.shopify_api_version,
    )
    claim_checks = (
        S3ClaimCheckStore(boto3.client("s3"), settings.claim_check_bucket_name)
        if settings.claim_check_bucket_name
        else None
    )
    return HandlerDeps(
        payments=PaymentDeps(
            orders=DynamoDBOrderStore(boto3.client("dynamodb"), settings.orders_table_name),
            publisher=EventBridgePublisher(boto3.client("events"), settings.event_bus_name),
            gateways={stripe.name: stripe, shopify.name: shopify},
            claim_checks=claim_checks,
        ),
        dead_letters=SqsDeadLetterSink(
            boto3.client("sqs"), settings.dead_letter_queue_url, consumer="payment_confirmation"
        ),
        deadline=deadline,
    )


def _secret_value(secret: dict[str, str], what: str) -> str:
    value = secret.get("current") or secret.get("api_key") or ""
    if not value:
        raise ConfigurationError(f"the {what} secret has no 'current' value")
    return value


def _default_deps() -> HandlerDeps:
    global _deps
    if _deps is None:
        _deps = _wire(PaymentSettings.from_env())
    return _deps


def parse_record(body: str) -> CanonicalEvent:
    """The canonical event in an SQS record's body; an event type it does not know is malformed."""
    return consumers.parse_record(body, READ_KNOWN_EVENTS)


def process_record(record: SqsRecord, deps: HandlerDeps) -> PaymentResult | None:
    """One record: handled, failed (raised: SQS retries), or dead-lettered at once."""
    telemetry.begin_record(record.message_id)
    try:
        event = parse_record(record.body)
        telemetry.bind_event(event)
        result = handle_payment_event(event, deps.payments)
    except (PermanentError, InvalidWebhook) as error:
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
    telemetry.processed("duplicate" if result.reason == "already published" else result.action)
    logger.info(
        f"payment event {result.action}",
        extra={
            "outcome": result.action,
            "order_id": result.order_id,
            "published": list(result.published),
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
    return telemetry.finish_batch(
        process_sqs_batch(event, lambda record: process_record(record, wired), logger)
    )
