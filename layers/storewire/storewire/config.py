"""One validated settings model per function, read from the environment at handler entry."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storewire.errors import ConfigurationError

MIN_DEDUPE_TTL_SECONDS = 48 * 3600


class IngestSettings(BaseModel):
    """The environment of `webhook_ingest` (docs/architecture.md, "Webhook ingestion")."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    dedupe_table_name: str = Field(alias="DEDUPE_TABLE_NAME", min_length=1)
    claim_check_bucket_name: str = Field(alias="CLAIM_CHECK_BUCKET_NAME", min_length=1)
    shopify_webhook_secret_id: str = Field(alias="SHOPIFY_WEBHOOK_SECRET_ID", min_length=1)
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Settings from `environ` (default `os.environ`); `ConfigurationError` names bad ones."""
        env = os.environ if environ is None else environ
        try:
            return cls.model_validate({k: v for k, v in env.items() if v != ""})
        except ValidationError as error:
            problems = ", ".join(
                f"{'.'.join(str(p) for p in e['loc'])} ({e['msg']})"
                for e in error.errors(include_url=False, include_input=False)
            )
            raise ConfigurationError(f"invalid webhook_ingest environment: {problems}") from None

    @property
    def max_age_seconds(self) -> int:
        """The replay tolerance in seconds (0: no limit)."""
        if self.webhook_max_age_seconds is None:
            return self.dedupe_ttl_seconds
        return self.webhook_max_age_seconds

    def secret_ids(self) -> dict[str, str]:
        """The Secrets Manager id of each source's webhook secret."""
        return {"shopify": self.shopify_webhook_secret_id}
