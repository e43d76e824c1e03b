"""`POST /webhooks/{source}`: verify, dedupe, normalise and publish a storefront webhook.

Thin on purpose: read the API Gateway HTTP API (payload v2) event, call
`storewire.ingest.ingest_webhook`, map the outcome or the error type to an answer. The
adapters are wired once per cold start (boto3 is imported only then); tests pass `deps`.
Logs carry the delivery id, topic, shop and outcome, never the body or personal data.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.logging import Logger
from storewire.config import IngestSettings
from storewire.errors import MalformedPayload, StorewireError, http_status
from storewire.ingest import IngestDeps, IngestResult, ingest_webhook
from storewire.pii import PiiMaskingFormatter, install_root_masking
from storewire.sources import Headers, get_source

logger = Logger(service="webhook_ingest", logger_formatter=PiiMaskingFormatter())
install_root_masking()

_deps: IngestDeps | None = None


def _wire(settings: IngestSettings) -> IngestDeps:
    """The real adapters, built from the environment's settings."""
    import boto3
    from storewire.adapters.dynamodb_dedupe import DynamoDBDedupeStore
    from storewire.adapters.eventbridge import EventBridgePublisher
    from storewire.adapters.s3_claim_check import S3ClaimCheckStore
    from storewire.adapters.secrets import SecretsManagerProvider

    return IngestDeps(
        dedupe=DynamoDBDedupeStore(boto3.client("dynamodb"), settings.dedupe_table_name),
        publisher=EventBridgePublisher(boto3.client("events"), settings.event_bus_name),
        claim_checks=S3ClaimCheckStore(boto3.client("s3"), settings.claim_check_bucket_name),
        secrets=SecretsManagerProvider(boto3.client("secretsmanager")),
        secret_ids=settings.secret_ids(),
        dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
        max_body_bytes=settings.max_body_bytes,
        max_age_seconds=settings.max_age_seconds,
    )


def _default_deps() -> IngestDeps:
    global _deps
    if _deps is None:
        _deps = _wire(IngestSettings.from_env())
    return _deps


def _response(status_code: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status_code,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedPayload("body is not valid base64", fields=["(body)"]) from None
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def lambda_handler(
    event: dict[str, Any], context: Any, deps: IngestDeps | None = None
) -> dict[str, Any]:
    """Answer one webhook delivery (see docs/architecture.md, "Webhook ingestion")."""
    logger.clear_state()
    source = str((event.get("pathParameters") or {}).get("source") or "")
    headers = Headers(event.get("headers") or {})
    request_id = getattr(context, "aws_request_id", None)
    logger.append_keys(source=source, request_id=request_id)
    try:
        delivery = get_source(source).describe(headers)
        logger.append_keys(
            delivery_id=delivery.delivery_id, topic=delivery.topic, shop=delivery.shop
        )
        result = ingest_webhook(source, headers, _raw_body(event), deps or _default_deps())
    except StorewireError as error:
        status = http_status(error)
        log = logger.error if status >= 500 else logger.warning
        log(
            "webhook rejected",
            extra={"outcome": type(error).__name__, "status_code": status, "reason": error.message},
        )
        return _response(
            status, {"error": {"type": type(error).__name__, "message": error.message}}
        )
    except Exception:
        logger.exception("webhook failed", extra={"outcome": "InternalError", "status_code": 500})
        return _response(
            500, {"error": {"type": "InternalError", "message": "internal error; retry later"}}
        )
    _log_result(result)
    return _response(200, result.body())


def _log_result(result: IngestResult) -> None:
    logger.info(
        f"webhook {result.status}",
        extra={
            "outcome": result.status,
            "status_code": 200,
            "event_ids": list(result.event_ids),
            "claim_checked": result.claim_checked,
        },
    )
