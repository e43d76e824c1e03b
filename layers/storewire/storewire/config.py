"""One validated settings model per function, read from the environment at handler entry."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storewire.errors import ConfigurationError

MIN_DEDUPE_TTL_SECONDS = 48 * 3600


class EnvSettings(BaseModel):
    """Base of every function's settings: built from the environment at handler entry.

    Empty variables count as unset. `json_settings` names variables holding JSON objects.
    Any bad value is one `ConfigurationError` naming every problem, for `settings_for`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    settings_for: ClassVar[str] = "environment"
    json_settings: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Settings from `environ` (default `os.environ`); `ConfigurationError` names bad ones."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {k: v for k, v in env.items() if v != ""}
        try:
            for name in cls.json_settings:
                if name in values:
                    values[name] = json.loads(values[name])
            return cls.model_validate(values)
        except ValidationError as error:
            problems = ", ".join(
                f"{'.'.join(str(p) for p in e['loc'])} ({e['msg']})"
                for e in error.errors(include_url=False, include_input=False)
            )
        except ValueError as error:
            problems = f"a JSON setting does not parse ({error})"
        raise ConfigurationError(f"invalid {cls.settings_for}: {problems}") from None


class IngestSettings(EnvSettings):
    """The environment of `webhook_ingest` (docs/architecture.md, "Webhook ingestion")."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    dedupe_table_name: str = Field(alias="DEDUPE_TABLE_NAME", min_length=1)
    claim_check_bucket_name: str = Field(alias="CLAIM_CHECK_BUCKET_NAME", min_length=1)
    shopify_webhook_secret_id: str = Field(alias="SHOPIFY_WEBHOOK_SECRET_ID", min_length=1)
    stripe_webhook_secret_id: str | None = Field(
        default=None,
        alias="STRIPE_WEBHOOK_SECRET_ID",
        description="Optional: without it, /webhooks/stripe answers ConfigurationError (500)",
    )
    easypost_webhook_secret_id: str | None = Field(
        default=None,
        alias="EASYPOST_WEBHOOK_SECRET_ID",
        description="Optional: without it, /webhooks/easypost answers ConfigurationError (500)",
    )
    dedupe_ttl_seconds: int = Field(
        default=259200, alias="DEDUPE_TTL_SECONDS", ge=MIN_DEDUPE_TTL_SECONDS
    )
    max_body_bytes: int = Field(default=4194304, alias="MAX_BODY_BYTES", gt=0)
    webhook_max_age_seconds: int | None = Field(
        default=None,
        alias="WEBHOOK_MAX_AGE_SECONDS",
        ge=0,
        description=(
            "Optional. Deliveries whose X-Shopify-Triggered-At is older are StaleWebhook (401)."
            " Unset: DEDUPE_TTL_SECONDS (a replay older than the dedupe window could not be"
            " recognised as a duplicate). 0 turns the check off."
        ),
    )

    settings_for: ClassVar[str] = "webhook_ingest environment"

    @property
    def max_age_seconds(self) -> int:
        """The replay tolerance in seconds (0: no limit)."""
        if self.webhook_max_age_seconds is None:
            return self.dedupe_ttl_seconds
        return self.webhook_max_age_seconds

    def secret_ids(self) -> dict[str, str]:
        """The Secrets Manager id of each source's webhook secret."""
        ids = {"shopify": self.shopify_webhook_secret_id}
        if self.stripe_webhook_secret_id:
            ids["stripe"] = self.stripe_webhook_secret_id
        if self.easypost_webhook_secret_id:
            ids["easypost"] = self.easypost_webhook_secret_id
        return ids


class PaymentSettings(EnvSettings):
    """The environment of `payment_confirmation` (docs/payments.md, "Configuration")."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    orders_table_name: str = Field(alias="ORDERS_TABLE_NAME", min_length=1)
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    claim_check_bucket_name: str = Field(default="", alias="CLAIM_CHECK_BUCKET_NAME")
    stripe_api_key_secret_id: str = Field(alias="STRIPE_API_KEY_SECRET_ID", min_length=1)
    stripe_api_base_url: str = Field(
        default="https://api.stripe.com", alias="STRIPE_API_BASE_URL", pattern=r"^https?://"
    )
    shopify_admin_token_secret_id: str = Field(alias="SHOPIFY_ADMIN_TOKEN_SECRET_ID", min_length=1)
    shopify_admin_base_url: str = Field(
        default="",
        alias="SHOPIFY_ADMIN_BASE_URL",
        description="Empty: https://{shop} per order; else one base URL (the local fake)",
    )
    shopify_api_version: str = Field(
        default="2025-07", alias="SHOPIFY_API_VERSION", pattern=r"^[0-9]{4}-[0-9]{2}$"
    )
    http_connect_timeout: float = Field(default=3.05, alias="HTTP_CONNECT_TIMEOUT", gt=0)
    http_read_timeout: float = Field(default=10.0, alias="HTTP_READ_TIMEOUT", gt=0)
    http_max_attempts: int = Field(default=4, alias="HTTP_MAX_ATTEMPTS", ge=1, le=10)

    settings_for: ClassVar[str] = "payment_confirmation environment"


class StockSettings(EnvSettings):
    """The environment of `stock_adjustment` (docs/architecture.md, "Stock adjustment")."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    inventory_table_name: str = Field(alias="INVENTORY_TABLE_NAME", min_length=1)
    orders_table_name: str = Field(alias="ORDERS_TABLE_NAME", min_length=1)
    claim_check_bucket_name: str = Field(default="", alias="CLAIM_CHECK_BUCKET_NAME")
    dead_letter_queue_url: str = Field(
        default="",
        alias="DEAD_LETTER_QUEUE_URL",
        description="Permanent failures go here at once; empty: they fail like the others",
    )
    default_location: str = Field(
        default="default", alias="DEFAULT_LOCATION", min_length=1, pattern=r"^[^#]+$"
    )

    settings_for: ClassVar[str] = "stock_adjustment environment"


