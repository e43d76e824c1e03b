"""Reconciliation: EventBridge schedules (and on-demand invokes) -> one reconciliation run.

The schedule's `Input` names the kind: `{"kind": "orders" | "stock" | "payments"}`, with an
optional `"since"` (ISO 8601; orders only: list from there instead of the watermark) and
`"shop"` (default `SHOPIFY_SHOP`). The work is `storewire.reconciliation.run`; this handler
wires the adapters once per cold start (boto3 and httpx are imported only then), bounds the
run by the Lambda's remaining time, publishes `ReconciliationCompleted` (inside `run`) and
emits the counts as EMF metrics (namespace `Storewire`, dimension `kind`). It returns the
counts, which `storewire reconcile` prints.

A failure of the run itself (the storefront down past its retries, DynamoDB failing) raises:
the schedule's invocation is retried by Lambda's async retries, and the watermark has moved
only over what was handled.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit
from storewire.config import ReconciliationSettings
from storewire.errors import ConfigurationError, MalformedPayload
from storewire.reconciliation import KINDS, Budget, Kind, ReconcileDeps, run

if TYPE_CHECKING:
    from storewire.http import Deadline

logger = Logger(service="reconciliation")
metrics = Metrics(namespace="Storewire", service="reconciliation")

_deps: tuple[ReconcileDeps, Deadline | None] | None = None


def _wire(settings: ReconciliationSettings) -> tuple[ReconcileDeps, Deadline]:
    import boto3
    import httpx
    from storewire.adapters.dynamodb_inventory import DynamoDBStockStore
    from storewire.adapters.dynamodb_reconciliation import (
        DynamoDBListingScan,
        DynamoDBReconcileOrders,
        DynamoDBWatermarkStore,
    )
    from storewire.adapters.eventbridge import EventBridgePublisher
    from storewire.adapters.s3_claim_check import S3ClaimCheckStore
    from storewire.adapters.secrets import SecretsManagerProvider
    from storewire.adapters.shopify_admin import (
        ShopifyAdminGateway,
        ShopifyChannelInventory,
        describe_shopify_error,
    )
    from storewire.adapters.shopify_orders import ShopifyStorefrontOrders
    from storewire.http import Deadline, HttpClient, RetryPolicy, default_timeout

    secrets = SecretsManagerProvider(boto3.client("secretsmanager"))
    deadline = Deadline()

    def token(refresh: bool = False) -> str:
        secret = secrets.get(settings.shopify_admin_token_secret_id, force_fetch=refresh)
        value = secret.get("current") or ""
        if not value:
            raise ConfigurationError("the Shopify Admin token secret has no 'current' value")
        return value

    http = HttpClient(
        httpx.Client(
            timeout=default_timeout(settings.http_connect_timeout, settings.http_read_timeout)
        ),
        service="shopify_admin",
        policy=RetryPolicy(max_attempts=settings.http_max_attempts),
        deadline=deadline,
        describe_error=describe_shopify_error,
    )
    base_url = settings.shopify_admin_base_url or None
    gateway = ShopifyAdminGateway(
        http, token, base_url=base_url, api_version=settings.shopify_api_version
    )
    dynamodb = boto3.client("dynamodb")
    deps = ReconcileDeps(
        shop=settings.shop,
        orders=DynamoDBReconcileOrders(dynamodb, settings.orders_table_name),
        publisher=EventBridgePublisher(boto3.client("events"), settings.event_bus_name),
        storefront=ShopifyStorefrontOrders(
            http, token, base_url=base_url, api_version=settings.shopify_api_version
        ),
        watermarks=DynamoDBWatermarkStore(dynamodb, settings.orders_table_name),
        listings=DynamoDBListingScan(dynamodb, settings.channel_listings_table_name),
        ledger=DynamoDBStockStore(dynamodb, settings.inventory_table_name),
        channels={"shopify": ShopifyChannelInventory(gateway)},
        claim_checks=(
            S3ClaimCheckStore(boto3.client("s3"), settings.claim_check_bucket_name)
            if settings.claim_check_bucket_name
            else None
        ),
        overlap=timedelta(seconds=settings.overlap_seconds),
        lookback=timedelta(seconds=settings.lookback_seconds),
        payment_threshold=timedelta(seconds=settings.payment_threshold_seconds),
        page_size=settings.page_size,
    )
    return deps, deadline


def _default_deps() -> tuple[ReconcileDeps, Deadline | None]:
    global _deps
    if _deps is None:
        _deps = _wire(ReconciliationSettings.from_env())
    return _deps


def parse_request(event: dict[str, Any]) -> tuple[Kind, datetime | None, str | None]:
    """(kind, since, shop) from the schedule's Input or an on-demand invoke's payload."""
    body = event.get("detail") if isinstance(event.get("detail"), dict) else event
    assert isinstance(body, dict)
    kind = body.get("kind")
    if kind not in KINDS:
        raise MalformedPayload(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    since: datetime | None = None
    if body.get("since"):
        try:
            since = datetime.fromisoformat(str(body["since"]).replace("Z", "+00:00"))
        except ValueError:
            raise MalformedPayload(f"since is not ISO 8601: {body['since']!r}") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    shop = body.get("shop")
    return kind, since, str(shop) if shop else None


def lambda_handler(
    event: dict[str, Any], context: Any, deps: ReconcileDeps | None = None
) -> dict[str, Any]:
    logger.clear_state()
    kind, since, shop = parse_request(event)
    deadline: Deadline | None = None
    if deps is None:
        deps, deadline = _default_deps()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = Budget(remaining=lambda: float(remaining()) / 1000)
        deps = replace(deps, budget=budget)
        if deadline is not None:
            deadline.reset(max(0.0, remaining() / 1000 - budget.reserve))
    if shop:
        deps = replace(deps, shop=shop)
    logger.append_keys(kind=kind, shop=deps.shop)
    report = run(kind, deps, since)
    result = report.data(deps.clock()).model_dump(mode="json")
    logger.info("reconciliation completed", extra={"counts": result})
    metrics.add_dimension(name="kind", value=kind)
    metrics.add_metric(name="ReconciliationChecked", unit=MetricUnit.Count, value=report.checked)
    metrics.add_metric(
        name="ReconciliationCorrections", unit=MetricUnit.Count, value=report.corrected
    )
    metrics.add_metric(name="ReconciliationFailures", unit=MetricUnit.Count, value=report.failed)
    metrics.flush_metrics()
    return result