class ChannelSyncSettings(EnvSettings):
    """The environment of `channel_sync` (docs/channels.md, "Configuration")."""

    channel_listings_table_name: str = Field(alias="CHANNEL_LISTINGS_TABLE_NAME", min_length=1)
    claim_check_bucket_name: str = Field(default="", alias="CLAIM_CHECK_BUCKET_NAME")
    dead_letter_queue_url: str = Field(
        default="",
        alias="DEAD_LETTER_QUEUE_URL",
        description="Permanent failures go here at once; empty: they fail like the others",
    )
    shopify_admin_token_secret_id: str = Field(alias="SHOPIFY_ADMIN_TOKEN_SECRET_ID", min_length=1)
    shopify_admin_base_url: str = Field(
        default="",
        alias="SHOPIFY_ADMIN_BASE_URL",
        description="Empty: https://{shop} per listing; else one base URL (the local fake)",
    )
    shopify_api_version: str = Field(
        default="2026-04",
        alias="SHOPIFY_API_VERSION",
        pattern=r"^[0-9]{4}-[0-9]{2}$",
        description="2026-04 or later: changeFromQuantity, @idempotent on inventorySetQuantities",
    )
    compare_attempts: int = Field(default=4, alias="CHANNEL_COMPARE_ATTEMPTS", ge=1, le=10)
    http_connect_timeout: float = Field(default=3.05, alias="HTTP_CONNECT_TIMEOUT", gt=0)
    http_read_timeout: float = Field(default=10.0, alias="HTTP_READ_TIMEOUT", gt=0)
    http_max_attempts: int = Field(default=4, alias="HTTP_MAX_ATTEMPTS", ge=1, le=10)

    settings_for: ClassVar[str] = "channel_sync environment"


class StorefrontSettings(EnvSettings):
    """The storefront fulfilment of `label_creation` (docs/labels.md): optional; without
    `SHOPIFY_ADMIN_TOKEN_SECRET_ID` no fulfilment is pushed (the step stays open)."""

    shopify_admin_token_secret_id: str = Field(default="", alias="SHOPIFY_ADMIN_TOKEN_SECRET_ID")
    shopify_admin_base_url: str = Field(default="", alias="SHOPIFY_ADMIN_BASE_URL")
    shopify_api_version: str = Field(
        default="2025-07", alias="SHOPIFY_API_VERSION", pattern=r"^[0-9]{4}-[0-9]{2}$"
    )
    shopify_notify_customer: bool = Field(default=True, alias="SHOPIFY_NOTIFY_CUSTOMER")
    http_connect_timeout: float = Field(default=3.05, alias="HTTP_CONNECT_TIMEOUT", gt=0)
    http_read_timeout: float = Field(default=10.0, alias="HTTP_READ_TIMEOUT", gt=0)
    http_max_attempts: int = Field(default=4, alias="HTTP_MAX_ATTEMPTS", ge=1, le=10)

    settings_for: ClassVar[str] = "storefront settings"


class ReconciliationSettings(EnvSettings):
    """The environment of `reconciliation` (docs/operations.md, "Reconcile")."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    orders_table_name: str = Field(alias="ORDERS_TABLE_NAME", min_length=1)
    channel_listings_table_name: str = Field(alias="CHANNEL_LISTINGS_TABLE_NAME", min_length=1)
    inventory_table_name: str = Field(alias="INVENTORY_TABLE_NAME", min_length=1)
    claim_check_bucket_name: str = Field(default="", alias="CLAIM_CHECK_BUCKET_NAME")
    shop: str = Field(alias="SHOPIFY_SHOP", min_length=1, description="The shop reconciled")
    shopify_admin_token_secret_id: str = Field(alias="SHOPIFY_ADMIN_TOKEN_SECRET_ID", min_length=1)
    shopify_admin_base_url: str = Field(default="", alias="SHOPIFY_ADMIN_BASE_URL")
    shopify_api_version: str = Field(
        default="2026-04", alias="SHOPIFY_API_VERSION", pattern=r"^[0-9]{4}-[0-9]{2}$"
    )
    overlap_seconds: int = Field(default=300, alias="RECONCILE_OVERLAP_SECONDS", ge=0)
    lookback_seconds: int = Field(default=86400, alias="RECONCILE_LOOKBACK_SECONDS", gt=0)
    payment_threshold_seconds: int = Field(
        default=1800, alias="RECONCILE_PAYMENT_THRESHOLD_SECONDS", ge=0
    )
    page_size: int = Field(default=50, alias="RECONCILE_PAGE_SIZE", ge=1, le=250)
    http_connect_timeout: float = Field(default=3.05, alias="HTTP_CONNECT_TIMEOUT", gt=0)
    http_read_timeout: float = Field(default=10.0, alias="HTTP_READ_TIMEOUT", gt=0)
    http_max_attempts: int = Field(default=4, alias="HTTP_MAX_ATTEMPTS", ge=1, le=10)

    settings_for: ClassVar[str] = "reconciliation environment"
